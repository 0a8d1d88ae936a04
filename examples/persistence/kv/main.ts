/**
 * A broker that keeps its sessions, subscriptions, in-flight and queued messages, retained
 * messages and $SYS counters in Deno KV, so a restart (or a crash: `kill -9`) loses nothing it
 * acknowledged.
 *
 * Run: `deno run -A examples/persistence/kv/main.ts [ADDRESS] [PATH]` (default `:1883` and
 * `./data/broker.kv`). Try: subscribe with a persistent session
 * (`mosquitto_sub -V 5 -c -i s1 -x 3600 -q 1 -t 'demo/#'`), stop it, publish a few QoS 1 messages,
 * restart the broker, and start the subscriber again: the messages arrive.
 */

import { AllowHook, KVHook, Server, TCP } from "../../../mod.ts";

const address = Deno.args[0] ?? ":1883";
const path = Deno.args[1] ?? "./data/broker.kv";

const server = new Server({ capabilities: { compatibilities: { restoreSysInfoOnRestart: true } } });
await server.addHook(new AllowHook());
await server.addHook(new KVHook(), { path });
await server.addListener(new TCP({ id: "t1", address }));
await server.serve();
console.log(`Broker listening on ${server.listeners.get("t1")!.address}, state in ${path}`);

const stop = () => server.close().then(() => Deno.exit(0));
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);

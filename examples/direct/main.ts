/**
 * The inline client: the program publishes and subscribes directly, next to TCP clients.
 *
 * Run: `deno run -A examples/direct/main.ts [ADDRESS]` (default `:1883`), then for example:
 *
 * ```sh
 * mosquitto_sub -t 'direct/#' -v       # sees the program's messages every second
 * mosquitto_pub -t commands/hello -m 1 # the program logs it
 * ```
 *
 * @module
 */

import { AllowHook, Server, TCP } from "../../mod.ts";

const address = Deno.args[0] ?? ":1883";
const server = new Server({ inlineClient: true });
await server.addHook(new AllowHook());
await server.addListener(new TCP({ id: "t1", address }));
await server.serve();
console.log(`Direct (inline client) broker listening on ${server.listeners.get("t1")!.address}`);

// Messages from TCP clients reach the program; retained ones arrive as soon as it subscribes.
await server.subscribe("commands/#", 1, (_client, _subscription, packet) => {
  const text = new TextDecoder().decode(packet.payload);
  console.log(`command ${packet.topicName}: ${text}`);
  server.publish("direct/replies", `got ${packet.topicName}`, false, 1);
});

// The program publishes like any client, without ACL checks (it may even write $SYS topics).
await server.publish("direct/status", "online", true, 1);
let ticks = 0;
const timer = setInterval(() => server.publish("direct/ticks", String(++ticks), false, 0), 1000);

const stop = async () => {
  clearInterval(timer);
  await server.unsubscribe("commands/#", 1);
  await server.close();
  Deno.exit(0);
};
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);

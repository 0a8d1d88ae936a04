/**
 * A broker on plain TCP that accepts everyone (development only).
 *
 * Run: `deno run -A examples/tcp/main.ts [ADDRESS]` (default `:1883`), then for example
 * `mosquitto_sub -t 'hello/#' -v` and `mosquitto_pub -t hello/world -m hi`.
 */

import { AllowHook, Server, TCP } from "../../mod.ts";

const address = Deno.args[0] ?? ":1883";
const server = new Server();
await server.addHook(new AllowHook());
// At most 1000 connections through this listener; the 1001st is closed at once.
await server.addListener(new TCP({ id: "t1", address, maxConnections: 1000 }));
await server.serve();
console.log(`TCP broker listening on ${server.listeners.get("t1")!.address}; Ctrl-C to stop`);

const stop = () => server.close().then(() => Deno.exit(0));
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);

/**
 * An edge broker bridged to a central one: `sensors/#` goes up, `commands/#` comes down, and
 * `site/#` is renamed on the way (`edge/site/...` here is `site1/site/...` there).
 *
 * Run: `deno run -A examples/bridge/main.ts [ADDRESS] [REMOTE]` (defaults `:1884` and
 * `mqtt://127.0.0.1:1883`, for example a local Mosquitto), then:
 *
 * ```sh
 * mosquitto_sub -p 1883 -t 'sensors/#' -v &               # at the remote
 * mosquitto_pub -p 1884 -t sensors/t1 -m 21.5 -q 1         # at the edge: PUBACKed once the remote has it
 * mosquitto_pub -p 1883 -t commands/reboot -m now -q 1     # comes down to the edge
 * ```
 *
 * The same bridge in a config file: [`bridge.yaml`](bridge.yaml).
 *
 * @module
 */

import { AllowHook, Bridge, Server, TCP } from "../../mod.ts";

const address = Deno.args[0] ?? ":1884";
const remote = Deno.args[1] ?? "mqtt://127.0.0.1:1883";
const server = new Server({ inlineClient: true }); // bridges move messages through the inline client
await server.addHook(new AllowHook());
const bridge = new Bridge(server, {
  id: "cloud",
  address: remote,
  protocolVersion: 5,
  clientId: "edge-1",
  cleanStart: false,
  sessionExpiry: 3600,
  topics: ["sensors/# out 1", "commands/# in 1", "site/# both 1 edge/ site1/"],
});
await server.addHook(bridge);
await server.addListener(new TCP({ id: "t1", address }));
await server.serve();
console.log(`Edge broker listening on ${server.listeners.get("t1")!.address}, bridged to ${remote}`);

await server.subscribe("commands/#", 1, (_client, _subscription, packet) => {
  console.log(`command ${packet.topicName}: ${new TextDecoder().decode(packet.payload)}`);
});

const timer = setInterval(() => {
  const s = bridge.status();
  console.log(`bridge ${s.id}: ${s.state}, queued ${s.queued}, sent ${s.sent}, received ${s.received}`);
}, 10_000);

Deno.addSignalListener("SIGTERM", async () => {
  clearInterval(timer);
  await server.close();
  Deno.exit(0);
});

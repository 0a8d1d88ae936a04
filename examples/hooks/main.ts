/**
 * A custom hook that logs and rewrites: it logs connections and publishes, stamps every message
 * with a user property, refuses empty payloads, and moves `legacy/...` topics to `v2/...`.
 *
 * Run: `deno run -A examples/hooks/main.ts [ADDRESS]` (default `:1883`), then for example:
 *
 * ```sh
 * mosquitto_sub -V mqttv5 -t 'v2/#' -v -F '%t %p %P'
 * mosquitto_pub -V mqttv5 -t legacy/temp -m 21   # arrives as v2/temp with received-by=example
 * mosquitto_pub -V mqttv5 -t a -n -q 1           # refused: PUBACK 0x99 (payload format invalid)
 * ```
 *
 * @module
 */

import {
  AllowHook,
  type Client,
  type Hook,
  MqttError,
  type Packet,
  ReasonCode,
  Server,
  TCP,
} from "../../mod.ts";

/** Logs and rewrites traffic. */
class ExampleHook implements Hook {
  readonly id = "example";

  onSessionEstablished(client: Client): void {
    console.log(`connected: ${client.id} from ${client.net.remote} (v${client.properties.protocolVersion})`);
  }

  onDisconnect(client: Client, error: Error | undefined): void {
    console.log(`disconnected: ${client.id} (${error?.message ?? "no reason"})`);
  }

  onPublish(client: Client, packet: Packet): Packet {
    if (!packet.payload || packet.payload.length === 0) throw new MqttError(ReasonCode.PayloadFormatInvalid);
    const topicName = packet.topicName!.startsWith("legacy/")
      ? "v2/" + packet.topicName!.slice("legacy/".length)
      : packet.topicName;
    console.log(`publish from ${client.id}: ${packet.topicName} -> ${topicName}`);
    const userProperties = [...(packet.properties?.userProperties ?? []), ["received-by", "example"]] as [
      string,
      string,
    ][];
    return { ...packet, topicName, properties: { ...packet.properties, userProperties } };
  }
}

const address = Deno.args[0] ?? ":1883";
const server = new Server();
await server.addHook(new AllowHook());
await server.addHook(new ExampleHook());
await server.addListener(new TCP({ id: "t1", address }));
await server.serve();
console.log(`Hooks example broker listening on ${server.listeners.get("t1")!.address}`);

const stop = () => server.close().then(() => Deno.exit(0));
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);

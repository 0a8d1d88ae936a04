import assert from "node:assert/strict";
import { PacketType } from "../../mod.ts";
import { collect, mqttConnect, RawClient, startBroker, waitFor } from "../helpers.ts";

Deno.test("Server delivers between MQTT.js v5 and v3.1.1 clients over TCP", async () => {
  await using broker = await startBroker();
  const sub = await mqttConnect(broker, { clientId: "sub", protocolVersion: 4 });
  const pub = await mqttConnect(broker, { clientId: "pub" });
  const messages = collect(sub);
  await sub.subscribeAsync("a/#", { qos: 1 });
  await pub.publishAsync("a/b", "hello", { qos: 1 });
  await waitFor(() => messages.length === 1);
  assert.equal(messages[0].topic, "a/b");
  assert.equal(messages[0].payload, "hello");
  await sub.endAsync();
  await pub.endAsync();
});

Deno.test("Server answers a raw v5 CONNECT with CONNACK and PINGREQ with PINGRESP", async () => {
  await using broker = await startBroker();
  const { client, connack } = await RawClient.connect(broker, "raw");
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.properties?.receiveMaximum, 1024);
  await client.send({ fixedHeader: { type: PacketType.Pingreq } });
  await client.expect(PacketType.Pingresp);
  client.close();
});

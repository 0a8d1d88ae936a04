import assert from "node:assert/strict";
import { type Packet, PacketType } from "../../mod.ts";
import { collect, mqttConnect, RawClient, startBroker, waitFor } from "../helpers.ts";

const text = (packet: Packet) => new TextDecoder().decode(packet.payload);

Deno.test("Server.publish and subscribe throw without the inlineClient option", async () => {
  await using broker = await startBroker();
  assert.throws(() => broker.server.publish("a", "x", false, 0), /inline client is not enabled/);
  assert.throws(() => broker.server.subscribe("a", 1, () => {}), /inline client is not enabled/);
  assert.throws(() => broker.server.unsubscribe("a", 1), /inline client is not enabled/);
});

Deno.test("Server.publish delivers to TCP subscribers with QoS capped by the publish", async () => {
  await using broker = await startBroker({ inlineClient: true });
  const sub = await mqttConnect(broker, { clientId: "sub" });
  const messages = collect(sub);
  await sub.subscribeAsync("direct/#", { qos: 2 });
  await broker.server.publish("direct/publish", "hello", false, 1);
  await waitFor(() => messages.length === 1);
  assert.equal(messages[0].topic, "direct/publish");
  assert.equal(messages[0].payload, "hello");
  assert.equal(messages[0].packet.qos, 1);
  await sub.endAsync();
});

Deno.test("Server.subscribe receives TCP publishes, retained at once, and several ids all fire", async () => {
  await using broker = await startBroker({ inlineClient: true });
  const pub = await mqttConnect(broker, { clientId: "pub" });
  await pub.publishAsync("sensors/kept", "retained", { qos: 1, retain: true });
  const first: string[] = [];
  const second: string[] = [];
  await broker.server.subscribe("sensors/#", 1, (_client, sub, packet) => {
    assert.equal(sub.identifier, 1);
    first.push(`${packet.topicName}=${text(packet)}`);
  });
  await broker.server.subscribe("sensors/#", 2, (_client, _sub, packet) => second.push(text(packet)));
  assert.deepEqual(first, ["sensors/kept=retained"]);
  await pub.publishAsync("sensors/t", "21", { qos: 0 });
  await waitFor(() => first.length === 2 && second.length === 2);
  assert.equal(first[1], "sensors/t=21");
  // The same (filter, id) replaces the handler.
  const replaced: string[] = [];
  await broker.server.subscribe("sensors/#", 1, (_c, _s, packet) => replaced.push(text(packet)));
  await pub.publishAsync("sensors/t", "22", { qos: 0 });
  await waitFor(() => replaced.length === 2 && second.length === 3); // retained again on subscribe + new message
  assert.equal(first.length, 2);
  await broker.server.unsubscribe("sensors/#", 1);
  await broker.server.unsubscribe("sensors/#", 2);
  await pub.publishAsync("sensors/t", "23", { qos: 0 });
  await pub.publishAsync("done", "", { qos: 1 });
  assert.equal(replaced.length, 2);
  await pub.endAsync();
});

Deno.test("Server.subscribe takes part in shared subscriptions with TCP clients", async () => {
  await using broker = await startBroker({ inlineClient: true });
  const sub = await mqttConnect(broker, { clientId: "member" });
  const tcp = collect(sub);
  await sub.subscribeAsync("$share/g/jobs", { qos: 0 });
  const inline: string[] = [];
  await broker.server.subscribe("$share/g/jobs", 1, (_c, _s, packet) => inline.push(text(packet)));
  for (let i = 0; i < 4; i++) await broker.server.publish("jobs", String(i), false, 0);
  await waitFor(() => tcp.length + inline.length === 4);
  assert.equal(tcp.length, 2);
  assert.equal(inline.length, 2);
  await sub.endAsync();
});

Deno.test("Server: a TCP client cannot publish to $SYS while the inline client can", async () => {
  await using broker = await startBroker({ inlineClient: true, sysTopicResendInterval: 0 });
  const seen: string[] = [];
  await broker.server.subscribe("$SYS/custom", 1, (_c, _s, packet) => seen.push(text(packet)));
  const { client } = await RawClient.connect(broker, "pub");
  await client.send({
    fixedHeader: { type: PacketType.Publish, qos: 1 },
    packetId: 1,
    topicName: "$SYS/custom",
    payload: new TextEncoder().encode("from tcp"),
  });
  const ack = await client.expect(PacketType.Puback);
  assert.equal(ack.reasonCode, 0x87);
  await broker.server.publish("$SYS/custom", "from inline", false, 0);
  assert.deepEqual(seen, ["from inline"]);
  client.close();
});

Deno.test("Server.injectPacket runs a PUBLISH as if an inline client had sent it", async () => {
  await using broker = await startBroker();
  const sub = await mqttConnect(broker, { clientId: "sub" });
  const messages = collect(sub);
  await sub.subscribeAsync("injected/#");
  const client = broker.server.newClient(null, "local", "injector", true);
  await broker.server.injectPacket(client, {
    fixedHeader: { type: PacketType.Publish },
    topicName: "injected/a",
    payload: new TextEncoder().encode("via inject"),
  });
  await waitFor(() => messages.length === 1);
  assert.equal(messages[0].payload, "via inject");
  await sub.endAsync();
});

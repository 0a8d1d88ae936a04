import assert from "node:assert/strict";
import { type Packet, PacketType, type Properties, type QoS, type Subscription } from "../../mod.ts";
import {
  collect,
  delay,
  mqttConnect,
  type PublishOptions,
  publishPacket,
  RawClient,
  startBroker,
  waitFor,
} from "../helpers.ts";

/** Retained by default: most messages here are. */
const publish = (topic: string, payload: string, qos: QoS = 0, options: PublishOptions = {}): Packet =>
  publishPacket(topic, payload, qos, { retain: true, ...options });
const decoder = new TextDecoder();

/** Subscribes and returns the SUBACK's codes and whatever the broker sent with it (retained messages). */
async function subscribe(
  client: RawClient,
  filters: Subscription[],
  packetId = 1,
): Promise<{ codes: number[]; messages: Packet[] }> {
  const suback = await client.subscribe(filters, packetId);
  return { codes: suback.reasonCodes ?? [], messages: await client.sync() };
}

/** Publishes from `client` and waits until the broker has handled it. */
async function retain(client: RawClient, packet: Packet): Promise<void> {
  await client.send(packet);
  await client.sync();
}

const summary = (packets: Packet[]) =>
  packets.map((p) => [p.topicName, decoder.decode(p.payload), p.fixedHeader.retain, p.fixedHeader.qos]);

Deno.test("`Server` stores, replaces and clears a retained message", async () => {
  await using broker = await startBroker({ sysTopicResendInterval: 0 });
  const { client: pub } = await RawClient.connect(broker, "pub");
  await retain(pub, publish("rt/t", "first"));
  await retain(pub, publish("rt/t", "second"));
  assert.equal(broker.server.topics.retainedCount, 1);

  const { client: a } = await RawClient.connect(broker, "a");
  assert.deepEqual(summary((await subscribe(a, [{ filter: "rt/t", qos: 0 }])).messages), [
    ["rt/t", "second", true, 0],
  ]);

  // [MQTT-3.3.1-6] an empty retained payload clears it, and is delivered to current subscribers normally.
  await retain(pub, publish("rt/t", ""));
  assert.deepEqual(summary(await a.sync()), [["rt/t", "", false, 0]]);
  assert.equal(broker.server.topics.retainedCount, 0);
  assert.equal(broker.server.info.retained, 0);
  const { client: b } = await RawClient.connect(broker, "b");
  assert.deepEqual((await subscribe(b, [{ filter: "rt/#", qos: 0 }])).messages, []);
  for (const client of [pub, a, b]) client.close();
});

Deno.test("`Server` sends matching retained messages on subscribe with the retain flag set", async () => {
  await using broker = await startBroker();
  const { client: pub } = await RawClient.connect(broker, "pub");
  const properties: Properties = { contentType: "text/plain", userProperties: [["u", "1"], ["u", "2"]] };
  await retain(pub, publish("home/kitchen/temp", "21", 1, { properties }));
  await retain(pub, publish("home/hall/temp", "19", 2, { packetId: 2 }));
  await pub.send({ fixedHeader: { type: PacketType.Pubrel, qos: 1 }, packetId: 2, reasonCode: 0 });
  await retain(pub, publish("home/hall/light", "on", 0));
  await retain(pub, publish("away/temp", "5", 0));

  const { client: sub } = await RawClient.connect(broker, "sub");
  const { codes, messages } = await subscribe(sub, [{ filter: "home/+/temp", qos: 1 }, {
    filter: "home/hall/#",
    qos: 0,
  }]);
  assert.deepEqual(codes, [1, 0]);
  const byKey = summary(messages).map((m) => m.join(" ")).sort();
  // One per matching filter, each at the lower of the retained and the subscription QoS.
  assert.deepEqual(byKey, [
    "home/hall/light on true 0",
    "home/hall/temp 19 true 0",
    "home/hall/temp 19 true 1",
    "home/kitchen/temp 21 true 1",
  ]);
  const kitchen = messages.find((p) => p.topicName === "home/kitchen/temp")!;
  assert.deepEqual(kitchen.properties?.contentType, "text/plain");
  assert.deepEqual(kitchen.properties?.userProperties, properties.userProperties);
  // `#` does not get the retained $SYS topics.
  const { client: all } = await RawClient.connect(broker, "all");
  const everything = (await subscribe(all, [{ filter: "#", qos: 0 }])).messages;
  assert.deepEqual(everything.map((p) => p.topicName).sort(), [
    "away/temp",
    "home/hall/light",
    "home/hall/temp",
    "home/kitchen/temp",
  ]);
  for (const client of [pub, sub, all]) client.close();
});

Deno.test("`Server` clears the retain flag on normal delivery unless Retain As Published", async () => {
  await using broker = await startBroker({ sysTopicResendInterval: 0 });
  const { client: plain } = await RawClient.connect(broker, "plain");
  const { client: rap } = await RawClient.connect(broker, "rap");
  await subscribe(plain, [{ filter: "rf/t", qos: 0 }]);
  await subscribe(rap, [{ filter: "rf/t", qos: 0, retainAsPublished: true }]);
  const { client: pub } = await RawClient.connect(broker, "pub");
  await retain(pub, publish("rf/t", "retained"));
  await retain(pub, publish("rf/t", "live", 0, { retain: false }));
  // [MQTT-3.3.1-12] / [MQTT-3.3.1-13]
  assert.deepEqual(summary(await plain.sync()), [["rf/t", "retained", false, 0], ["rf/t", "live", false, 0]]);
  assert.deepEqual(summary(await rap.sync()), [["rf/t", "retained", true, 0], ["rf/t", "live", false, 0]]);
  for (const client of [plain, rap, pub]) client.close();
});

Deno.test("`Server` follows Retain Handling 0, 1 and 2", async () => {
  await using broker = await startBroker({ sysTopicResendInterval: 0 });
  const { client: pub } = await RawClient.connect(broker, "pub");
  await retain(pub, publish("rh/t", "kept"));
  const expected = [["rh/t", "kept", true, 0]];

  const { client: always } = await RawClient.connect(broker, "always");
  const rh0: Subscription = { filter: "rh/t", qos: 0, retainHandling: 0 };
  assert.deepEqual(summary((await subscribe(always, [rh0])).messages), expected);
  assert.deepEqual(summary((await subscribe(always, [rh0], 2)).messages), expected);

  // [MQTT-3.3.1-10] only when the subscription did not exist.
  const { client: onNew } = await RawClient.connect(broker, "onNew");
  const rh1: Subscription = { filter: "rh/t", qos: 0, retainHandling: 1 };
  assert.deepEqual(summary((await subscribe(onNew, [rh1])).messages), expected);
  assert.deepEqual((await subscribe(onNew, [rh1], 2)).messages, []);
  await onNew.send({ fixedHeader: { type: PacketType.Unsubscribe }, packetId: 3, filters: [rh1] });
  await onNew.expect(PacketType.Unsuback);
  assert.deepEqual(summary((await subscribe(onNew, [rh1], 4)).messages), expected);

  // [MQTT-3.3.1-11] never.
  const { client: never } = await RawClient.connect(broker, "never");
  const rh2: Subscription = { filter: "rh/t", qos: 0, retainHandling: 2 };
  assert.deepEqual((await subscribe(never, [rh2])).messages, []);
  // Live messages still arrive.
  await retain(pub, publish("rh/t", "live", 0, { retain: false }));
  assert.deepEqual(summary(await never.sync()), [["rh/t", "live", false, 0]]);
  for (const client of [pub, always, onNew, never]) client.close();
});

Deno.test("`Server` expires retained messages and sends the remaining expiry interval", async () => {
  await using broker = await startBroker({ sysTopicResendInterval: 0 });
  const { client: pub } = await RawClient.connect(broker, "pub");
  await retain(pub, publish("rx/short", "short", 0, { properties: { messageExpiryInterval: 1 } }));
  await retain(pub, publish("rx/long", "long", 0, { properties: { messageExpiryInterval: 100 } }));
  const { client: early } = await RawClient.connect(broker, "early");
  const first = (await subscribe(early, [{ filter: "rx/#", qos: 0 }])).messages;
  const expiry = Object.fromEntries(first.map((p) => [p.topicName!, p.properties?.messageExpiryInterval]));
  assert.equal(expiry["rx/short"], 1);
  assert.ok(expiry["rx/long"]! <= 100 && expiry["rx/long"]! >= 99, `${expiry["rx/long"]}`);

  await delay(1100);
  const { client: late } = await RawClient.connect(broker, "late");
  const second = (await subscribe(late, [{ filter: "rx/#", qos: 0 }])).messages;
  assert.deepEqual(second.map((p) => p.topicName), ["rx/long"]);
  assert.equal(broker.server.topics.retained("rx/short"), undefined);
  assert.equal(broker.server.topics.retainedCount, 1);
  for (const client of [pub, early, late]) client.close();
});

Deno.test("`Server` sends no retained messages for a shared subscription", async () => {
  await using broker = await startBroker({ sysTopicResendInterval: 0 });
  const { client: pub } = await RawClient.connect(broker, "pub");
  await retain(pub, publish("sh/t", "retained"));
  const { client } = await RawClient.connect(broker, "c");
  const shared = await subscribe(client, [{ filter: "$share/g/sh/t", qos: 0 }]);
  assert.deepEqual(shared.codes, [0]);
  assert.deepEqual(shared.messages, []);
  const plain = await subscribe(client, [{ filter: "sh/t", qos: 0 }], 2);
  assert.deepEqual(summary(plain.messages), [["sh/t", "retained", true, 0]]);
  client.close();
  pub.close();
});

Deno.test("`Server` without retain advertises it and disconnects a retained publish with 0x9A", async () => {
  await using broker = await startBroker({ capabilities: { retainAvailable: 0 } });
  const { client, connack } = await RawClient.connect(broker, "c");
  assert.equal(connack.properties?.retainAvailable, 0);
  await client.send(publish("nr/t", "plain", 1, { retain: false }));
  assert.equal((await client.expect(PacketType.Puback)).reasonCode, 0x10); // accepted; no subscriber
  await client.send(publish("nr/t", "kept?", 1, { packetId: 2 }));
  const rest = await client.closed();
  assert.deepEqual(rest.map((p) => [p.fixedHeader.type, p.reasonCode]), [[PacketType.Disconnect, 0x9a]]);
  assert.equal(broker.server.topics.retained("nr/t"), undefined);
  client.close();
});

Deno.test("`Server` sends retained messages to v3.1.1 clients with the retain flag", async () => {
  await using broker = await startBroker({ sysTopicResendInterval: 0 });
  const { client: pub } = await RawClient.connect(broker, "pub", { version: 4 });
  await retain(pub, publish("v4/t", "old"));
  const { client: raw } = await RawClient.connect(broker, "raw", { version: 4 });
  assert.deepEqual(summary((await subscribe(raw, [{ filter: "v4/t", qos: 1 }])).messages), [
    ["v4/t", "old", true, 0],
  ]);
  // [MQTT-3.3.1-9] live deliveries to v3.1.1 have the flag cleared.
  await retain(pub, publish("v4/t", "new"));
  assert.deepEqual(summary(await raw.sync()), [["v4/t", "new", false, 0]]);

  const v4 = await mqttConnect(broker, { clientId: "mqtt4", protocolVersion: 4 });
  const v5 = await mqttConnect(broker, { clientId: "mqtt5" });
  const got4 = collect(v4);
  const got5 = collect(v5);
  await v4.subscribeAsync("v4/t", { qos: 1 });
  await v5.subscribeAsync("v4/t", { qos: 1 });
  await waitFor(() => got4.length === 1 && got5.length === 1);
  for (const got of [got4, got5]) {
    assert.equal(got[0].payload, "new");
    assert.equal(got[0].packet.retain, true);
  }
  await v4.endAsync();
  await v5.endAsync();
  raw.close();
  pub.close();
});

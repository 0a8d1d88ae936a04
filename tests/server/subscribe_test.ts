import assert from "node:assert/strict";
import { type Packet, PacketType, type QoS, type Subscription } from "../../mod.ts";
import { collect, mqttConnect, publishPacket, RawClient, startBroker, waitFor } from "../helpers.ts";

const publish = (topic: string, payload: string, qos: QoS = 0, packetId = 1): Packet =>
  publishPacket(topic, payload, qos, { packetId });
const decoder = new TextDecoder();

async function unsubscribed(client: RawClient, filters: string[], packetId = 1): Promise<Packet> {
  await client.send({
    fixedHeader: { type: PacketType.Unsubscribe },
    packetId,
    filters: filters.map((filter) => ({ filter, qos: 0 })),
  });
  const unsuback = await client.expect(PacketType.Unsuback);
  assert.equal(unsuback.packetId, packetId);
  return unsuback;
}

/** Publishes QoS 0 messages from a fresh client and waits until the broker has routed them. */
async function publishAll(client: RawClient, messages: [topic: string, payload: string][]): Promise<void> {
  for (const [topic, payload] of messages) await client.send(publish(topic, payload));
  await client.sync();
}

const payloads = (packets: Packet[]): string[] => packets.map((p) => decoder.decode(p.payload));

// ---------------------------------------------------------------------------------------------
// SUBACK

Deno.test("`Server` grants the requested QoS in SUBACK, capped by maximumQos", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "c");
  const filters: Subscription[] = [{ filter: "g/0", qos: 0 }, { filter: "g/1", qos: 1 }, {
    filter: "g/2",
    qos: 2,
  }];
  assert.deepEqual((await client.subscribe(filters)).reasonCodes, [0, 1, 2]);
  client.close();

  await using capped = await startBroker({ capabilities: { maximumQos: 1 } });
  const { client: v5 } = await RawClient.connect(capped, "v5");
  assert.deepEqual((await v5.subscribe(filters)).reasonCodes, [0, 1, 1]);
  const { client: v4 } = await RawClient.connect(capped, "v4", { version: 4 });
  assert.deepEqual((await v4.subscribe(filters)).reasonCodes, [0, 1, 1]);
  v5.close();
  v4.close();
});

Deno.test("`Server` answers an invalid filter with 0x8F on v5 and still grants the others", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "c");
  const suback = await client.subscribe([
    { filter: "ok/+", qos: 1 },
    { filter: "bad/#/x", qos: 1 },
    { filter: "bad+", qos: 0 },
    { filter: "$share/g", qos: 0 },
    { filter: "ok2/#", qos: 2 },
  ]);
  assert.deepEqual(suback.reasonCodes, [1, 0x8f, 0x8f, 0x8f, 2]);
  const { client: pub } = await RawClient.connect(broker, "pub");
  await publishAll(pub, [["ok/a", "1"], ["ok2/b/c", "2"]]);
  assert.deepEqual(payloads(await client.sync()), ["1", "2"]);
  client.close();
  pub.close();
});

Deno.test("`Server` answers an invalid filter with 0x80 on v3.1.1 and still grants the others", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "c", { version: 4 });
  const suback = await client.subscribe([{ filter: "a/#/b", qos: 1 }, { filter: "ok/#", qos: 1 }, {
    filter: "c#",
    qos: 2,
  }]);
  assert.deepEqual(suback.reasonCodes, [0x80, 1, 0x80]);
  const { client: pub } = await RawClient.connect(broker, "pub");
  await publishAll(pub, [["ok/x", "yes"]]);
  assert.deepEqual(payloads(await client.sync()), ["yes"]);
  client.close();
  pub.close();
});

// ---------------------------------------------------------------------------------------------
// Matching

Deno.test("`Server` matches + as one level and # as any number of levels, including the parent", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "c");
  // One SUBSCRIBE per filter, each with its own subscription identifier, to see which filters matched.
  const filters = ["a/#", "a/+", "a/+/c", "+/b", "#", "+", "a/b", "+/+", "a//c", "/#"];
  for (const [i, filter] of filters.entries()) {
    await client.subscribe([{ filter, qos: 0 }], i + 1, { subscriptionIdentifier: [i + 1] });
  }
  const { client: pub } = await RawClient.connect(broker, "pub");
  const topics = ["a", "a/b", "a/b/c", "x/b", "a//c", "/x", "b"];
  await publishAll(pub, topics.map((t) => [t, t]));
  const got = await client.sync();
  const matched = Object.fromEntries(got.map((p) => [
    p.topicName!,
    [...(p.properties?.subscriptionIdentifier ?? [])].sort((x, y) => x - y).map((id) => filters[id - 1]),
  ]));
  assert.deepEqual(matched, {
    "a": ["a/#", "#", "+"],
    "a/b": ["a/#", "a/+", "+/b", "#", "a/b", "+/+"],
    "a/b/c": ["a/#", "a/+/c", "#"],
    "x/b": ["+/b", "#", "+/+"],
    "a//c": ["a/#", "a/+/c", "#", "a//c"],
    "/x": ["#", "+/+", "/#"],
    "b": ["#", "+"],
  });
  assert.equal(got.length, topics.length); // one PUBLISH per topic, whatever the number of matches
  client.close();
  pub.close();
});

Deno.test("`Server` does not match $ topics with filters starting with # or +", async () => {
  await using broker = await startBroker({ inlineClient: true, sysTopicResendInterval: 0 });
  const { client } = await RawClient.connect(broker, "c");
  const filters = ["#", "+/b", "+/#", "$x/b", "$x/#", "$x/+"];
  for (const [i, filter] of filters.entries()) {
    await client.subscribe([{ filter, qos: 0 }], i + 1, { subscriptionIdentifier: [i + 1] });
  }
  await broker.server.publish("$x/b", "dollar", false, 0);
  await broker.server.publish("y/b", "plain", false, 0);
  const got = await client.sync();
  const matched = got.map((p) => [
    p.topicName,
    [...(p.properties?.subscriptionIdentifier ?? [])].sort((x, y) => x - y).map((id) => filters[id - 1]),
  ]);
  assert.deepEqual(matched, [
    ["$x/b", ["$x/b", "$x/#", "$x/+"]],
    ["y/b", ["#", "+/b", "+/#"]],
  ]);
  client.close();
});

Deno.test("`Server` sends one copy for overlapping subscriptions, at the highest QoS, with every identifier", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "c");
  await client.subscribe([{ filter: "ov/#", qos: 0 }], 1, { subscriptionIdentifier: [11] });
  await client.subscribe([{ filter: "ov/+", qos: 2 }], 2, { subscriptionIdentifier: [22] });
  await client.subscribe([{ filter: "ov/x", qos: 1 }], 3);
  const { client: pub } = await RawClient.connect(broker, "pub");
  await pub.send(publish("ov/x", "one", 2));
  await pub.expect(PacketType.Pubrec);
  await pub.send({ fixedHeader: { type: PacketType.Pubrel, qos: 1 }, packetId: 1, reasonCode: 0 });
  await pub.expect(PacketType.Pubcomp);
  const got = await client.sync();
  assert.equal(got.length, 1);
  assert.equal(got[0].fixedHeader.qos, 2);
  assert.deepEqual([...got[0].properties!.subscriptionIdentifier!].sort((x, y) => x - y), [11, 22]);
  client.close();
  pub.close();
});

Deno.test("`Server` puts the subscription identifier on deliveries to MQTT.js v5 clients", async () => {
  await using broker = await startBroker();
  const sub = await mqttConnect(broker, { clientId: "sub" });
  const messages = collect(sub);
  await sub.subscribeAsync("sid/a", { qos: 1, properties: { subscriptionIdentifier: 42 } });
  await sub.subscribeAsync("sid/b", { qos: 1 });
  const pub = await mqttConnect(broker, { clientId: "pub" });
  await pub.publishAsync("sid/a", "with", { qos: 1 });
  await pub.publishAsync("sid/b", "without", { qos: 1 });
  await waitFor(() => messages.length === 2);
  assert.equal(messages[0].payload, "with");
  assert.deepEqual([messages[0].packet.properties?.subscriptionIdentifier].flat(), [42]);
  assert.equal(messages[1].payload, "without");
  assert.equal(messages[1].packet.properties?.subscriptionIdentifier, undefined);
  await pub.endAsync();
  await sub.endAsync();
});

Deno.test("`Server` replaces a subscription's options when the same filter is subscribed again", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "c");
  await client.subscribe([{ filter: "re/t", qos: 0 }], 1, { subscriptionIdentifier: [1] });
  await client.subscribe([{ filter: "re/t", qos: 2 }], 2, { subscriptionIdentifier: [2] });
  assert.equal(broker.server.topics.subscriptionCount, 1);
  const { client: pub } = await RawClient.connect(broker, "pub");
  await pub.send(publish("re/t", "x", 1));
  await pub.expect(PacketType.Puback);
  const got = await client.sync();
  assert.equal(got.length, 1);
  assert.equal(got[0].fixedHeader.qos, 1);
  assert.deepEqual(got[0].properties?.subscriptionIdentifier, [2]);
  // Resubscribing with No Local now stops the client's own publishes.
  await client.subscribe([{ filter: "re/t", qos: 1, noLocal: true }], 3);
  await client.send({ fixedHeader: { type: PacketType.Puback }, packetId: got[0].packetId, reasonCode: 0 });
  await client.send(publish("re/t", "own", 0));
  assert.deepEqual(await client.sync(), []);
  client.close();
  pub.close();
});

// ---------------------------------------------------------------------------------------------
// UNSUBSCRIBE

Deno.test("`Server` answers UNSUBSCRIBE on v5 with 0x00 or 0x11 and stops deliveries", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "c");
  await client.subscribe([{ filter: "un/a", qos: 0 }, { filter: "un/b", qos: 0 }]);
  const unsuback = await unsubscribed(client, ["un/a", "un/never", "$share/g/un/a"], 9);
  assert.deepEqual(unsuback.reasonCodes, [0x00, 0x11, 0x11]);
  assert.deepEqual((await unsubscribed(client, ["un/a"], 10)).reasonCodes, [0x11]);
  const { client: pub } = await RawClient.connect(broker, "pub");
  await publishAll(pub, [["un/a", "gone"], ["un/b", "kept"]]);
  assert.deepEqual(payloads(await client.sync()), ["kept"]);
  client.close();
  pub.close();
});

Deno.test("`Server` answers UNSUBSCRIBE on v3.1.1 without reason codes and stops deliveries", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "c", { version: 4 });
  await client.subscribe([{ filter: "un/a", qos: 1 }]);
  const unsuback = await unsubscribed(client, ["un/a", "un/never"], 4);
  assert.equal(unsuback.fixedHeader.remaining, 2); // packet id only
  assert.equal(unsuback.reasonCodes, undefined);
  const { client: pub } = await RawClient.connect(broker, "pub");
  await publishAll(pub, [["un/a", "gone"]]);
  assert.deepEqual(await client.sync(), []);
  client.close();
  pub.close();
});

Deno.test("`Server` stops deliveries to MQTT.js clients that unsubscribe", async () => {
  await using broker = await startBroker();
  const v4 = await mqttConnect(broker, { clientId: "v4", protocolVersion: 4 });
  const v5 = await mqttConnect(broker, { clientId: "v5" });
  const got4 = collect(v4);
  const got5 = collect(v5);
  for (const client of [v4, v5]) await client.subscribeAsync(["mu/a", "mu/end"], { qos: 1 });
  const pub = await mqttConnect(broker, { clientId: "pub" });
  await pub.publishAsync("mu/a", "before", { qos: 1 });
  await waitFor(() => got4.length === 1 && got5.length === 1);
  for (const client of [v4, v5]) await client.unsubscribeAsync("mu/a");
  await pub.publishAsync("mu/a", "after", { qos: 1 });
  await pub.publishAsync("mu/end", "end", { qos: 1 });
  await waitFor(() => got4.length === 2 && got5.length === 2);
  assert.deepEqual(got4.map((m) => m.payload), ["before", "end"]);
  assert.deepEqual(got5.map((m) => m.payload), ["before", "end"]);
  for (const client of [v4, v5, pub]) await client.endAsync();
});

// ---------------------------------------------------------------------------------------------
// No Local

Deno.test("`Server` does not send a client its own publishes on a No Local subscription", async () => {
  await using broker = await startBroker();
  const { client: self } = await RawClient.connect(broker, "self");
  const { client: other } = await RawClient.connect(broker, "other");
  await self.subscribe([{ filter: "nl/t", qos: 0, noLocal: true }]);
  await other.subscribe([{ filter: "nl/t", qos: 0, noLocal: true }]);
  await self.send(publish("nl/t", "mine"));
  assert.deepEqual(await self.sync(), []);
  assert.deepEqual(payloads(await other.sync()), ["mine"]);
  // An overlapping subscription without No Local is enough to get it [MQTT-3.8.3-3].
  await self.subscribe([{ filter: "nl/#", qos: 0 }], 2);
  await self.send(publish("nl/t", "again"));
  assert.deepEqual(payloads(await self.sync()), ["again"]);
  self.close();
  other.close();
});

// ---------------------------------------------------------------------------------------------
// Shared subscriptions

Deno.test("`Server` sends each message to one member of a shared group, round robin", async () => {
  await using broker = await startBroker();
  const members: RawClient[] = [];
  for (const id of ["m1", "m2", "m3"]) {
    const { client } = await RawClient.connect(broker, id);
    assert.deepEqual((await client.subscribe([{ filter: "$share/g/jobs/+", qos: 1 }])).reasonCodes, [1]);
    members.push(client);
  }
  const { client: pub } = await RawClient.connect(broker, "pub");
  await publishAll(pub, Array.from({ length: 9 }, (_, i) => ["jobs/x", `j${i}`]));
  const received = await Promise.all(members.map((m) => m.sync()));
  const counts = received.map((r) => r.length);
  assert.deepEqual(counts, [3, 3, 3]);
  const all = received.flatMap(payloads).sort();
  assert.deepEqual(all, Array.from({ length: 9 }, (_, i) => `j${i}`).sort());
  // Round robin: each member gets every third message.
  for (const r of received) {
    const indexes = payloads(r).map((p) => Number(p.slice(1)));
    assert.ok(indexes.every((i) => i % 3 === indexes[0] % 3), `${indexes}`);
  }
  for (const m of members) m.close();
  pub.close();
});

Deno.test("`Server` gives every shared group its own copy, and non-shared subscribers theirs", async () => {
  await using broker = await startBroker();
  const clients: Record<string, RawClient> = {};
  for (const [id, filter] of [["a1", "$share/a/t"], ["a2", "$share/a/t"], ["b1", "$share/b/t"], ["n", "t"]]) {
    clients[id] = (await RawClient.connect(broker, id)).client;
    await clients[id].subscribe([{ filter, qos: 0 }]);
  }
  const { client: pub } = await RawClient.connect(broker, "pub");
  await publishAll(pub, [["t", "1"], ["t", "2"]]);
  const got: Record<string, string[]> = {};
  for (const [id, client] of Object.entries(clients)) got[id] = payloads(await client.sync());
  assert.deepEqual(got.b1, ["1", "2"]);
  assert.deepEqual(got.n, ["1", "2"]);
  assert.deepEqual([...got.a1, ...got.a2].sort(), ["1", "2"]);
  assert.equal(got.a1.length, 1);
  for (const client of Object.values(clients)) client.close();
  pub.close();
});

Deno.test("`Server` stops sending to a shared member that unsubscribes; the others share the rest", async () => {
  await using broker = await startBroker();
  const { client: m1 } = await RawClient.connect(broker, "m1");
  const { client: m2 } = await RawClient.connect(broker, "m2");
  for (const member of [m1, m2]) await member.subscribe([{ filter: "$share/g/u/t", qos: 0 }]);
  assert.deepEqual((await unsubscribed(m1, ["$share/g/u/t", "$share/other/u/t"], 2)).reasonCodes, [
    0x00,
    0x11,
  ]);
  const { client: pub } = await RawClient.connect(broker, "pub");
  await publishAll(pub, [["u/t", "1"], ["u/t", "2"], ["u/t", "3"]]);
  assert.deepEqual(await m1.sync(), []);
  assert.deepEqual(payloads(await m2.sync()), ["1", "2", "3"]);
  for (const client of [m1, m2, pub]) client.close();
});

Deno.test("`Server` disconnects with 0x82 for No Local on a shared subscription", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "c");
  await client.send({
    fixedHeader: { type: PacketType.Subscribe },
    packetId: 1,
    filters: [{ filter: "$share/g/t", qos: 0, noLocal: true }],
  });
  const rest = await client.closed();
  assert.deepEqual(rest.map((p) => [p.fixedHeader.type, p.reasonCode]), [[PacketType.Disconnect, 0x82]]);
  client.close();
});

// ---------------------------------------------------------------------------------------------
// Capabilities

Deno.test("`Server` without wildcard subscriptions advertises it and answers 0xA2", async () => {
  await using broker = await startBroker({ capabilities: { wildcardSubAvailable: 0 } });
  const { client, connack } = await RawClient.connect(broker, "c");
  assert.equal(connack.properties?.wildcardSubscriptionAvailable, 0);
  const suback = await client.subscribe([{ filter: "w/+", qos: 0 }, { filter: "w/#", qos: 1 }, {
    filter: "w/x",
    qos: 1,
  }]);
  assert.deepEqual(suback.reasonCodes, [0xa2, 0xa2, 1]);
  client.close();
});

Deno.test("`Server` without shared subscriptions advertises it and answers 0x9E", async () => {
  await using broker = await startBroker({ capabilities: { sharedSubAvailable: 0 } });
  const { client, connack } = await RawClient.connect(broker, "c");
  assert.equal(connack.properties?.sharedSubscriptionAvailable, 0);
  const suback = await client.subscribe([{ filter: "$share/g/t", qos: 0 }, { filter: "t", qos: 0 }]);
  assert.deepEqual(suback.reasonCodes, [0x9e, 0]);
  client.close();
});

Deno.test("`Server` without subscription identifiers advertises it and answers 0xA1", async () => {
  await using broker = await startBroker({ capabilities: { subIdAvailable: 0 } });
  const { client, connack } = await RawClient.connect(broker, "c");
  assert.equal(connack.properties?.subscriptionIdentifierAvailable, 0);
  const refused = await client.subscribe([{ filter: "s/t", qos: 1 }], 1, { subscriptionIdentifier: [5] });
  assert.deepEqual(refused.reasonCodes, [0xa1]);
  assert.deepEqual((await client.subscribe([{ filter: "s/t", qos: 1 }], 2)).reasonCodes, [1]);
  client.close();
});

import assert from "node:assert/strict";
import { PacketType, type Properties, VERSION } from "../../mod.ts";
import {
  ackPacket,
  collect,
  delay,
  mqttConnect,
  publishPacket,
  RawClient,
  startBroker,
  waitFor,
} from "../helpers.ts";

const decoder = new TextDecoder();

/** Waits for the broker to close the connection and returns the reason code of its DISCONNECT. */
async function disconnectCode(client: RawClient): Promise<number | undefined> {
  const rest = await client.closed();
  assert.deepEqual(rest.map((p) => p.fixedHeader.type), [PacketType.Disconnect]);
  return rest[0].reasonCode;
}

// ---------------------------------------------------------------------------------------------
// Maximum Packet Size

Deno.test("`Server` advertises its maximumPacketSize and disconnects a bigger packet with 0x95", async () => {
  await using broker = await startBroker({ capabilities: { maximumPacketSize: 100 } });
  const { client, connack } = await RawClient.connect(broker, "c");
  assert.equal(connack.properties?.maximumPacketSize, 100);
  await client.send(publishPacket("size/t", "x".repeat(60), 1));
  assert.equal((await client.expect(PacketType.Puback)).reasonCode, 0x10); // accepted; no subscriber
  await client.send(publishPacket("size/t", "x".repeat(200), 1, { packetId: 2 }));
  assert.equal(await disconnectCode(client), 0x95);
  client.close();
});

Deno.test("`Server` does not send a client a message above its Maximum Packet Size", async () => {
  await using broker = await startBroker();
  const { client: small } = await RawClient.connect(broker, "small", {
    properties: { maximumPacketSize: 64 },
  });
  const { client: large } = await RawClient.connect(broker, "large");
  for (const client of [small, large]) await client.subscribe([{ filter: "mps/#", qos: 1 }]);
  const { client: pub } = await RawClient.connect(broker, "pub");
  const droppedBefore = broker.server.info.messagesDropped;
  await pub.send(publishPacket("mps/big0", "y".repeat(100), 0));
  await pub.send(publishPacket("mps/big1", "y".repeat(100), 1, { packetId: 1 }));
  await pub.send(publishPacket("mps/small", "fits", 1, { packetId: 2 }));
  await pub.expect(PacketType.Puback);
  await pub.expect(PacketType.Puback);

  // [MQTT-3.1.2-24] the packets that would be too large are left out; the small one still goes.
  const toSmall = await small.sync();
  assert.deepEqual(toSmall.map((p) => p.topicName), ["mps/small"]);
  const toLarge = await large.sync();
  assert.deepEqual(toLarge.map((p) => p.topicName), ["mps/big0", "mps/big1", "mps/small"]);
  assert.equal(broker.server.info.messagesDropped - droppedBefore, 2);
  for (const [client, got] of [[small, toSmall], [large, toLarge]] as const) {
    for (const p of got) if (p.fixedHeader.qos) await client.send(ackPacket(PacketType.Puback, p.packetId!));
  }
  await waitFor(() => broker.server.info.inflight === 0, 3000, "acks to be processed");
  for (const client of [small, large, pub]) client.close();
});

// ---------------------------------------------------------------------------------------------
// Topic aliases

Deno.test("`Server` resolves an inbound topic alias to the topic it was set with", async () => {
  await using broker = await startBroker();
  const sub = await mqttConnect(broker, { clientId: "sub" });
  const messages = collect(sub);
  await sub.subscribeAsync("alias/#", { qos: 1 });
  const { client: pub, connack } = await RawClient.connect(broker, "pub");
  assert.equal(connack.properties?.topicAliasMaximum, 0xffff);
  await pub.send(publishPacket("alias/real", "first", 1, { packetId: 1, properties: { topicAlias: 4 } }));
  await pub.send(publishPacket("", "second", 1, { packetId: 2, properties: { topicAlias: 4 } }));
  // Setting the alias again maps it to another topic.
  await pub.send(publishPacket("alias/other", "third", 1, { packetId: 3, properties: { topicAlias: 4 } }));
  await pub.send(publishPacket("", "fourth", 1, { packetId: 4, properties: { topicAlias: 4 } }));
  for (let id = 1; id <= 4; id++) assert.equal((await pub.expect(PacketType.Puback)).reasonCode, 0);
  await waitFor(() => messages.length === 4);
  assert.deepEqual(messages.map((m) => [m.topic, m.payload]), [
    ["alias/real", "first"],
    ["alias/real", "second"],
    ["alias/other", "third"],
    ["alias/other", "fourth"],
  ]);
  // The alias belongs to the publisher's connection only: it is not forwarded.
  for (const m of messages) assert.equal(m.packet.properties?.topicAlias, undefined);
  pub.close();
  await sub.endAsync();
});

Deno.test("`Server` disconnects with 0x94 for a topic alias above its topicAliasMaximum", async () => {
  await using broker = await startBroker({ capabilities: { topicAliasMaximum: 2 } });
  const { client, connack } = await RawClient.connect(broker, "c");
  assert.equal(connack.properties?.topicAliasMaximum, 2);
  await client.send(publishPacket("ta/t", "ok", 1, { properties: { topicAlias: 2 } }));
  await client.expect(PacketType.Puback);
  await client.send(publishPacket("ta/t", "too high", 1, { packetId: 2, properties: { topicAlias: 3 } }));
  assert.equal(await disconnectCode(client), 0x94);
  client.close();
});

Deno.test("`Server` disconnects with 0x82 for an unknown topic alias with an empty topic", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "c");
  await client.send(publishPacket("", "who?", 1, { properties: { topicAlias: 9 } }));
  assert.equal(await disconnectCode(client), 0x82);
  client.close();
});

Deno.test("`Server` assigns outbound topic aliases up to the client's Topic Alias Maximum", async () => {
  await using broker = await startBroker();
  const { client: one } = await RawClient.connect(broker, "one", { properties: { topicAliasMaximum: 1 } });
  const { client: none } = await RawClient.connect(broker, "none", { properties: { topicAliasMaximum: 0 } });
  for (const client of [one, none]) await client.subscribe([{ filter: "oa/#", qos: 0 }]);
  const { client: pub } = await RawClient.connect(broker, "pub");
  for (const [topic, payload] of [["oa/a", "1"], ["oa/a", "2"], ["oa/b", "3"], ["oa/a", "4"]]) {
    await pub.send(publishPacket(topic, payload, 0));
  }
  await pub.sync();
  const withAlias = await one.sync();
  assert.deepEqual(
    withAlias.map((p) => [p.topicName, p.properties?.topicAlias, decoder.decode(p.payload)]),
    [["oa/a", 1, "1"], ["", 1, "2"], ["oa/b", undefined, "3"], ["", 1, "4"]],
  );
  const without = await none.sync();
  assert.deepEqual(
    without.map((p) => [p.topicName, p.properties?.topicAlias, decoder.decode(p.payload)]),
    [["oa/a", undefined, "1"], ["oa/a", undefined, "2"], ["oa/b", undefined, "3"], ["oa/a", undefined, "4"]],
  );
  for (const client of [one, none, pub]) client.close();
});

Deno.test("`Server` sets up an outbound topic alias only with a message the client receives", async () => {
  await using broker = await startBroker();
  const { client: sub } = await RawClient.connect(broker, "sub", {
    properties: { topicAliasMaximum: 1, maximumPacketSize: 64 },
  });
  await sub.subscribe([{ filter: "ad/#", qos: 0 }]);
  const { client: pub } = await RawClient.connect(broker, "pub");
  await pub.send(publishPacket("ad/t", "z".repeat(100), 0)); // too large for the subscriber: not sent
  await pub.send(publishPacket("ad/t", "small", 0));
  await pub.send(publishPacket("ad/t", "again", 0));
  await pub.sync();
  const got = await sub.sync();
  // The first PUBLISH it receives must carry the topic name with the alias, or the alias is unknown to it.
  assert.deepEqual(
    got.map((p) => [p.topicName, p.properties?.topicAlias, decoder.decode(p.payload)]),
    [["ad/t", 1, "small"], ["", 1, "again"]],
  );
  sub.close();
  pub.close();
});

Deno.test("`Server` sends aliased topics that an MQTT.js v5 client resolves", async () => {
  await using broker = await startBroker();
  const sub = await mqttConnect(broker, { clientId: "sub", properties: { topicAliasMaximum: 5 } });
  const messages = collect(sub);
  await sub.subscribeAsync("mqa/#", { qos: 1 });
  const pub = await mqttConnect(broker, { clientId: "pub" });
  for (const n of [1, 2, 3]) await pub.publishAsync("mqa/topic", `m${n}`, { qos: n === 2 ? 0 : 1 });
  await waitFor(() => messages.length === 3);
  assert.deepEqual(messages.map((m) => [m.topic, m.payload]), [["mqa/topic", "m1"], ["mqa/topic", "m2"], [
    "mqa/topic",
    "m3",
  ]]);
  assert.equal(messages[0].packet.properties?.topicAlias, 1);
  await pub.endAsync();
  await sub.endAsync();
});

// ---------------------------------------------------------------------------------------------
// Message expiry

Deno.test("`Server` rewrites the message expiry interval to the time remaining on delivery", async () => {
  await using broker = await startBroker();
  const session = { connect: { clean: false }, properties: { sessionExpiryInterval: 60 } };
  const first = await RawClient.connect(broker, "sub", session);
  await first.client.subscribe([{ filter: "exp/t", qos: 1 }]);
  await first.client.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 });
  await first.client.closed();
  first.client.close();
  const { client: pub } = await RawClient.connect(broker, "pub");
  await pub.send(publishPacket("exp/t", "ten", 1, { properties: { messageExpiryInterval: 10 } }));
  await pub.expect(PacketType.Puback);
  await delay(1100);

  const second = await RawClient.connect(broker, "sub", session);
  assert.equal(second.connack.sessionPresent, true);
  const message = await second.client.expect(PacketType.Publish);
  assert.equal(decoder.decode(message.payload), "ten");
  const remaining = message.properties?.messageExpiryInterval;
  assert.ok(remaining !== undefined && remaining <= 9 && remaining >= 7, `remaining ${remaining}`);
  await second.client.send(ackPacket(PacketType.Puback, message.packetId!));
  second.client.close();
  pub.close();
});

Deno.test("`Server` never delivers an expired message", async () => {
  await using broker = await startBroker();
  const session = { connect: { clean: false }, properties: { sessionExpiryInterval: 60 } };
  const first = await RawClient.connect(broker, "sub", session);
  await first.client.subscribe([{ filter: "gone/t", qos: 1 }]);
  await first.client.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 });
  await first.client.closed();
  first.client.close();
  const { client: pub } = await RawClient.connect(broker, "pub");
  await pub.send(
    publishPacket("gone/t", "short", 1, { packetId: 1, properties: { messageExpiryInterval: 1 } }),
  );
  await pub.send(
    publishPacket("gone/t", "long", 1, { packetId: 2, properties: { messageExpiryInterval: 100 } }),
  );
  await pub.expect(PacketType.Puback);
  await pub.expect(PacketType.Puback);
  await delay(2000);

  const second = await RawClient.connect(broker, "sub", session);
  assert.equal(second.connack.sessionPresent, true);
  // [MQTT-3.3.2-5] the 1 s message expired while the subscriber was away.
  const got = await second.client.sync();
  assert.deepEqual(got.map((p) => decoder.decode(p.payload)), ["long"]);
  await second.client.send(ackPacket(PacketType.Puback, got[0].packetId!));
  second.client.close();
  pub.close();
});

Deno.test("`Server` caps message expiry at maximumMessageExpiryInterval", async () => {
  await using broker = await startBroker({ capabilities: { maximumMessageExpiryInterval: 5 } });
  const { client: sub } = await RawClient.connect(broker, "sub");
  await sub.subscribe([{ filter: "cap/#", qos: 0 }]);
  const { client: pub } = await RawClient.connect(broker, "pub");
  await pub.send(publishPacket("cap/long", "a", 0, { properties: { messageExpiryInterval: 1000 } }));
  await pub.send(publishPacket("cap/short", "b", 0, { properties: { messageExpiryInterval: 3 } }));
  await pub.send(publishPacket("cap/none", "c", 0));
  await pub.sync();
  const got = await sub.sync();
  assert.deepEqual(got.map((p) => [p.topicName, p.properties?.messageExpiryInterval]), [
    ["cap/long", 5],
    ["cap/short", 3],
    ["cap/none", undefined],
  ]);
  sub.close();
  pub.close();
});

// ---------------------------------------------------------------------------------------------
// Request/response and user properties

Deno.test("`Server` passes request/response properties and user properties through unchanged", async () => {
  await using broker = await startBroker();
  const { client: sub } = await RawClient.connect(broker, "sub");
  await sub.subscribe([{ filter: "rr/#", qos: 1 }]);
  const { client: pub } = await RawClient.connect(broker, "pub");
  const properties: Properties = {
    payloadFormatIndicator: 1,
    contentType: "application/json",
    responseTopic: "rr/reply/42",
    correlationData: new Uint8Array([0, 1, 2, 255]),
    userProperties: [["b", "2"], ["a", "1"], ["b", "3"], ["empty", ""]],
  };
  await pub.send(publishPacket("rr/request", '{"q":1}', 1, { properties }));
  await pub.expect(PacketType.Puback);
  const message = await sub.expect(PacketType.Publish);
  assert.equal(decoder.decode(message.payload), '{"q":1}');
  assert.deepEqual(message.properties, properties);
  sub.close();
  pub.close();
});

Deno.test("`Server` passes properties between MQTT.js v5 clients for request/response", async () => {
  await using broker = await startBroker();
  const responder = await mqttConnect(broker, { clientId: "responder" });
  const requester = await mqttConnect(broker, { clientId: "requester" });
  const requests = collect(responder);
  const responses = collect(requester);
  await responder.subscribeAsync("svc/request", { qos: 1 });
  await requester.subscribeAsync("svc/reply/requester", { qos: 1 });
  await requester.publishAsync("svc/request", "ping", {
    qos: 1,
    properties: {
      responseTopic: "svc/reply/requester",
      correlationData: Buffer.from("id-7"),
      contentType: "text/plain",
      payloadFormatIndicator: true,
      userProperties: { trace: ["t1", "t2"], tenant: "x" },
    },
  });
  await waitFor(() => requests.length === 1);
  const request = requests[0].packet.properties!;
  assert.equal(request.responseTopic, "svc/reply/requester");
  assert.equal(Buffer.from(request.correlationData!).toString(), "id-7");
  assert.equal(request.contentType, "text/plain");
  assert.equal(request.payloadFormatIndicator, true);
  assert.deepEqual({ ...request.userProperties }, { trace: ["t1", "t2"], tenant: "x" });
  await responder.publishAsync(request.responseTopic!, "pong", {
    qos: 1,
    properties: { correlationData: request.correlationData },
  });
  await waitFor(() => responses.length === 1);
  assert.equal(responses[0].payload, "pong");
  assert.equal(Buffer.from(responses[0].packet.properties!.correlationData!).toString(), "id-7");
  await responder.endAsync();
  await requester.endAsync();
});

Deno.test("`Server` copies a publish's user properties onto its PUBACK and PUBREC by default", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "c");
  const userProperties: [string, string][] = [["k", "v"], ["k", "w"]];
  await client.send(publishPacket("ack/t", "x", 1, { properties: { userProperties } }));
  assert.deepEqual((await client.expect(PacketType.Puback)).properties?.userProperties, userProperties);
  await client.send(publishPacket("ack/t", "x", 2, { packetId: 2, properties: { userProperties } }));
  assert.deepEqual((await client.expect(PacketType.Pubrec)).properties?.userProperties, userProperties);
  await client.send(ackPacket(PacketType.Pubrel, 2));
  await client.expect(PacketType.Pubcomp);
  client.close();
});

Deno.test("`Server` with noInheritedPropertiesOnAck sends acks without the publish's user properties", async () => {
  await using broker = await startBroker({
    capabilities: { compatibilities: { noInheritedPropertiesOnAck: true } },
  });
  const { client } = await RawClient.connect(broker, "c");
  await client.send(publishPacket("ack/t", "x", 1, { properties: { userProperties: [["k", "v"]] } }));
  const puback = await client.expect(PacketType.Puback);
  assert.equal(puback.reasonCode, 0x10); // accepted; no subscriber
  assert.equal(puback.properties, undefined);
  client.close();
});

Deno.test("`Server` puts no reason string or user properties on acks after Request Problem Information 0", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "c", { properties: { requestProblemInformation: 0 } });
  const properties: Properties = { userProperties: [["k", "v"]] };
  await client.send(publishPacket("rpi/t", "x", 1, { properties }));
  const puback = await client.expect(PacketType.Puback);
  assert.equal(puback.properties?.userProperties, undefined);
  assert.equal(puback.properties?.reasonString, undefined);
  await client.send(publishPacket("rpi/t", "x", 2, { packetId: 2, properties }));
  const pubrec = await client.expect(PacketType.Pubrec);
  assert.equal(pubrec.properties?.userProperties, undefined);
  assert.equal(pubrec.properties?.reasonString, undefined);
  await client.send(ackPacket(PacketType.Pubrel, 2));
  await client.expect(PacketType.Pubcomp);
  // A refused publish too: the reason code only.
  await client.send(publishPacket("$SYS/x", "x", 1, { packetId: 3, properties }));
  const refused = await client.expect(PacketType.Puback);
  assert.equal(refused.reasonCode, 0x87);
  assert.equal(refused.properties?.userProperties, undefined);
  assert.equal(refused.properties?.reasonString, undefined);
  client.close();
});

// ---------------------------------------------------------------------------------------------
// $SYS

Deno.test("`Server` retains the $SYS/broker topics and sends them on subscribe to $SYS/#", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "sys");
  const suback = await client.subscribe([{ filter: "$SYS/#", qos: 0 }]);
  assert.deepEqual(suback.reasonCodes, [0]);
  const retained = (await client.sync()).filter((p) => p.fixedHeader.retain);
  assert.equal(retained.length, 20);
  for (const p of retained) assert.ok(p.topicName!.startsWith("$SYS/broker/"), p.topicName!);
  const byTopic = new Map(retained.map((p) => [p.topicName!, decoder.decode(p.payload)]));
  assert.equal(byTopic.size, 20);
  assert.equal(byTopic.get("$SYS/broker/version"), VERSION);
  assert.match(byTopic.get("$SYS/broker/uptime")!, /^\d+$/);
  assert.match(byTopic.get("$SYS/broker/clients/connected")!, /^\d+$/);
  client.close();
});

Deno.test("`Server` refuses a client's publish to $SYS and delivers it to nobody", async () => {
  await using broker = await startBroker();
  const { client: watcher } = await RawClient.connect(broker, "watcher");
  await watcher.subscribe([{ filter: "$SYS/#", qos: 1 }, { filter: "#", qos: 1 }]);
  await watcher.sync(); // the retained $SYS topics
  const { client: pub } = await RawClient.connect(broker, "pub");
  await pub.send(publishPacket("$SYS/x", "fake", 1, { retain: true }));
  const puback = await pub.expect(PacketType.Puback);
  assert.equal(puback.reasonCode, 0x87);
  const v4 = await RawClient.connect(broker, "v4", { version: 4 });
  await v4.client.send(publishPacket("$SYS/broker/version", "fake", 1, { packetId: 5 }));
  assert.equal((await v4.client.expect(PacketType.Puback)).packetId, 5);
  const seen = await watcher.sync();
  assert.deepEqual(seen.filter((p) => p.topicName === "$SYS/x" || decoder.decode(p.payload) === "fake"), []);
  assert.equal(broker.server.topics.retained("$SYS/x"), undefined);
  assert.equal(decoder.decode(broker.server.topics.retained("$SYS/broker/version")?.payload), VERSION);
  for (const p of seen) if (p.fixedHeader.qos) await watcher.send(ackPacket(PacketType.Puback, p.packetId!));
  watcher.close();
  pub.close();
  v4.client.close();
});

// ---------------------------------------------------------------------------------------------
// v3 subscribers

Deno.test("`Server` delivers a v5 publish with properties to v3.1.1 and v3.1 subscribers without them", async () => {
  await using broker = await startBroker();
  const { client: v4 } = await RawClient.connect(broker, "v4", { version: 4 });
  await v4.subscribe([{ filter: "down/#", qos: 1 }]);
  const { client: v3 } = await RawClient.connect(broker, "v3", { version: 3 });
  await v3.subscribe([{ filter: "down/#", qos: 0 }]);
  const mqtt4 = await mqttConnect(broker, { clientId: "mqtt4", protocolVersion: 4 });
  const messages = collect(mqtt4);
  await mqtt4.subscribeAsync("down/#", { qos: 1 });
  const { client: pub } = await RawClient.connect(broker, "pub", {
    properties: { topicAliasMaximum: 0 },
  });
  await pub.send(publishPacket("down/t", "payload", 1, {
    properties: {
      messageExpiryInterval: 60,
      contentType: "text/plain",
      responseTopic: "down/reply",
      correlationData: new Uint8Array([1]),
      userProperties: [["a", "b"]],
      topicAlias: 3,
    },
  }));
  await pub.expect(PacketType.Puback);
  const message = await v4.expect(PacketType.Publish);
  assert.equal(message.topicName, "down/t");
  assert.equal(decoder.decode(message.payload), "payload");
  assert.equal(message.properties, undefined);
  // Topic length + name + packet id + payload: no property bytes on the wire.
  assert.equal(message.fixedHeader.remaining, 2 + "down/t".length + 2 + "payload".length);
  await v4.send(ackPacket(PacketType.Puback, message.packetId!));
  const [v31] = await v3.sync();
  assert.equal(v31.topicName, "down/t");
  assert.equal(v31.properties, undefined);
  assert.equal(v31.fixedHeader.remaining, 2 + "down/t".length + "payload".length);
  await waitFor(() => messages.length === 1);
  assert.equal(messages[0].payload, "payload");
  assert.equal(messages[0].topic, "down/t");
  v4.close();
  v3.close();
  pub.close();
  await mqtt4.endAsync();
});

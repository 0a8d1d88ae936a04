import assert from "node:assert/strict";
import { type Packet, PacketType } from "../../mod.ts";
import {
  ackPacket,
  collect,
  mqttConnect,
  publishPacket,
  RawClient,
  startBroker,
  waitFor,
} from "../helpers.ts";

const decoder = new TextDecoder();

Deno.test("`Server` answers an inbound QoS 1 PUBLISH with PUBACK 0x00 and delivers it", async () => {
  await using broker = await startBroker();
  const { client: sub } = await RawClient.connect(broker, "sub");
  await sub.subscribe([{ filter: "q1/t", qos: 1 }]);
  const { client: pub } = await RawClient.connect(broker, "pub");
  await pub.send(publishPacket("q1/t", "one", 1, { packetId: 7 }));
  const puback = await pub.expect(PacketType.Puback);
  assert.equal(puback.packetId, 7);
  assert.equal(puback.reasonCode, 0x00);
  const message = await sub.expect(PacketType.Publish);
  assert.equal(message.topicName, "q1/t");
  assert.equal(decoder.decode(message.payload), "one");
  assert.equal(message.fixedHeader.qos, 1);
  pub.close();
  sub.close();
});

Deno.test("`Server` answers an inbound QoS 2 PUBLISH with PUBREC, and PUBREL with PUBCOMP", async () => {
  await using broker = await startBroker();
  const { client: sub } = await RawClient.connect(broker, "sub");
  await sub.subscribe([{ filter: "q2/t", qos: 0 }]);
  const { client: pub } = await RawClient.connect(broker, "pub");
  await pub.send(publishPacket("q2/t", "two", 2, { packetId: 9 }));
  const pubrec = await pub.expect(PacketType.Pubrec);
  assert.equal(pubrec.packetId, 9);
  assert.equal(pubrec.reasonCode, 0x00);
  await pub.send(ackPacket(PacketType.Pubrel, 9));
  const pubcomp = await pub.expect(PacketType.Pubcomp);
  assert.equal(pubcomp.packetId, 9);
  assert.equal(pubcomp.reasonCode, 0x00);
  const delivered = await sub.sync();
  assert.equal(delivered.length, 1);
  assert.equal(decoder.decode(delivered[0].payload), "two");
  pub.close();
  sub.close();
});

Deno.test("`Server` acknowledges a duplicate inbound QoS 2 PUBLISH again but delivers it once", async () => {
  await using broker = await startBroker();
  const { client: sub } = await RawClient.connect(broker, "sub");
  await sub.subscribe([{ filter: "dup/t", qos: 0 }]);
  const { client: pub } = await RawClient.connect(broker, "pub");
  await pub.send(publishPacket("dup/t", "once", 2, { packetId: 5 }));
  assert.equal((await pub.expect(PacketType.Pubrec)).packetId, 5);
  // [MQTT-4.3.3-10] the resent PUBLISH (DUP set, before PUBREL) is acknowledged but not delivered again.
  await pub.send(publishPacket("dup/t", "once", 2, { packetId: 5, dup: true }));
  const again = await pub.expect(PacketType.Pubrec);
  assert.equal(again.packetId, 5);
  assert.equal(again.reasonCode, 0x00);
  await pub.send(ackPacket(PacketType.Pubrel, 5));
  assert.equal((await pub.expect(PacketType.Pubcomp)).reasonCode, 0x00);
  const delivered = await sub.sync();
  assert.deepEqual(delivered.map((p) => decoder.decode(p.payload)), ["once"]);
  // After PUBCOMP the packet id is free again: the same id starts a new message.
  await pub.send(publishPacket("dup/t", "twice", 2, { packetId: 5 }));
  await pub.expect(PacketType.Pubrec);
  await pub.send(ackPacket(PacketType.Pubrel, 5));
  await pub.expect(PacketType.Pubcomp);
  assert.deepEqual((await sub.sync()).map((p) => decoder.decode(p.payload)), ["twice"]);
  pub.close();
  sub.close();
});

Deno.test("`Server` answers PUBREL for an unknown packet id with PUBCOMP 0x92", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "c");
  await client.send(ackPacket(PacketType.Pubrel, 321));
  const pubcomp = await client.expect(PacketType.Pubcomp);
  assert.equal(pubcomp.packetId, 321);
  assert.equal(pubcomp.reasonCode, 0x92);
  // The connection stays up.
  assert.deepEqual(await client.sync(), []);
  client.close();
});

Deno.test("`Server` delivers at the lower of the publish QoS and the subscription QoS", async () => {
  await using broker = await startBroker();
  const subscribers: RawClient[] = [];
  for (const qos of [0, 1, 2] as const) {
    const { client } = await RawClient.connect(broker, `sub${qos}`);
    await client.subscribe([{ filter: "down/t", qos }]);
    subscribers.push(client);
  }
  const { client: pub } = await RawClient.connect(broker, "pub");
  for (const qos of [0, 1, 2] as const) {
    await pub.send(publishPacket("down/t", `p${qos}`, qos, { packetId: 10 + qos }));
  }
  await pub.expect(PacketType.Puback);
  const pubrec = await pub.expect(PacketType.Pubrec);
  await pub.send(ackPacket(PacketType.Pubrel, pubrec.packetId!));
  await pub.expect(PacketType.Pubcomp);
  for (const [subQos, client] of subscribers.entries()) {
    const delivered = await client.sync();
    assert.deepEqual(
      delivered.map((p) => [decoder.decode(p.payload), p.fixedHeader.qos]),
      [0, 1, 2].map((pubQos) => [`p${pubQos}`, Math.min(pubQos, subQos)]),
      `subscription QoS ${subQos}`,
    );
    for (const p of delivered) assert.equal(p.packetId !== undefined, (p.fixedHeader.qos ?? 0) > 0);
  }
  for (const client of subscribers) client.close();
  pub.close();
});

Deno.test("`Server` keeps an outbound QoS 1 message in flight until PUBACK and resends it with DUP", async () => {
  await using broker = await startBroker();
  const session = { connect: { clean: false }, properties: { sessionExpiryInterval: 60 } };
  const first = await RawClient.connect(broker, "sub", session);
  await first.client.subscribe([{ filter: "out1/t", qos: 1 }]);
  const { client: pub } = await RawClient.connect(broker, "pub");
  await pub.send(publishPacket("out1/t", "held", 1));
  await pub.expect(PacketType.Puback);
  const sent = await first.client.expect(PacketType.Publish);
  assert.equal(sent.fixedHeader.qos, 1);
  assert.equal(sent.fixedHeader.dup, false);
  assert.equal(broker.server.info.inflight, 1);
  first.client.close(); // no PUBACK
  await waitFor(() => broker.server.info.clientsConnected === 1, 3000, "the subscriber to disconnect");

  const second = await RawClient.connect(broker, "sub", session);
  assert.equal(second.connack.sessionPresent, true);
  // [MQTT-4.4.0-1] unacknowledged PUBLISH packets are resent with DUP and the same packet id.
  const resent = await second.client.expect(PacketType.Publish);
  assert.equal(resent.packetId, sent.packetId);
  assert.equal(resent.fixedHeader.dup, true);
  assert.equal(decoder.decode(resent.payload), "held");
  assert.equal(broker.server.info.inflight, 1);
  await second.client.send(ackPacket(PacketType.Puback, resent.packetId!));
  assert.deepEqual(await second.client.sync(), []);
  assert.equal(broker.server.info.inflight, 0);
  second.client.close();
  pub.close();
});

Deno.test("`Server` runs an outbound QoS 2 flow: PUBLISH, PUBREC, PUBREL, PUBCOMP", async () => {
  await using broker = await startBroker();
  const { client: sub } = await RawClient.connect(broker, "sub");
  await sub.subscribe([{ filter: "out2/t", qos: 2 }]);
  const { client: pub } = await RawClient.connect(broker, "pub");
  await pub.send(publishPacket("out2/t", "exactly once", 2, { packetId: 3 }));
  await pub.expect(PacketType.Pubrec);
  await pub.send(ackPacket(PacketType.Pubrel, 3));
  await pub.expect(PacketType.Pubcomp);

  const message = await sub.expect(PacketType.Publish);
  assert.equal(message.fixedHeader.qos, 2);
  assert.equal(decoder.decode(message.payload), "exactly once");
  const id = message.packetId!;
  await sub.send(ackPacket(PacketType.Pubrec, id));
  const pubrel = await sub.expect(PacketType.Pubrel);
  assert.equal(pubrel.packetId, id);
  assert.equal(pubrel.reasonCode, 0x00);
  assert.equal(broker.server.info.inflight, 1);
  await sub.send(ackPacket(PacketType.Pubcomp, id));
  assert.deepEqual(await sub.sync(), []);
  assert.equal(broker.server.info.inflight, 0);
  sub.close();
  pub.close();
});

Deno.test("`Server` ends an outbound QoS 2 flow on a PUBREC with an error code", async () => {
  await using broker = await startBroker();
  // Receive Maximum 1: the second message can only go once the first flow has ended.
  const { client: sub } = await RawClient.connect(broker, "sub", { properties: { receiveMaximum: 1 } });
  await sub.subscribe([{ filter: "rec/t", qos: 2 }]);
  const { client: pub } = await RawClient.connect(broker, "pub");
  for (const [id, payload] of [[1, "refused"], [2, "next"]] as const) {
    await pub.send(publishPacket("rec/t", payload, 2, { packetId: id }));
    await pub.expect(PacketType.Pubrec);
    await pub.send(ackPacket(PacketType.Pubrel, id));
    await pub.expect(PacketType.Pubcomp);
  }

  const first = await sub.expect(PacketType.Publish);
  assert.equal(decoder.decode(first.payload), "refused");
  assert.equal(first.fixedHeader.qos, 2);
  assert.deepEqual(await sub.sync(), []);
  await sub.send(ackPacket(PacketType.Pubrec, first.packetId!, 0x80));
  // No PUBREL for the refused message; the quota it held goes to the next one.
  const after = await sub.sync();
  assert.deepEqual(after.map((p) => [p.fixedHeader.type, decoder.decode(p.payload)]), [[
    PacketType.Publish,
    "next",
  ]]);
  await sub.send(ackPacket(PacketType.Pubrec, after[0].packetId!));
  await sub.expect(PacketType.Pubrel);
  await sub.send(ackPacket(PacketType.Pubcomp, after[0].packetId!));
  assert.deepEqual(await sub.sync(), []);
  assert.equal(broker.server.info.inflight, 0);
  sub.close();
  pub.close();
});

Deno.test("`Server` gives every in-flight outbound message its own packet id", async () => {
  await using broker = await startBroker();
  const { client: sub } = await RawClient.connect(broker, "sub");
  await sub.subscribe([{ filter: "ids/#", qos: 2 }]);
  const { client: pub } = await RawClient.connect(broker, "pub");
  for (let i = 1; i <= 20; i++) {
    await pub.send(publishPacket(`ids/${i}`, String(i), i % 2 === 0 ? 2 : 1, { packetId: i }));
  }
  const pubrecs: number[] = [];
  for (let i = 1; i <= 20; i++) {
    const reply = await pub.read();
    if (reply?.fixedHeader.type === PacketType.Pubrec) pubrecs.push(reply.packetId!);
  }
  for (const id of pubrecs) await pub.send(ackPacket(PacketType.Pubrel, id));
  for (const _ of pubrecs) await pub.expect(PacketType.Pubcomp);
  const first: Packet[] = [];
  while (first.length < 20) first.push(await sub.expect(PacketType.Publish));
  const ids = first.map((p) => p.packetId!);
  assert.equal(new Set(ids).size, 20);
  for (const id of ids) assert.ok(id >= 1 && id <= 0xffff);
  // Complete half of them; new messages must not reuse the ids still in flight.
  for (const p of first.slice(0, 10)) {
    if (p.fixedHeader.qos === 1) await sub.send(ackPacket(PacketType.Puback, p.packetId!));
    else {
      await sub.send(ackPacket(PacketType.Pubrec, p.packetId!));
      await sub.expect(PacketType.Pubrel);
      await sub.send(ackPacket(PacketType.Pubcomp, p.packetId!));
    }
  }
  for (let i = 21; i <= 30; i++) await pub.send(publishPacket(`ids/${i}`, String(i), 1, { packetId: i }));
  for (let i = 21; i <= 30; i++) await pub.expect(PacketType.Puback);
  const later = (await sub.sync()).map((p) => p.packetId!);
  assert.equal(later.length, 10);
  const stillInFlight = new Set(ids.slice(10));
  for (const id of later) assert.ok(!stillInFlight.has(id), `packet id ${id} is still in flight`);
  assert.equal(new Set(later).size, 10);
  sub.close();
  pub.close();
});

Deno.test("`Server` with maximumQos 1 advertises it and disconnects a QoS 2 publisher with 0x9B", async () => {
  await using broker = await startBroker({ capabilities: { maximumQos: 1 } });
  const { client, connack } = await RawClient.connect(broker, "c");
  assert.equal(connack.properties?.maximumQoS, 1);
  await client.send(publishPacket("mq/t", "x", 1, { packetId: 1 }));
  assert.equal((await client.expect(PacketType.Puback)).reasonCode, 0x10); // accepted; no subscriber
  await client.send(publishPacket("mq/t", "x", 2, { packetId: 2 }));
  const rest = await client.closed();
  assert.equal(rest.length, 1);
  assert.equal(rest[0].fixedHeader.type, PacketType.Disconnect);
  assert.equal(rest[0].reasonCode, 0x9b);
  client.close();
});

Deno.test("`Server` disconnects with 0x93 when unacknowledged QoS 2 publishes exceed its Receive Maximum", async () => {
  await using broker = await startBroker({ capabilities: { receiveMaximum: 3 } });
  const { client, connack } = await RawClient.connect(broker, "c");
  assert.equal(connack.properties?.receiveMaximum, 3);
  for (let id = 1; id <= 3; id++) {
    await client.send(publishPacket("rm/t", "x", 2, { packetId: id }));
    assert.equal((await client.expect(PacketType.Pubrec)).packetId, id);
  }
  // [MQTT-3.3.4-9] a fourth without any PUBREL.
  await client.send(publishPacket("rm/t", "x", 2, { packetId: 4 }));
  const rest = await client.closed();
  assert.deepEqual(rest.map((p) => [p.fixedHeader.type, p.reasonCode]), [[PacketType.Disconnect, 0x93]]);
  client.close();
});

Deno.test("`Server` accepts up to its Receive Maximum again once PUBRELs complete earlier flows", async () => {
  await using broker = await startBroker({ capabilities: { receiveMaximum: 2 } });
  const { client } = await RawClient.connect(broker, "c");
  for (let id = 1; id <= 6; id++) {
    await client.send(publishPacket("rm/t", "x", 2, { packetId: id }));
    assert.equal((await client.expect(PacketType.Pubrec)).packetId, id);
    await client.send(ackPacket(PacketType.Pubrel, id));
    assert.equal((await client.expect(PacketType.Pubcomp)).reasonCode, 0);
  }
  assert.deepEqual(await client.sync(), []);
  client.close();
});

Deno.test("`Server` sends at most the client's Receive Maximum of unacknowledged messages, in order", async () => {
  await using broker = await startBroker();
  const { client: sub } = await RawClient.connect(broker, "sub", { properties: { receiveMaximum: 2 } });
  await sub.subscribe([{ filter: "flow/t", qos: 1 }]);
  const { client: pub } = await RawClient.connect(broker, "pub");
  for (let i = 1; i <= 4; i++) await pub.send(publishPacket("flow/t", `m${i}`, 1, { packetId: i }));
  for (let i = 1; i <= 4; i++) await pub.expect(PacketType.Puback);

  const firstTwo = await sub.sync();
  assert.deepEqual(firstTwo.map((p) => decoder.decode(p.payload)), ["m1", "m2"]);
  await sub.send(ackPacket(PacketType.Puback, firstTwo[0].packetId!));
  const third = await sub.sync();
  assert.deepEqual(third.map((p) => decoder.decode(p.payload)), ["m3"]);
  await sub.send(ackPacket(PacketType.Puback, firstTwo[1].packetId!));
  const fourth = await sub.sync();
  assert.deepEqual(fourth.map((p) => decoder.decode(p.payload)), ["m4"]);
  await sub.send(ackPacket(PacketType.Puback, third[0].packetId!));
  await sub.send(ackPacket(PacketType.Puback, fourth[0].packetId!));
  assert.deepEqual(await sub.sync(), []);
  assert.equal(broker.server.info.inflight, 0);
  sub.close();
  pub.close();
});

Deno.test("`Server` delivers QoS 1 and 2 exactly once between MQTT.js v3.1.1 and v5 clients", async () => {
  await using broker = await startBroker();
  const sub4 = await mqttConnect(broker, { clientId: "sub4", protocolVersion: 4 });
  const sub5 = await mqttConnect(broker, { clientId: "sub5", protocolVersion: 5 });
  const pub4 = await mqttConnect(broker, { clientId: "pub4", protocolVersion: 4 });
  const pub5 = await mqttConnect(broker, { clientId: "pub5", protocolVersion: 5 });
  const got4 = collect(sub4);
  const got5 = collect(sub5);
  await sub4.subscribeAsync("mq/#", { qos: 2 });
  await sub5.subscribeAsync("mq/#", { qos: 1 });
  await pub4.publishAsync("mq/a", "from4", { qos: 2 });
  await pub5.publishAsync("mq/b", "from5", { qos: 2 });
  await pub5.publishAsync("mq/c", "q1", { qos: 1 });
  await waitFor(() => got4.length === 3 && got5.length === 3);
  const summary = (got: typeof got4) => got.map((m) => [m.topic, m.payload, m.packet.qos]);
  assert.deepEqual(summary(got4), [["mq/a", "from4", 2], ["mq/b", "from5", 2], ["mq/c", "q1", 1]]);
  assert.deepEqual(summary(got5), [["mq/a", "from4", 1], ["mq/b", "from5", 1], ["mq/c", "q1", 1]]);
  await waitFor(() => broker.server.info.inflight === 0, 3000, "every flow to complete");
  for (const client of [sub4, sub5, pub4, pub5]) await client.endAsync();
});

Deno.test("`Server` resends an expired QoS 2 message whose delivery started, under the same packet id", async () => {
  await using broker = await startBroker();
  const options = { connect: { clean: false }, properties: { sessionExpiryInterval: 60 } };
  const first = await RawClient.connect(broker, "expiring", options);
  await first.client.subscribe([{ filter: "exp/#", qos: 2 }]);
  const pub = await mqttConnect(broker, { clientId: "pub" });
  await pub.publishAsync("exp/a", "short-lived", { qos: 2, properties: { messageExpiryInterval: 1 } });
  const sent = await first.client.expect(PacketType.Publish);
  // No PUBREC: the connection drops while the client may hold this packet id awaiting PUBREL.
  first.client.close();
  await waitFor(() => broker.server.info.clientsConnected === 1);
  await new Promise((resolve) => setTimeout(resolve, 1100)); // the message expires meanwhile
  const second = await RawClient.connect(broker, "expiring", options);
  assert.equal(second.connack.sessionPresent, true);
  const again = await second.client.expect(PacketType.Publish);
  assert.equal(again.packetId, sent.packetId);
  assert.equal(again.fixedHeader.dup, true);
  assert.equal(new TextDecoder().decode(again.payload), "short-lived");
  second.client.close();
  await pub.endAsync();
});

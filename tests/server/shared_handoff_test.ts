/**
 * Shared subscriptions: a member that leaves its group passes on what its client does not have
 * (MQTT 5.0 §4.8.2), over real sockets: member A is a raw client that acknowledges only what the test
 * says, member B and the publisher are MQTT.js v5 clients.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DROP_REASONS } from "../../src/system.ts";
import { PacketType } from "../../mod.ts";
import {
  ackPacket,
  collect,
  delay,
  mqttConnect,
  RawClient,
  startBroker,
  type TestBroker,
  waitFor,
} from "../helpers.ts";

const FILTER = "$share/g/t";
const text = (payload: Uint8Array | undefined) => new TextDecoder().decode(payload);

/** Publishes `t` messages in order (each acknowledged before the next). */
async function publishAll(broker: TestBroker, messages: [string, 1 | 2][]): Promise<void> {
  const pub = await mqttConnect(broker, { clientId: "pub" });
  for (const [payload, qos] of messages) await pub.publishAsync("t", payload, { qos });
  await pub.endAsync();
}

/** Member A: a raw v5 client in the group, with a small Receive Maximum so that messages queue. */
async function memberA(broker: TestBroker, properties: Record<string, number> = {}, clean = true) {
  const { client } = await RawClient.connect(broker, "a", {
    connect: { clean },
    properties: { receiveMaximum: 3, ...properties },
  });
  if (clean) await client.subscribe([{ filter: FILTER, qos: 2 }]);
  return client;
}

/** Reads `n` PUBLISH packets. */
async function publishes(client: RawClient, n: number) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await client.expect(PacketType.Publish));
  return out;
}

function dropped(broker: TestBroker, qos: number, reason: string): number {
  return broker.server.info.traffic
    .messagesDropped[qos * DROP_REASONS.length + DROP_REASONS.indexOf(reason as never)];
}

Deno.test("`shared` a member whose session ends at DISCONNECT passes its unacknowledged messages on", async () => {
  await using broker = await startBroker();
  const a = await memberA(broker);
  await publishAll(broker, [["m1", 1], ["m2", 2], ["m3", 2], ["m4", 1], ["m5", 2], ["m6", 1]]);
  // Receive Maximum 3: m1-m3 are sent, m4-m6 queued.
  const sent = await publishes(a, 3);
  assert.deepEqual(sent.map((p) => text(p.payload)), ["m1", "m2", "m3"]);
  await a.send(ackPacket(PacketType.Pubrec, sent[2].packetId!)); // m3 is A's now
  await a.expect(PacketType.Pubrel);
  assert.deepEqual(await a.sync(), []); // nothing more while the quota is used
  const b = await mqttConnect(broker, { clientId: "b" });
  const got = collect(b);
  const order: string[] = []; // as sent (MQTT.js emits a QoS 2 message at its PUBREL)
  b.on("packetreceive", (packet) => packet.cmd === "publish" && order.push(String(packet.payload)));
  await b.subscribeAsync(FILTER, { qos: 2 });
  await a.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 }); // session expiry 0
  await a.closed();
  // m1: QoS 1 not PUBACKed; m4-m6: never sent. m2 (QoS 2 sent, no PUBREC) may go to nobody else
  // [MQTT-4.8.2-5]; m3 was PUBRECed: A has it.
  await waitFor(() => got.length >= 4, 3000, "the messages A gave back");
  await delay(200);
  assert.deepEqual(order, ["m1", "m4", "m5", "m6"]);
  assert.deepEqual(got.map((m) => `${m.payload}:${m.packet.qos}`).sort(), ["m1:1", "m4:1", "m5:2", "m6:1"]);
  assert.ok(got.every((m) => !m.packet.dup), "DUP 0: B never had them");
  assert.equal(dropped(broker, 1, "no_member") + dropped(broker, 2, "no_member"), 0);
  await b.endAsync();
});

Deno.test("`shared` UNSUBSCRIBE passes on what was queued for the group; what is in flight stays", async () => {
  await using broker = await startBroker();
  const a = await memberA(broker, { receiveMaximum: 1 });
  await publishAll(broker, [["m1", 1], ["m2", 1], ["m3", 2]]);
  const [first] = await publishes(a, 1);
  assert.equal(text(first.payload), "m1");
  const b = await mqttConnect(broker, { clientId: "b" });
  const got = collect(b);
  await b.subscribeAsync(FILTER, { qos: 2 });
  await a.send({
    fixedHeader: { type: PacketType.Unsubscribe },
    packetId: 9,
    filters: [{ filter: FILTER, qos: 0 }],
  });
  await a.expect(PacketType.Unsuback);
  await waitFor(() => got.length >= 2, 3000, "the queued messages");
  // [MQTT-3.10.4-3] the delivery A had started is completed to A: its PUBACK ends it, and nothing follows.
  await a.send(ackPacket(PacketType.Puback, first.packetId!));
  assert.deepEqual(await a.sync(), []);
  await delay(200);
  assert.deepEqual(got.map((m) => m.payload), ["m2", "m3"]);
  a.close();
  await b.endAsync();
});

Deno.test("`shared` a disconnected persistent member keeps its messages; new ones go to connected members; expiry passes them on", async () => {
  await using broker = await startBroker();
  const a = await memberA(broker, { sessionExpiryInterval: 1 });
  await publishAll(broker, [["m1", 1], ["m2", 1]]);
  await publishes(a, 2);
  const b = await mqttConnect(broker, { clientId: "b" });
  const got = collect(b);
  await b.subscribeAsync(FILTER, { qos: 1 }); // granted QoS 1: what A gives back comes at QoS 1
  a.close(); // lost connection: the session waits (1 s) with m1 and m2
  await waitFor(() => broker.server.clients.get("a")?.closed === true, 3000, "A's connection to end");
  await publishAll(broker, [["m3", 2], ["m4", 2]]);
  await waitFor(() => got.length >= 2, 3000, "the new messages");
  assert.deepEqual(got.map((m) => m.payload), ["m3", "m4"], "new messages to the connected member only");
  await waitFor(() => got.length >= 4, 4000, "A's messages after its session expired");
  await delay(200);
  assert.deepEqual(got.map((m) => m.payload), ["m3", "m4", "m1", "m2"]);
  assert.deepEqual(got.map((m) => m.packet.qos), [1, 1, 1, 1]);
  await b.endAsync();
});

Deno.test("`shared` a clean-start takeover ends the member's session: its messages go on", async () => {
  await using broker = await startBroker();
  const a = await memberA(broker, { sessionExpiryInterval: 60 });
  await publishAll(broker, [["m1", 1], ["m2", 1], ["m3", 1], ["m4", 2]]);
  await publishes(a, 3);
  const b = await mqttConnect(broker, { clientId: "b" });
  const got = collect(b);
  await b.subscribeAsync(FILTER, { qos: 2 });
  const { client: again } = await RawClient.connect(broker, "a", { connect: { clean: true } });
  await waitFor(() => got.length >= 4, 3000, "the messages of the session that ended");
  await delay(200);
  assert.deepEqual(got.map((m) => m.payload), ["m1", "m2", "m3", "m4"]);
  assert.deepEqual(await again.sync(), [], "the new session has none of them");
  again.close();
  a.close();
  await b.endAsync();
});

Deno.test("`shared` no member left: what the last member gave back is dropped and counted", async () => {
  await using broker = await startBroker();
  const a = await memberA(broker);
  await publishAll(broker, [["m1", 1], ["m2", 1], ["m3", 1], ["m4", 1], ["m5", 2]]);
  await publishes(a, 3);
  await a.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 });
  await a.closed();
  await waitFor(() => dropped(broker, 1, "no_member") === 4, 3000, "four QoS 1 drops");
  assert.equal(dropped(broker, 2, "no_member"), 1);
  // Nothing is left over: a new member gets only new messages.
  const b = await mqttConnect(broker, { clientId: "b" });
  const got = collect(b);
  await b.subscribeAsync(FILTER, { qos: 1 });
  await publishAll(broker, [["m6", 1]]);
  await waitFor(() => got.length >= 1, 3000, "the new message");
  await delay(100);
  assert.deepEqual(got.map((m) => m.payload), ["m6"]);
  await b.endAsync();
});

Deno.test("`shared` a PUBACK written after the member's DISCONNECT is not read: the message goes on when the session ends", async () => {
  // The chaos run's member that moved just as a message reached it: its client handled the message after
  // writing DISCONNECT, so its PUBACK followed the DISCONNECT, which nothing may follow
  // [MQTT-3.14.4-1]: the broker reads nothing after it. Its session then ended (a clean start): the message, never acknowledged, goes to
  // another member (§4.8.2), while one PUBACKed before the DISCONNECT does not.
  await using broker = await startBroker();
  const a = await memberA(broker, { sessionExpiryInterval: 60 });
  await publishAll(broker, [["m1", 1], ["m2", 1]]);
  const [m1, m2] = await publishes(a, 2);
  assert.deepEqual([text(m1.payload), text(m2.payload)], ["m1", "m2"]);
  const b = await mqttConnect(broker, { clientId: "b" });
  const got = collect(b);
  await b.subscribeAsync(FILTER, { qos: 1 });
  const puback = (packetId: number) => [0x40, 0x02, packetId >> 8, packetId & 0xff];
  // One write: PUBACK m2, DISCONNECT, PUBACK m1.
  await a.sendBytes([...puback(m2.packetId!), 0xe0, 0x00, ...puback(m1.packetId!)]);
  await a.closed();
  assert.equal(broker.server.clients.get("a")?.state.inflight.outbound.size, 1, "m1 is still in flight");
  assert.equal(got.length, 0, "a session that goes on keeps it");
  const { client: again } = await RawClient.connect(broker, "a", { connect: { clean: true } });
  await waitFor(() => got.length >= 1, 3000, "m1, given back by the session that ended");
  await delay(200);
  assert.deepEqual(got.map((m) => m.payload), ["m1"]);
  assert.equal(got[0].packet.dup, false);
  assert.deepEqual(await again.sync(), []);
  again.close();
  await b.endAsync();
});

/**
 * Sessions over real TCP sockets: Clean Start / Clean Session, Session Expiry, offline messages,
 * session takeover, redelivery of unacknowledged messages, and the connected-clients count.
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "../mqtt.ts";
import { type Hook, type Packet, PacketType, type QoS } from "../../mod.ts";
import { collect, delay, mqttConnect, RawClient, startBroker, type TestBroker, waitFor } from "../helpers.ts";

const PROTOCOL_ERROR = 0x82;
const SESSION_TAKEN_OVER = 0x8e;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Subscribes a raw client to one filter and waits for the SUBACK. */
async function subscribe(client: RawClient, filter: string, qos: QoS, packetId = 1): Promise<Packet> {
  await client.send({
    fixedHeader: { type: PacketType.Subscribe, qos: 1 },
    packetId,
    filters: [{ filter, qos }],
  });
  const suback = await client.expect(PacketType.Suback);
  assert.deepEqual(suback.reasonCodes, [qos]);
  return suback;
}

/** Reads `count` PUBLISH packets (failing on anything else). */
async function readPublishes(client: RawClient, count: number): Promise<Packet[]> {
  const out: Packet[] = [];
  for (let i = 0; i < count; i++) out.push(await client.expect(PacketType.Publish));
  return out;
}

/** The payload of a packet as text. */
function text(packet: Packet): string {
  return decoder.decode(packet.payload);
}

/**
 * Connects an MQTT.js client and returns it with its CONNACK (for Session Present) and the messages
 * it receives, collected from the start (a resumed session's messages may come with the CONNACK).
 */
function mqttConnectWithConnack(
  broker: TestBroker,
  options: mqtt.IClientOptions,
): Promise<{ client: mqtt.MqttClient; connack: mqtt.IConnackPacket; messages: ReturnType<typeof collect> }> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(broker.url, { protocolVersion: 5, reconnectPeriod: 0, ...options });
    const messages = collect(client);
    client.once("connect", (connack) => resolve({ client, connack, messages }));
    client.once("error", (error) => {
      client.end(true);
      reject(error);
    });
  });
}

/** A publisher that sends one message per call and waits for the broker's ack. */
async function publisher(broker: TestBroker): Promise<mqtt.MqttClient> {
  return await mqttConnect(broker, { clientId: `pub-${crypto.randomUUID()}` });
}

// ---------------------------------------------------------------------------------------------
// Clean Start and Session Present

Deno.test("CONNECT with Clean Start gets Session Present false even when a session existed", async () => {
  await using broker = await startBroker();
  const first = await RawClient.connect(broker, "c1", {
    connect: { clean: true },
    properties: { sessionExpiryInterval: 60 },
  });
  assert.equal(first.connack.sessionPresent, false);
  await subscribe(first.client, "a/b", 1);
  first.client.close();
  await waitFor(() => broker.server.clients.get("c1")?.closed === true);
  const second = await RawClient.connect(broker, "c1", { connect: { clean: true } });
  assert.equal(second.connack.sessionPresent, false);
  second.client.close();
});

Deno.test("CONNECT without Clean Start and no session gets Session Present false", async () => {
  await using broker = await startBroker();
  const { client, connack } = await RawClient.connect(broker, "fresh", {
    connect: { clean: false },
    properties: { sessionExpiryInterval: 60 },
  });
  assert.equal(connack.reasonCode, 0);
  assert.equal(connack.sessionPresent, false);
  client.close();
});

// ---------------------------------------------------------------------------------------------
// Session expiry and offline messages (v5)

Deno.test("Session with a Session Expiry Interval is resumed with its subscriptions and offline QoS 1 messages", async () => {
  await using broker = await startBroker();
  const first = await RawClient.connect(broker, "keeper", {
    connect: { clean: true },
    properties: { sessionExpiryInterval: 60 },
  });
  await subscribe(first.client, "news/#", 2);
  await first.client.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 });
  assert.deepEqual(await first.client.closed(), []);
  first.client.close();
  await waitFor(() => broker.server.clients.get("keeper")?.closed === true);

  const pub = await publisher(broker);
  await pub.publishAsync("news/qos0", "lost", { qos: 0 });
  await pub.publishAsync("news/qos1", "kept-1", { qos: 1 });
  await pub.publishAsync("news/qos2", "kept-2", { qos: 2 });

  const second = await RawClient.connect(broker, "keeper", {
    connect: { clean: false },
    properties: { sessionExpiryInterval: 60 },
  });
  assert.equal(second.connack.sessionPresent, true);
  // The QoS 0 message published while offline is not queued [MQTT-3.1.2-5 non-normative]: the
  // first message delivered is the QoS 1 one.
  const [m1, m2] = await readPublishes(second.client, 2);
  assert.equal(m1.topicName, "news/qos1");
  assert.equal(text(m1), "kept-1");
  assert.equal(m1.fixedHeader.qos, 1);
  assert.equal(m2.topicName, "news/qos2");
  assert.equal(m2.fixedHeader.qos, 2);
  await second.client.send({
    fixedHeader: { type: PacketType.Puback },
    packetId: m1.packetId,
    reasonCode: 0,
  });
  await second.client.send({
    fixedHeader: { type: PacketType.Pubrec },
    packetId: m2.packetId,
    reasonCode: 0,
  });
  await second.client.expect(PacketType.Pubrel);
  await second.client.send({
    fixedHeader: { type: PacketType.Pubcomp },
    packetId: m2.packetId,
    reasonCode: 0,
  });

  // The subscription is still there: a new message arrives without resubscribing.
  await pub.publishAsync("news/live", "live", { qos: 1 });
  const live = await second.client.expect(PacketType.Publish);
  assert.equal(text(live), "live");
  await second.client.send({
    fixedHeader: { type: PacketType.Puback },
    packetId: live.packetId,
    reasonCode: 0,
  });
  second.client.close();
  await pub.endAsync();
});

Deno.test("Session with a Session Expiry Interval of 0 is gone on reconnect", async () => {
  await using broker = await startBroker();
  const first = await RawClient.connect(broker, "short", { properties: { sessionExpiryInterval: 0 } });
  await subscribe(first.client, "t", 1);
  first.client.close();
  await waitFor(() => broker.server.clients.get("short") === undefined, 3000, "the session to end");

  const pub = await publisher(broker);
  await pub.publishAsync("t", "while-offline", { qos: 1 });
  const second = await RawClient.connect(broker, "short", {
    connect: { clean: false },
    properties: { sessionExpiryInterval: 60 },
  });
  assert.equal(second.connack.sessionPresent, false);
  // The old subscription is gone: a message to "t" does not arrive, a new subscription's does.
  await subscribe(second.client, "marker", 1);
  await pub.publishAsync("t", "after", { qos: 1 });
  await pub.publishAsync("marker", "marker", { qos: 1 });
  const first2 = await second.client.expect(PacketType.Publish);
  assert.equal(first2.topicName, "marker");
  second.client.close();
  await pub.endAsync();
});

Deno.test("Session with a Session Expiry Interval of 1 s is gone after 1 s", async () => {
  await using broker = await startBroker();
  const first = await RawClient.connect(broker, "one-second", { properties: { sessionExpiryInterval: 1 } });
  await subscribe(first.client, "t", 1);
  first.client.close();
  await waitFor(() => broker.server.clients.get("one-second")?.closed === true);
  await delay(1100);
  const second = await RawClient.connect(broker, "one-second", {
    connect: { clean: false },
    properties: { sessionExpiryInterval: 1 },
  });
  assert.equal(second.connack.sessionPresent, false);
  second.client.close();
});

Deno.test("Session still within its Session Expiry Interval is resumed", async () => {
  await using broker = await startBroker();
  const first = await RawClient.connect(broker, "two-seconds", { properties: { sessionExpiryInterval: 2 } });
  await subscribe(first.client, "t", 1);
  first.client.close();
  await waitFor(() => broker.server.clients.get("two-seconds")?.closed === true);
  await delay(500);
  const second = await RawClient.connect(broker, "two-seconds", {
    connect: { clean: false },
    properties: { sessionExpiryInterval: 2 },
  });
  assert.equal(second.connack.sessionPresent, true);
  second.client.close();
});

Deno.test("server.clients no longer holds a session once it expired", async () => {
  await using broker = await startBroker();
  const expired: string[] = [];
  await broker.server.addHook({ id: "expiry", onClientExpired: (client) => expired.push(client.id) });
  const { client } = await RawClient.connect(broker, "expiring", {
    properties: { sessionExpiryInterval: 1 },
  });
  client.close();
  await waitFor(() => broker.server.clients.get("expiring")?.closed === true);
  assert.ok(broker.server.clients.get("expiring"), "kept while within the expiry interval");
  const closedAt = Date.now();
  await waitFor(() => broker.server.clients.get("expiring") === undefined, 3000, "the session to expire");
  assert.ok(Date.now() - closedAt >= 900, "not before the interval");
  assert.deepEqual(expired, ["expiring"]);
  assert.equal(broker.server.clients.count, 0);
});

Deno.test("DISCONNECT with a Session Expiry Interval when CONNECT had 0 gets DISCONNECT 0x82", async () => {
  await using broker = await startBroker();
  const { client } = await RawClient.connect(broker, "extend", { properties: { sessionExpiryInterval: 0 } });
  await client.send({
    fixedHeader: { type: PacketType.Disconnect },
    reasonCode: 0,
    properties: { sessionExpiryInterval: 60 },
  });
  const seen = await client.closed();
  assert.equal(seen.length, 1);
  assert.equal(seen[0].fixedHeader.type, PacketType.Disconnect);
  assert.equal(seen[0].reasonCode, PROTOCOL_ERROR);
  client.close();
  await waitFor(() => broker.server.clients.get("extend") === undefined, 3000, "the session to end");
});

Deno.test("DISCONNECT with a Session Expiry Interval of 0 ends a session that would have been kept", async () => {
  await using broker = await startBroker();
  const first = await RawClient.connect(broker, "shorten", { properties: { sessionExpiryInterval: 60 } });
  await first.client.send({
    fixedHeader: { type: PacketType.Disconnect },
    reasonCode: 0,
    properties: { sessionExpiryInterval: 0 },
  });
  assert.deepEqual(await first.client.closed(), []);
  first.client.close();
  await waitFor(() => broker.server.clients.get("shorten") === undefined, 3000, "the session to end");
  const second = await RawClient.connect(broker, "shorten", {
    connect: { clean: false },
    properties: { sessionExpiryInterval: 60 },
  });
  assert.equal(second.connack.sessionPresent, false);
  second.client.close();
});

// ---------------------------------------------------------------------------------------------
// v3.1.1 Clean Session

Deno.test("Session of a v3.1.1 MQTT.js client without clean session is kept with its offline messages", async () => {
  await using broker = await startBroker();
  const options = { clientId: "js-persistent", protocolVersion: 4 as const, clean: false };
  const first = await mqttConnectWithConnack(broker, options);
  assert.equal(first.connack.sessionPresent, false);
  await first.client.subscribeAsync("jobs/#", { qos: 1 });
  await first.client.endAsync();
  await waitFor(() => broker.server.clients.get("js-persistent")?.closed === true);
  assert.equal(broker.server.clients.get("js-persistent")?.state.expiresAt, 0, "never expires");

  const pub = await publisher(broker);
  await pub.publishAsync("jobs/1", "offline", { qos: 1 });

  const second = await mqttConnectWithConnack(broker, options);
  assert.equal(second.connack.sessionPresent, true);
  const messages = second.messages;
  await waitFor(() => messages.length === 1, 3000, "the offline message");
  assert.equal(messages[0].topic, "jobs/1");
  assert.equal(messages[0].payload, "offline");
  assert.equal(messages[0].packet.qos, 1);
  await second.client.endAsync();
  await pub.endAsync();
});

Deno.test("Session of a v3.1.1 client with clean session is discarded", async () => {
  await using broker = await startBroker();
  const persistent = { version: 4 as const, connect: { clean: false } };
  const first = await RawClient.connect(broker, "v4-clean", persistent);
  await subscribe(first.client, "t", 1);
  first.client.close();
  await waitFor(() => broker.server.clients.get("v4-clean")?.closed === true);

  // Clean session true: the stored session is discarded and this one ends on disconnect.
  const clean = await RawClient.connect(broker, "v4-clean", { version: 4, connect: { clean: true } });
  assert.equal(clean.connack.sessionPresent, false);
  clean.client.close();
  await waitFor(() => broker.server.clients.get("v4-clean") === undefined, 3000, "the session to end");

  const third = await RawClient.connect(broker, "v4-clean", persistent);
  assert.equal(third.connack.sessionPresent, false);
  third.client.close();
});

// ---------------------------------------------------------------------------------------------
// Session takeover

Deno.test("Session takeover sends the first connection DISCONNECT 0x8E and the second one works", async () => {
  await using broker = await startBroker();
  const first = await RawClient.connect(broker, "dup", { properties: { sessionExpiryInterval: 60 } });
  await subscribe(first.client, "t", 1);
  const second = await RawClient.connect(broker, "dup", {
    connect: { clean: false },
    properties: { sessionExpiryInterval: 60 },
  });
  assert.equal(second.connack.reasonCode, 0);
  assert.equal(second.connack.sessionPresent, true);
  const seen = await first.client.closed();
  assert.equal(seen.length, 1);
  assert.equal(seen[0].fixedHeader.type, PacketType.Disconnect);
  assert.equal(seen[0].reasonCode, SESSION_TAKEN_OVER);
  first.client.close();

  // The subscription moved to the new connection.
  const pub = await publisher(broker);
  await pub.publishAsync("t", "to-second", { qos: 1 });
  const message = await second.client.expect(PacketType.Publish);
  assert.equal(text(message), "to-second");
  await second.client.send({
    fixedHeader: { type: PacketType.Puback },
    packetId: message.packetId,
    reasonCode: 0,
  });
  await second.client.send({ fixedHeader: { type: PacketType.Pingreq } });
  await second.client.expect(PacketType.Pingresp);
  assert.equal(broker.server.info.clientsConnected, 2);
  second.client.close();
  await pub.endAsync();
  await waitFor(() => broker.server.info.clientsConnected === 0, 3000, "no connected clients");
});

Deno.test("Session takeover closes a v3.1.1 connection without a packet", async () => {
  await using broker = await startBroker();
  const first = await RawClient.connect(broker, "dup4", { version: 4 });
  const second = await RawClient.connect(broker, "dup4", { version: 4 });
  assert.equal(second.connack.reasonCode, 0);
  assert.deepEqual(await first.client.closed(), []);
  first.client.close();
  await second.client.send({ fixedHeader: { type: PacketType.Pingreq } });
  await second.client.expect(PacketType.Pingresp);
  second.client.close();
});

Deno.test("Session takeover with Clean Start discards the old session's subscriptions", async () => {
  await using broker = await startBroker();
  const first = await RawClient.connect(broker, "dup-clean", { properties: { sessionExpiryInterval: 60 } });
  await subscribe(first.client, "old", 1);
  const second = await RawClient.connect(broker, "dup-clean", { connect: { clean: true } });
  assert.equal(second.connack.sessionPresent, false);
  await first.client.closed();
  first.client.close();
  await subscribe(second.client, "marker", 1);
  const pub = await publisher(broker);
  await pub.publishAsync("old", "old", { qos: 1 });
  await pub.publishAsync("marker", "marker", { qos: 1 });
  const message = await second.client.expect(PacketType.Publish);
  assert.equal(message.topicName, "marker");
  second.client.close();
  await pub.endAsync();
});

Deno.test("Session takeover between MQTT.js clients closes the first one", async () => {
  await using broker = await startBroker();
  const first = await mqttConnect(broker, { clientId: "js-dup" });
  const closed = new Promise<void>((resolve) => first.once("close", () => resolve()));
  const second = await mqttConnect(broker, { clientId: "js-dup" });
  await closed;
  assert.equal(first.connected, false);
  assert.equal(second.connected, true);
  await first.endAsync(true);
  await second.endAsync();
});

// ---------------------------------------------------------------------------------------------
// Redelivery

Deno.test("Session resumed after a drop resends unacknowledged QoS 1 and 2 messages with DUP in order", async () => {
  await using broker = await startBroker();
  const sessionExpiry = { properties: { sessionExpiryInterval: 60 } };
  const first = await RawClient.connect(broker, "slow", sessionExpiry);
  await subscribe(first.client, "q/#", 2);
  const pub = await publisher(broker);
  await pub.publishAsync("q/1", "one", { qos: 1 });
  await pub.publishAsync("q/2", "two", { qos: 2 });
  await pub.publishAsync("q/3", "three", { qos: 1 });
  await pub.publishAsync("q/4", "four", { qos: 2 });
  const original = await readPublishes(first.client, 4);
  assert.deepEqual(original.map(text), ["one", "two", "three", "four"]);
  assert.ok(original.every((p) => !p.fixedHeader.dup));
  first.client.close(); // no acks
  await waitFor(() => broker.server.clients.get("slow")?.closed === true);

  const second = await RawClient.connect(broker, "slow", { connect: { clean: false }, ...sessionExpiry });
  assert.equal(second.connack.sessionPresent, true);
  const resent = await readPublishes(second.client, 4);
  assert.deepEqual(resent.map(text), ["one", "two", "three", "four"]);
  assert.deepEqual(resent.map((p) => p.topicName), ["q/1", "q/2", "q/3", "q/4"]);
  assert.deepEqual(resent.map((p) => p.fixedHeader.qos), [1, 2, 1, 2]);
  assert.ok(resent.every((p) => p.fixedHeader.dup === true), "DUP is set on every resend");
  // [MQTT-4.4.0-1] the original packet identifiers.
  assert.deepEqual(resent.map((p) => p.packetId), original.map((p) => p.packetId));

  // Acknowledging them completes every flow.
  for (const p of resent) {
    if (p.fixedHeader.qos === 1) {
      await second.client.send({
        fixedHeader: { type: PacketType.Puback },
        packetId: p.packetId,
        reasonCode: 0,
      });
    } else {
      await second.client.send({
        fixedHeader: { type: PacketType.Pubrec },
        packetId: p.packetId,
        reasonCode: 0,
      });
      const pubrel = await second.client.expect(PacketType.Pubrel);
      assert.equal(pubrel.packetId, p.packetId);
      await second.client.send({
        fixedHeader: { type: PacketType.Pubcomp },
        packetId: p.packetId,
        reasonCode: 0,
      });
    }
  }
  await waitFor(() => broker.server.clients.get("slow")?.state.inflight.outbound.size === 0);
  second.client.close();
  await pub.endAsync();
});

Deno.test("Session resumed after PUBREC resends PUBREL, not the PUBLISH", async () => {
  await using broker = await startBroker();
  const sessionExpiry = { properties: { sessionExpiryInterval: 60 } };
  const first = await RawClient.connect(broker, "half", sessionExpiry);
  await subscribe(first.client, "q", 2);
  const pub = await publisher(broker);
  await pub.publishAsync("q", "exactly-once", { qos: 2 });
  const publish = await first.client.expect(PacketType.Publish);
  assert.equal(publish.fixedHeader.qos, 2);
  await first.client.send({
    fixedHeader: { type: PacketType.Pubrec },
    packetId: publish.packetId,
    reasonCode: 0,
  });
  const pubrel = await first.client.expect(PacketType.Pubrel);
  assert.equal(pubrel.packetId, publish.packetId);
  first.client.close(); // no PUBCOMP
  await waitFor(() => broker.server.clients.get("half")?.closed === true);

  const second = await RawClient.connect(broker, "half", { connect: { clean: false }, ...sessionExpiry });
  assert.equal(second.connack.sessionPresent, true);
  const resent = await second.client.read();
  assert.equal(resent?.fixedHeader.type, PacketType.Pubrel);
  assert.equal(resent?.packetId, publish.packetId);
  await second.client.send({
    fixedHeader: { type: PacketType.Pubcomp },
    packetId: publish.packetId,
    reasonCode: 0,
  });
  // Nothing else was pending: the next packet is the PINGRESP.
  await second.client.send({ fixedHeader: { type: PacketType.Pingreq } });
  await second.client.expect(PacketType.Pingresp);
  assert.equal(broker.server.clients.get("half")?.state.inflight.outbound.size, 0);
  second.client.close();
  await pub.endAsync();
});

Deno.test("Session resumed on v3.1.1 resends unacknowledged QoS 1 messages with DUP", async () => {
  await using broker = await startBroker();
  const persistent = { version: 4 as const, connect: { clean: false } };
  const first = await RawClient.connect(broker, "slow4", persistent);
  await subscribe(first.client, "q", 1);
  const pub = await publisher(broker);
  await pub.publishAsync("q", "a", { qos: 1 });
  await pub.publishAsync("q", "b", { qos: 1 });
  const original = await readPublishes(first.client, 2);
  first.client.close();
  await waitFor(() => broker.server.clients.get("slow4")?.closed === true);

  const second = await RawClient.connect(broker, "slow4", persistent);
  assert.equal(second.connack.sessionPresent, true);
  const resent = await readPublishes(second.client, 2);
  assert.deepEqual(resent.map(text), ["a", "b"]);
  assert.ok(resent.every((p) => p.fixedHeader.dup === true));
  assert.deepEqual(resent.map((p) => p.packetId), original.map((p) => p.packetId));
  second.client.close();
  await pub.endAsync();
});

// ---------------------------------------------------------------------------------------------
// $SYS

Deno.test("$SYS/broker/clients/connected reflects connects, disconnects, takeovers and refusals", async () => {
  const authByName: Hook = {
    id: "auth",
    onConnectAuthenticate: (client) => client.id !== "refused",
    onACLCheck: () => true,
  };
  await using broker = await startBroker({}, [authByName]);
  const watcher = await mqttConnect(broker, { clientId: "watcher" });
  const messages = collect(watcher);
  await watcher.subscribeAsync("$SYS/broker/clients/connected", { qos: 0 });
  const latest = () => messages.at(-1)?.payload;

  const a = await RawClient.connect(broker, "a");
  const b = await RawClient.connect(broker, "b", { version: 4 });
  for (let i = 0; i < 2; i++) {
    const refused = await RawClient.connect(broker, "refused");
    assert.notEqual(refused.connack.reasonCode, 0);
    await refused.client.closed();
    refused.client.close();
  }
  // watcher, a and b; refused connections never count.
  await waitFor(() => latest() === "3", 3000, `3 connected clients, last saw ${latest()}`);
  assert.equal(broker.server.info.clientsConnected, 3);

  const a2 = await RawClient.connect(broker, "a"); // takes over "a"
  await a.client.closed();
  a.client.close();
  // watcher, a2 and b: the connection taken over no longer counts.
  assert.equal(broker.server.info.clientsConnected, 3);
  const ticks = messages.length;
  await waitFor(() => messages.length > ticks, 3000, "the next $SYS tick");
  assert.equal(latest(), "3");

  a2.client.close();
  b.client.close();
  await waitFor(() => latest() === "1", 3000, `1 connected client, last saw ${latest()}`);
  assert.equal(broker.server.info.clientsConnected, 1);
  await watcher.endAsync();
});

Deno.test("$SYS topics cannot be published to by clients", async () => {
  await using broker = await startBroker({ sysTopicResendInterval: 0 });
  const watcher = await mqttConnect(broker, { clientId: "watcher" });
  const messages = collect(watcher);
  await watcher.subscribeAsync("$SYS/#", { qos: 0 });
  await watcher.subscribeAsync("marker", { qos: 0 });
  const { client } = await RawClient.connect(broker, "faker");
  await client.send({
    fixedHeader: { type: PacketType.Publish, qos: 0 },
    topicName: "$SYS/broker/clients/connected",
    payload: encoder.encode("999"),
  });
  await client.send({
    fixedHeader: { type: PacketType.Publish, qos: 0 },
    topicName: "marker",
    payload: encoder.encode("m"),
  });
  await waitFor(() => messages.some((m) => m.topic === "marker"));
  assert.ok(!messages.some((m) => m.payload === "999"));
  client.close();
  await watcher.endAsync();
});

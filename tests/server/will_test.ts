/**
 * Will messages over real TCP sockets: when they are published (dropped connection, DISCONNECT
 * 0x04, keep-alive timeout, takeover, session end) and when not (normal DISCONNECT, refused
 * CONNECT, a session resumed within the Will Delay Interval), and what they carry.
 *
 * @module
 */

import assert from "node:assert/strict";
import type mqtt from "../mqtt.ts";
import {
  type ConnectParams,
  type Hook,
  type Packet,
  PacketType,
  type ProtocolVersion,
  type QoS,
} from "../../mod.ts";
import {
  collect,
  connectPacket,
  delay,
  mqttConnect,
  RawClient,
  startBroker,
  type TestBroker,
  waitFor,
} from "../helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Options for {@linkcode connectWithWill}. */
interface WillOptions {
  version?: ProtocolVersion;
  qos?: QoS;
  retain?: boolean;
  payload?: string;
  willProperties?: Packet["properties"];
  properties?: Packet["properties"];
  connect?: Partial<ConnectParams>;
}

/** Connects a raw client whose will goes to `will/{clientId}`. */
async function connectWithWill(
  broker: TestBroker,
  clientId: string,
  options: WillOptions = {},
): Promise<RawClient> {
  const { client, connack } = await RawClient.connect(broker, clientId, {
    version: options.version ?? 5,
    connect: {
      willFlag: true,
      willTopic: `will/${clientId}`,
      willPayload: encoder.encode(options.payload ?? `${clientId} is gone`),
      willQos: options.qos ?? 0,
      willRetain: options.retain ?? false,
      willProperties: options.willProperties,
      ...options.connect,
    },
    properties: options.properties,
  });
  assert.equal(connack.reasonCode, 0);
  return client;
}

/** An MQTT.js v5 client subscribed to `will/#` and `marker`, with the messages it gets. */
async function watcher(
  broker: TestBroker,
): Promise<{ client: mqtt.MqttClient; messages: ReturnType<typeof collect>; wills: () => string[] }> {
  const client = await mqttConnect(broker, { clientId: `watcher-${crypto.randomUUID()}` });
  const messages = collect(client);
  await client.subscribeAsync(["will/#", "marker"], { qos: 2 });
  const wills = () => messages.filter((m) => m.topic.startsWith("will/")).map((m) => m.payload);
  return { client, messages, wills };
}

/** Publishes `marker` and waits until the watcher has it: anything published before arrived too. */
async function syncWith(broker: TestBroker, messages: ReturnType<typeof collect>): Promise<void> {
  const before = messages.filter((m) => m.topic === "marker").length;
  const { client } = await RawClient.connect(broker, `marker-${crypto.randomUUID()}`);
  await client.send({
    fixedHeader: { type: PacketType.Publish, qos: 0 },
    topicName: "marker",
    payload: encoder.encode("m"),
  });
  await waitFor(() => messages.filter((m) => m.topic === "marker").length > before, 3000, "the marker");
  await client.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 });
  await client.closed();
  client.close();
}

/** Drops a raw client's connection without DISCONNECT and waits until the server has noticed. */
async function drop(broker: TestBroker, client: RawClient, clientId: string): Promise<void> {
  client.close();
  await waitFor(
    () => broker.server.clients.get(clientId)?.closed !== false,
    3000,
    `the server to see ${clientId} go`,
  );
}

// ---------------------------------------------------------------------------------------------
// When the will is sent

Deno.test("Will is published when the connection drops without DISCONNECT", async () => {
  await using broker = await startBroker();
  const { client, messages, wills } = await watcher(broker);
  for (const version of [3, 4, 5] as const) {
    const raw = await connectWithWill(broker, `dropper${version}`, { version });
    raw.close();
  }
  await waitFor(() => messages.length === 3, 3000, "three wills");
  assert.deepEqual(wills().sort(), ["dropper3 is gone", "dropper4 is gone", "dropper5 is gone"]);
  assert.deepEqual(messages.map((m) => m.topic).sort(), ["will/dropper3", "will/dropper4", "will/dropper5"]);
  await client.endAsync();
});

Deno.test("Will is not published after a normal DISCONNECT", async () => {
  await using broker = await startBroker();
  const { client, messages, wills } = await watcher(broker);
  for (const version of [3, 4, 5] as const) {
    const raw = await connectWithWill(broker, `polite${version}`, { version });
    await raw.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 });
    assert.deepEqual(await raw.closed(), []);
    raw.close();
  }
  await syncWith(broker, messages);
  assert.deepEqual(wills(), []);
  await client.endAsync();
});

Deno.test("Will is published after DISCONNECT 0x04 (Disconnect with Will Message)", async () => {
  await using broker = await startBroker();
  const { client, messages, wills } = await watcher(broker);
  const raw = await connectWithWill(broker, "leaver");
  await raw.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0x04 });
  assert.deepEqual(await raw.closed(), []);
  raw.close();
  await waitFor(() => wills().length === 1, 3000, "the will");
  assert.equal(messages[0].topic, "will/leaver");
  assert.equal(messages[0].payload, "leaver is gone");
  await client.endAsync();
});

Deno.test("Will is published when the server closes the connection for a protocol error", async () => {
  await using broker = await startBroker();
  const { client, wills } = await watcher(broker);
  const raw = await connectWithWill(broker, "offender");
  await raw.send(connectPacket("offender")); // a second CONNECT [MQTT-3.1.0-2]
  const seen = await raw.closed();
  assert.equal(seen[0]?.reasonCode, 0x82);
  raw.close();
  await waitFor(() => wills().length === 1, 3000, "the will");
  assert.deepEqual(wills(), ["offender is gone"]);
  await client.endAsync();
});

Deno.test("Will is published on a keep-alive timeout", async () => {
  await using broker = await startBroker();
  const { client, wills } = await watcher(broker);
  const started = Date.now();
  const raw = await connectWithWill(broker, "sleeper", { connect: { keepAlive: 1 } });
  // The raw client stays open and silent: the server must give up on it by itself.
  await waitFor(() => wills().length === 1, 3000, "the will");
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 1400 && elapsed < 2500, `will after ${elapsed} ms`);
  assert.deepEqual(wills(), ["sleeper is gone"]);
  const seen = await raw.closed();
  assert.equal(seen[0]?.reasonCode, 0x8d);
  raw.close();
  await client.endAsync();
});

Deno.test("Will is published on session takeover when the Will Delay Interval is 0", async () => {
  await using broker = await startBroker();
  const { client, wills } = await watcher(broker);
  const first = await connectWithWill(broker, "twin", { properties: { sessionExpiryInterval: 60 } });
  const second = await RawClient.connect(broker, "twin", {
    connect: { clean: false },
    properties: { sessionExpiryInterval: 60 },
  });
  assert.equal(second.connack.sessionPresent, true);
  const seen = await first.closed();
  assert.equal(seen[0]?.reasonCode, 0x8e);
  first.close();
  await waitFor(() => wills().length === 1, 3000, "the will");
  assert.deepEqual(wills(), ["twin is gone"]);
  second.client.close();
  await client.endAsync();
});

Deno.test("Will is published on a v3.1.1 session takeover", async () => {
  await using broker = await startBroker();
  const { client, wills } = await watcher(broker);
  const first = await connectWithWill(broker, "twin4", { version: 4 });
  const second = await RawClient.connect(broker, "twin4", { version: 4 });
  assert.equal(second.connack.reasonCode, 0);
  assert.deepEqual(await first.closed(), []);
  first.close();
  await waitFor(() => wills().length === 1, 3000, "the will");
  assert.deepEqual(wills(), ["twin4 is gone"]);
  second.client.close();
  await client.endAsync();
});

Deno.test("Will is not published on a takeover that resumes the session within the Will Delay Interval", async () => {
  await using broker = await startBroker();
  const { client, messages, wills } = await watcher(broker);
  const first = await connectWithWill(broker, "patient-twin", {
    properties: { sessionExpiryInterval: 60 },
    willProperties: { willDelayInterval: 1 },
  });
  const second = await RawClient.connect(broker, "patient-twin", {
    connect: { clean: false },
    properties: { sessionExpiryInterval: 60 },
  });
  assert.equal(second.connack.sessionPresent, true);
  await first.closed();
  first.close();
  await delay(1300);
  await syncWith(broker, messages);
  assert.deepEqual(wills(), []);
  second.client.close();
  await client.endAsync();
});

// ---------------------------------------------------------------------------------------------
// When it is never sent

Deno.test("Will of a refused CONNECT is never published", async () => {
  const authByName: Hook = {
    id: "auth",
    onConnectAuthenticate: (client) => !client.id.startsWith("intruder"),
    onACLCheck: () => true,
  };
  await using broker = await startBroker({}, [authByName]);
  const { client, messages, wills } = await watcher(broker);
  for (const version of [4, 5] as const) {
    const { client: raw, connack } = await RawClient.connect(broker, `intruder${version}`, {
      version,
      connect: {
        willFlag: true,
        willTopic: "will/intruder",
        willPayload: encoder.encode("forged"),
        willQos: 0,
      },
    });
    assert.notEqual(connack.reasonCode, 0);
    await raw.closed();
    raw.close();
  }
  await syncWith(broker, messages);
  assert.deepEqual(wills(), []);
  await client.endAsync();
});

// ---------------------------------------------------------------------------------------------
// What it carries

Deno.test("Will with the retain flag is retained", async () => {
  await using broker = await startBroker();
  const raw = await connectWithWill(broker, "monument", { retain: true, qos: 1 });
  await drop(broker, raw, "monument");
  const late = await mqttConnect(broker, { clientId: "late" });
  const messages = collect(late);
  await late.subscribeAsync("will/monument", { qos: 1 });
  await waitFor(() => messages.length === 1, 3000, "the retained will");
  assert.equal(messages[0].payload, "monument is gone");
  assert.equal(messages[0].packet.retain, true);
  assert.equal(messages[0].packet.qos, 1);
  await late.endAsync();
});

Deno.test("Will without the retain flag is not retained", async () => {
  await using broker = await startBroker();
  const raw = await connectWithWill(broker, "fleeting", { retain: false });
  await drop(broker, raw, "fleeting");
  const late = await RawClient.connect(broker, "late");
  await late.client.send({
    fixedHeader: { type: PacketType.Subscribe, qos: 1 },
    packetId: 1,
    filters: [{ filter: "will/fleeting", qos: 1 }],
  });
  await late.client.expect(PacketType.Suback);
  // A retained message would follow the SUBACK at once; the PINGRESP comes first instead.
  await late.client.send({ fixedHeader: { type: PacketType.Pingreq } });
  await late.client.expect(PacketType.Pingresp);
  late.client.close();
});

Deno.test("Will QoS is honoured", async () => {
  await using broker = await startBroker();
  const { client: sub } = await RawClient.connect(broker, "sub");
  await sub.send({
    fixedHeader: { type: PacketType.Subscribe, qos: 1 },
    packetId: 1,
    filters: [{ filter: "will/#", qos: 2 }],
  });
  await sub.expect(PacketType.Suback);
  for (const qos of [0, 1, 2] as const) {
    const raw = await connectWithWill(broker, `qos${qos}`, { qos });
    raw.close();
    const will = await sub.expect(PacketType.Publish);
    assert.equal(will.topicName, `will/qos${qos}`);
    assert.equal(will.fixedHeader.qos, qos);
    if (qos === 1) {
      await sub.send({ fixedHeader: { type: PacketType.Puback }, packetId: will.packetId, reasonCode: 0 });
    }
    if (qos === 2) {
      await sub.send({ fixedHeader: { type: PacketType.Pubrec }, packetId: will.packetId, reasonCode: 0 });
      await sub.expect(PacketType.Pubrel);
      await sub.send({ fixedHeader: { type: PacketType.Pubcomp }, packetId: will.packetId, reasonCode: 0 });
    }
  }
  sub.close();
});

Deno.test("Will properties of a v5 client are passed through to subscribers", async () => {
  await using broker = await startBroker();
  const { client: sub } = await RawClient.connect(broker, "sub");
  await sub.send({
    fixedHeader: { type: PacketType.Subscribe, qos: 1 },
    packetId: 1,
    filters: [{ filter: "will/#", qos: 1 }],
  });
  await sub.expect(PacketType.Suback);
  const correlationData = new Uint8Array([0, 1, 2, 0xff]);
  const raw = await connectWithWill(broker, "rich", {
    qos: 1,
    payload: '{"status":"offline"}',
    willProperties: {
      payloadFormatIndicator: 1,
      messageExpiryInterval: 120,
      contentType: "application/json",
      responseTopic: "replies/rich",
      correlationData,
      userProperties: [["k", "v1"], ["k", "v2"], ["site", "lab"]],
    },
  });
  raw.close();
  const will = await sub.expect(PacketType.Publish);
  assert.equal(will.topicName, "will/rich");
  assert.equal(decoder.decode(will.payload), '{"status":"offline"}');
  const properties = will.properties!;
  assert.equal(properties.payloadFormatIndicator, 1);
  assert.equal(properties.contentType, "application/json");
  assert.equal(properties.responseTopic, "replies/rich");
  assert.deepEqual(properties.correlationData, correlationData);
  assert.deepEqual(properties.userProperties, [["k", "v1"], ["k", "v2"], ["site", "lab"]]);
  assert.ok(properties.messageExpiryInterval! > 0 && properties.messageExpiryInterval! <= 120);
  assert.equal(properties.willDelayInterval, undefined);
  await sub.send({ fixedHeader: { type: PacketType.Puback }, packetId: will.packetId, reasonCode: 0 });
  sub.close();
});

Deno.test("Will properties reach an MQTT.js v5 subscriber", async () => {
  await using broker = await startBroker();
  const { client, messages } = await watcher(broker);
  const raw = await connectWithWill(broker, "js-rich", {
    willProperties: { contentType: "text/plain", userProperties: [["a", "b"]], responseTopic: "r" },
  });
  raw.close();
  await waitFor(() => messages.length === 1, 3000, "the will");
  const properties = messages[0].packet.properties!;
  assert.equal(properties.contentType, "text/plain");
  assert.deepEqual({ ...properties.userProperties }, { a: "b" });
  assert.equal(properties.responseTopic, "r");
  await client.endAsync();
});

// ---------------------------------------------------------------------------------------------
// Will Delay Interval

Deno.test("Will Delay Interval of 1 s delays the will by 1 s", async () => {
  await using broker = await startBroker();
  const { client, wills } = await watcher(broker);
  const raw = await connectWithWill(broker, "delayed", {
    properties: { sessionExpiryInterval: 60 },
    willProperties: { willDelayInterval: 1 },
  });
  const dropped = Date.now();
  await drop(broker, raw, "delayed");
  await delay(300);
  assert.deepEqual(wills(), [], "not yet");
  await waitFor(() => wills().length === 1, 3000, "the delayed will");
  const elapsed = Date.now() - dropped;
  assert.ok(elapsed >= 950 && elapsed < 2000, `will after ${elapsed} ms`);
  await client.endAsync();
});

Deno.test("Will Delay Interval is cancelled when the client resumes its session in time", async () => {
  await using broker = await startBroker();
  const { client, messages, wills } = await watcher(broker);
  const raw = await connectWithWill(broker, "returner", {
    properties: { sessionExpiryInterval: 60 },
    willProperties: { willDelayInterval: 1 },
  });
  await drop(broker, raw, "returner");
  const again = await RawClient.connect(broker, "returner", {
    connect: { clean: false },
    properties: { sessionExpiryInterval: 60 },
  });
  assert.equal(again.connack.sessionPresent, true);
  await delay(1300);
  await syncWith(broker, messages);
  assert.deepEqual(wills(), []);
  await again.client.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 });
  await again.client.closed();
  again.client.close();
  await client.endAsync();
});

Deno.test("Will Delay Interval ends early when a reconnect with Clean Start ends the session", async () => {
  await using broker = await startBroker();
  const { client, wills } = await watcher(broker);
  const raw = await connectWithWill(broker, "restarter", {
    properties: { sessionExpiryInterval: 60 },
    willProperties: { willDelayInterval: 5 },
  });
  await drop(broker, raw, "restarter");
  const started = Date.now();
  const again = await RawClient.connect(broker, "restarter", { connect: { clean: true } });
  assert.equal(again.connack.sessionPresent, false);
  await waitFor(() => wills().length === 1, 1000, "the will");
  assert.ok(Date.now() - started < 1000);
  again.client.close();
  await client.endAsync();
});

Deno.test("Will Delay Interval longer than a Session Expiry Interval of 0 sends the will at once", async () => {
  await using broker = await startBroker();
  const { client, wills } = await watcher(broker);
  const raw = await connectWithWill(broker, "short-lived", {
    properties: { sessionExpiryInterval: 0 },
    willProperties: { willDelayInterval: 5 },
  });
  const dropped = Date.now();
  raw.close();
  await waitFor(() => wills().length === 1, 1000, "the will");
  assert.ok(Date.now() - dropped < 1000);
  await client.endAsync();
});

Deno.test("Will Delay Interval longer than the Session Expiry Interval sends the will when the session ends", async () => {
  await using broker = await startBroker();
  const { client, wills } = await watcher(broker);
  const raw = await connectWithWill(broker, "expiring", {
    properties: { sessionExpiryInterval: 1 },
    willProperties: { willDelayInterval: 5 },
  });
  const dropped = Date.now();
  await drop(broker, raw, "expiring");
  await waitFor(() => wills().length === 1, 3000, "the will");
  const elapsed = Date.now() - dropped;
  assert.ok(elapsed >= 950 && elapsed < 2500, `will after ${elapsed} ms`);
  await client.endAsync();
});

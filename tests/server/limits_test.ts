import assert from "node:assert/strict";
import { type Packet, PacketType, type Subscription } from "../../mod.ts";
import { collect, connectPacket, delay, mqttConnect, RawClient, startBroker, waitFor } from "../helpers.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

function publish(topic: string, qos: 0 | 1 | 2, packetId?: number, payload = "x"): Packet {
  return {
    fixedHeader: { type: PacketType.Publish, qos },
    topicName: topic,
    packetId,
    payload: bytes(payload),
  };
}

function subscribe(packetId: number, filters: Subscription[]): Packet {
  return { fixedHeader: { type: PacketType.Subscribe }, packetId, filters };
}

Deno.test("Limit maximumClientIdLength refuses longer client ids with CONNACK 0x85", async () => {
  await using broker = await startBroker({ capabilities: { maximumClientIdLength: 8 } });
  const ok = await RawClient.connect(broker, "12345678");
  assert.equal(ok.connack.reasonCode, 0);
  const refused = await RawClient.connect(broker, "123456789");
  assert.equal(refused.connack.reasonCode, 0x85);
  assert.deepEqual(await refused.client.closed(), []);
  const v3 = await RawClient.connect(broker, "123456789", { version: 4 });
  assert.equal(v3.connack.reasonCode, 2); // identifier rejected
  ok.client.close();
  refused.client.close();
  v3.client.close();
});

Deno.test("Limit maximumTopicLength and maximumTopicLevels answer 0x90 to v5 publishers and 0x8F to subscribers", async () => {
  await using broker = await startBroker({ capabilities: { maximumTopicLength: 10, maximumTopicLevels: 3 } });
  const { client } = await RawClient.connect(broker, "c1");
  await client.send(subscribe(1, [
    { filter: "a/b/c", qos: 1 },
    { filter: "a/b/c/d", qos: 1 },
    { filter: "0123456789a", qos: 1 },
  ]));
  const suback = await client.expect(PacketType.Suback);
  assert.deepEqual(suback.reasonCodes, [1, 0x8f, 0x8f]);
  await client.send(publish("a/b/c/d", 1, 2));
  assert.equal((await client.expect(PacketType.Puback)).reasonCode, 0x90);
  await client.send(publish("0123456789a", 1, 3));
  assert.equal((await client.expect(PacketType.Puback)).reasonCode, 0x90);
  await client.send(publish("a/b/c", 1, 4));
  const [delivered, ack] = [await client.read(), await client.read()].sort((a, b) =>
    a!.fixedHeader.type - b!.fixedHeader.type
  );
  assert.equal(delivered?.topicName, "a/b/c");
  assert.equal(ack?.reasonCode, 0);
  client.close();
});

Deno.test("Limit maximumTopicLevels disconnects a v3.1.1 publisher (it cannot be told otherwise)", async () => {
  await using broker = await startBroker({ capabilities: { maximumTopicLevels: 2 } });
  const { client } = await RawClient.connect(broker, "v3", { version: 4 });
  await client.send(publish("a/b/c", 1, 1));
  assert.deepEqual(await client.closed(), []);
  client.close();
});

Deno.test("Limit maximumSubscriptionsPerClient answers 0x97 beyond the limit but allows resubscribing", async () => {
  await using broker = await startBroker({ capabilities: { maximumSubscriptionsPerClient: 2 } });
  const { client } = await RawClient.connect(broker, "c1");
  await client.send(
    subscribe(1, [{ filter: "a", qos: 0 }, { filter: "b", qos: 0 }, { filter: "c", qos: 0 }]),
  );
  assert.deepEqual((await client.expect(PacketType.Suback)).reasonCodes, [0, 0, 0x97]);
  await client.send(subscribe(2, [{ filter: "a", qos: 1 }]));
  assert.deepEqual((await client.expect(PacketType.Suback)).reasonCodes, [1]);
  client.close();
});

Deno.test("Limit maximumConnectionRatePerIp refuses the extra connections of a second with CONNACK 0x9F", async () => {
  await using broker = await startBroker({ capabilities: { maximumConnectionRatePerIp: 2 } });
  // Start at the beginning of a second so the three connections share one window.
  await delay(1000 - (Date.now() % 1000));
  const results = [];
  for (let i = 0; i < 3; i++) results.push(await RawClient.connect(broker, `c${i}`));
  assert.deepEqual(results.map((r) => r.connack.reasonCode), [0, 0, 0x9f]);
  for (const { client } of results) client.close();
});

Deno.test("Limit maximumMemory refuses new connections with 0x89 (v5) and 3 (v3.1.1) instead of crashing", async () => {
  await using broker = await startBroker({ capabilities: { maximumMemory: 1 } });
  const v5 = await RawClient.connect(broker, "a");
  assert.equal(v5.connack.reasonCode, 0x89);
  const v3 = await RawClient.connect(broker, "b", { version: 4 });
  assert.equal(v3.connack.reasonCode, 3);
  v5.client.close();
  v3.client.close();
});

Deno.test("Limit maximumClients refuses clients beyond it with CONNACK 0x97", async () => {
  await using broker = await startBroker({ capabilities: { maximumClients: 1 } });
  const first = await RawClient.connect(broker, "a");
  assert.equal(first.connack.reasonCode, 0);
  const second = await RawClient.connect(broker, "b");
  assert.equal(second.connack.reasonCode, 0x97);
  first.client.close();
  second.client.close();
});

Deno.test("Limit connectTimeout closes a slow-loris connection sending one byte at a time", async () => {
  await using broker = await startBroker({ capabilities: { connectTimeout: 1 } });
  const client = await RawClient.open(broker);
  const { ByteWriter, encodePacket } = await import("../../src/packets/mod.ts");
  const out = new ByteWriter();
  encodePacket(connectPacket("slow"), 5, out);
  const data = out.toBytes().slice();
  const started = Date.now();
  let sent = 0;
  try {
    for (; sent < data.length - 1; sent++) {
      await client.sendBytes([data[sent]]);
      await delay(150);
      if (Date.now() - started > 3000) break;
    }
  } catch {
    // the broker closed the socket under us: that is the point
  }
  assert.deepEqual(await client.closed(), []);
  assert.ok(Date.now() - started < 2500, "closed within the connect timeout");
  assert.ok(sent < data.length - 1, "the CONNECT never completed");
  client.close();
});

Deno.test("Limit maximumClientWriteBytes drops QoS 0 for a stalled subscriber, counts it, and others get everything", async () => {
  await using broker = await startBroker({
    inlineClient: true,
    sysTopicResendInterval: 0,
    capabilities: { maximumClientWriteBytes: 64 * 1024 },
  });
  const { client: stalled } = await RawClient.connect(broker, "stalled");
  await stalled.send(subscribe(1, [{ filter: "load", qos: 0 }]));
  await stalled.expect(PacketType.Suback);
  // From here on the stalled client never reads again.
  const healthy = await mqttConnect(broker, { clientId: "healthy" });
  const received = collect(healthy);
  await healthy.subscribeAsync("load", { qos: 0 });
  const dropped: string[] = [];
  await broker.server.addHook({ id: "drops", onPublishDropped: (client) => dropped.push(client.id) });
  const payload = "x".repeat(1024);
  const batches = 250;
  for (let batch = 0; batch < batches; batch++) {
    for (let i = 0; i < 20; i++) await broker.server.publish("load", payload, false, 0);
    await waitFor(() => received.length === (batch + 1) * 20, 5000, `batch ${batch}`);
  }
  assert.equal(received.length, batches * 20);
  assert.ok(dropped.length > 0, "the stalled subscriber lost QoS 0 messages");
  assert.ok(dropped.every((id) => id === "stalled"));
  assert.equal(broker.server.info.messagesDropped, dropped.length);
  await healthy.endAsync();
  stalled.close();
});

Deno.test("Limit writeTimeout disconnects a subscriber that stopped reading", async () => {
  await using broker = await startBroker({
    inlineClient: true,
    sysTopicResendInterval: 0,
    capabilities: { writeTimeout: 1 },
  });
  const { client: stalled } = await RawClient.connect(broker, "stalled");
  await stalled.send(subscribe(1, [{ filter: "load", qos: 0 }]));
  await stalled.expect(PacketType.Suback);
  const payload = "x".repeat(64 * 1024);
  for (let i = 0; i < 200; i++) await broker.server.publish("load", payload, false, 0); // fills the socket
  await waitFor(
    () => broker.server.clients.get("stalled")?.closed ?? true,
    5000,
    "the stalled client to be closed",
  );
  assert.equal(broker.server.info.clientsConnected, 0);
  stalled.close();
});

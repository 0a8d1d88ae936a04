import assert from "node:assert/strict";
import { type Packet, PacketType } from "../../mod.ts";
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

Deno.test("Flow control: a busy QoS 1 subscriber past maximumInflight pauses its publishers and loses nothing", async () => {
  await using broker = await startBroker({ capabilities: { maximumInflight: 20 } });
  // The subscriber acknowledges slowly: one PUBACK every few milliseconds.
  const { client: sub } = await RawClient.connect(broker, "slow-acker", {
    properties: { receiveMaximum: 5 },
  });
  await sub.subscribe([{ filter: "in/#", qos: 1 }]);
  const { client: pub } = await RawClient.connect(broker, "fast-publisher");
  const total = 200;
  for (let i = 1; i <= total; i++) await pub.send(publishPacket(`in/${i}`, String(i), 1, { packetId: i }));
  const received: string[] = [];
  while (received.length < total) {
    const packet = await sub.expect(PacketType.Publish, 5000);
    received.push(new TextDecoder().decode(packet.payload));
    await delay(1);
    await sub.send(ackPacket(PacketType.Puback, packet.packetId!));
  }
  assert.deepEqual(received, Array.from({ length: total }, (_, i) => String(i + 1)));
  assert.equal(broker.server.info.messagesDropped, 0);
  // Every publish was acknowledged to the publisher.
  let acks = 0;
  while (acks < total) {
    const packet = await pub.read();
    if (packet?.fixedHeader.type === PacketType.Puback) acks++;
  }
  pub.close();
  sub.close();
});

Deno.test("Flow control: an offline session past maximumInflight drops and counts the excess", async () => {
  await using broker = await startBroker({ capabilities: { maximumInflight: 5 } });
  const { client: sub } = await RawClient.connect(broker, "offline", {
    connect: { clean: false },
    properties: { sessionExpiryInterval: 60 },
  });
  await sub.subscribe([{ filter: "q/#", qos: 1 }]);
  await sub.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 });
  sub.close();
  await waitFor(() => broker.server.info.clientsConnected === 0);
  const pub = await mqttConnect(broker, { clientId: "pub" });
  for (let i = 0; i < 8; i++) await pub.publishAsync("q/t", String(i), { qos: 1 });
  assert.equal(broker.server.info.messagesDropped, 3);
  await pub.endAsync();
});

Deno.test("Flow control: a stalled subscriber does not slow the publisher or the other subscribers", async () => {
  await using broker = await startBroker({
    sysTopicResendInterval: 0,
    capabilities: { maximumClientWriteBytes: 32 * 1024, writeTimeout: 30 },
  });
  const { client: stalled } = await RawClient.connect(broker, "stalled");
  await stalled.subscribe([{ filter: "fan", qos: 0 }]);
  // From here on the stalled client never reads.
  const healthy = await mqttConnect(broker, { clientId: "healthy" });
  const received = collect(healthy);
  await healthy.subscribeAsync("fan", { qos: 0 });
  const pub = await mqttConnect(broker, { clientId: "pub" });
  const payload = "x".repeat(1024);
  const total = 6000; // ~6 MB: far past the stalled client's socket buffers and limits
  for (let i = 0; i < total; i++) {
    pub.publish("fan", payload, { qos: 0 });
    if (i % 200 === 199) await waitFor(() => received.length === i + 1, 5000, `message ${i}`);
  }
  await waitFor(() => received.length === total, 5000, "every message at the healthy subscriber");
  assert.ok(broker.server.info.messagesDropped > 0, "the stalled subscriber lost QoS 0 messages");
  assert.equal(broker.server.clients.get("pub")?.readingPaused, false, "the publisher is not held back");
  await pub.endAsync();
  await healthy.endAsync();
  stalled.close();
});

Deno.test("Flow control: two busy clients publishing to each other at QoS 1 do not deadlock", async () => {
  // Each is the other's slow subscriber. Pausing both would wait forever (each needs the other's
  // acknowledgements read), so the broker keeps reading both and the bounded queues decide:
  // every publish is acknowledged, and every message is delivered or counted as dropped.
  await using broker = await startBroker({ capabilities: { maximumInflight: 10 } });
  const a = await RawClient.connect(broker, "a", { properties: { receiveMaximum: 2 } });
  const b = await RawClient.connect(broker, "b", { properties: { receiveMaximum: 2 } });
  await a.client.subscribe([{ filter: "to/a", qos: 1 }]);
  await b.client.subscribe([{ filter: "to/b", qos: 1 }]);
  const total = 100;
  const run = async (self: RawClient, peer: string) => {
    let sent = 0;
    let got = 0;
    let acked = 0;
    const handle = async (packet: Packet) => {
      if (packet.fixedHeader.type === PacketType.Puback) acked++;
      if (packet.fixedHeader.type === PacketType.Publish) {
        got++;
        await self.send(ackPacket(PacketType.Puback, packet.packetId!));
      }
    };
    while (acked < total) {
      if (sent < total) await self.send(publishPacket(`to/${peer}`, String(sent), 1, { packetId: ++sent }));
      const packet = await self.read(5000);
      if (!packet) throw new Error("connection closed");
      await handle(packet);
    }
    // Then take what is still on its way, until the broker has nothing more for us.
    for (let seen = await self.sync(); seen.length > 0; seen = await self.sync()) {
      for (const packet of seen) await handle(packet);
    }
    return got;
  };
  const [gotA, gotB] = await Promise.all([run(a.client, "b"), run(b.client, "a")]);
  assert.equal(gotA + gotB + broker.server.info.messagesDropped, 2 * total);
  a.client.close();
  b.client.close();
});

Deno.test("Flow control: an offline session past maximumSessionBytes drops and counts the excess", async () => {
  await using broker = await startBroker({ capabilities: { maximumSessionBytes: 4096 } });
  const { client: sub } = await RawClient.connect(broker, "offline-bytes", {
    connect: { clean: false },
    properties: { sessionExpiryInterval: 60 },
  });
  await sub.subscribe([{ filter: "big/#", qos: 1 }]);
  await sub.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 });
  sub.close();
  await waitFor(() => broker.server.info.clientsConnected === 0);
  const pub = await mqttConnect(broker, { clientId: "pub" });
  const payload = "x".repeat(1000); // with the topic, 1005 bytes each: four fit in 4096
  for (let i = 0; i < 6; i++) await pub.publishAsync("big/t", payload, { qos: 1 });
  assert.equal(broker.server.info.messagesDropped, 2);
  await pub.endAsync();
  // The four kept arrive when the session comes back, and its byte count returns to zero.
  const back = await RawClient.connect(broker, "offline-bytes", {
    connect: { clean: false },
    properties: { sessionExpiryInterval: 0 },
  });
  for (let i = 0; i < 4; i++) {
    const packet = await back.client.expect(PacketType.Publish);
    await back.client.send(ackPacket(PacketType.Puback, packet.packetId!));
  }
  await back.client.sync();
  assert.equal(broker.server.clients.get("offline-bytes")?.state.inflight.bytes, 0);
  back.client.close();
});

Deno.test("Flow control: messages with no local publisher (a cluster node's inbox) wait on `drained()` and lose nothing", async () => {
  await using broker = await startBroker({ capabilities: { maximumInflight: 20 } });
  const { client: sub } = await RawClient.connect(broker, "slow-acker", {
    properties: { receiveMaximum: 5 },
  });
  await sub.subscribe([{ filter: "remote/#", qos: 1 }]);
  assert.equal(broker.server.drained(), undefined, "nobody is behind yet");
  const total = 200;
  let waits = 0;
  // What the cluster's inbox reader does: deliver, and wait whenever a subscriber here is behind.
  const feeding = (async () => {
    for (let i = 1; i <= total; i++) {
      const congested = broker.server.drained();
      if (congested) {
        waits++;
        await congested;
      }
      const packet = publishPacket(`remote/${i}`, String(i), 1);
      packet.created = Date.now();
      packet.origin = "publisher-on-another-node";
      broker.server.publishToSubscribers(packet, { node: "other", plain: true, groups: [] });
    }
  })();
  const received: string[] = [];
  while (received.length < total) {
    const packet = await sub.expect(PacketType.Publish, 5000);
    received.push(new TextDecoder().decode(packet.payload));
    await delay(1);
    await sub.send(ackPacket(PacketType.Puback, packet.packetId!));
  }
  await feeding;
  assert.deepEqual(received, Array.from({ length: total }, (_, i) => String(i + 1)));
  assert.equal(broker.server.info.messagesDropped, 0);
  assert.ok(waits > 0, "the feed waited for the subscriber");
  sub.close();
});

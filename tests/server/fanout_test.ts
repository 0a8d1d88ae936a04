import assert from "node:assert/strict";
import { type Packet, PacketType, type ProtocolVersion, type QoS } from "../../mod.ts";
import { ackPacket, publishPacket, RawClient, startBroker } from "../helpers.ts";

const decoder = new TextDecoder();

/** What a subscriber must see of a message, whatever encoding it shares with others. */
function summary(p: Packet) {
  return {
    topic: p.topicName,
    payload: decoder.decode(p.payload),
    qos: p.fixedHeader.qos ?? 0,
    retain: p.fixedHeader.retain ?? false,
    dup: p.fixedHeader.dup ?? false,
    contentType: p.properties?.contentType,
    user: p.properties?.userProperties,
    ids: p.properties?.subscriptionIdentifier,
    expiry: p.properties?.messageExpiryInterval,
  };
}

Deno.test("`Server` fans one message out to subscribers of every variant, each with its own packet id", async () => {
  await using broker = await startBroker();
  const subscribers: {
    name: string;
    version: ProtocolVersion;
    qos: QoS;
    rap?: boolean;
    id?: number;
    client?: RawClient;
  }[] = [
    { name: "v5-q1-a", version: 5, qos: 1 },
    { name: "v5-q1-b", version: 5, qos: 1 },
    { name: "v5-q2", version: 5, qos: 2 },
    { name: "v5-q0", version: 5, qos: 0 },
    { name: "v5-rap", version: 5, qos: 1, rap: true },
    { name: "v5-subid", version: 5, qos: 1, id: 7 },
    { name: "v4-q1", version: 4, qos: 1 },
    { name: "v4-q0", version: 4, qos: 0 },
    { name: "v3-q1", version: 3, qos: 1 },
  ];
  for (const s of subscribers) {
    const { client } = await RawClient.connect(broker, s.name, { version: s.version });
    s.client = client;
    await client.subscribe(
      [
        { filter: "fan/#", qos: s.qos, retainAsPublished: s.rap ?? false },
        ...(s.name === "v5-q1-a" ? [{ filter: "solo/a", qos: 1 as QoS }] : []),
      ],
      1,
      s.id ? { subscriptionIdentifier: [s.id] } : undefined,
    );
  }
  const { client: pub } = await RawClient.connect(broker, "pub");
  // One message to the first subscriber alone first, so its next packet id differs from the others'.
  await pub.send(publishPacket("solo/a", "only-a", 1, { packetId: 1 }));
  await pub.expect(PacketType.Puback);
  const properties = { contentType: "text/plain", userProperties: [["k", "v"]] as [string, string][] };
  await pub.send(publishPacket("fan/x", "shared", 2, { packetId: 2, retain: true, properties }));
  await pub.send(
    publishPacket("fan/y", "expiring", 1, { packetId: 3, properties: { messageExpiryInterval: 60 } }),
  );
  await pub.expect(PacketType.Pubrec);
  await pub.expect(PacketType.Puback);

  for (const s of subscribers) {
    const got = (await s.client!.sync()).filter((p) => p.fixedHeader.type === PacketType.Publish);
    const x = got.filter((p) => p.topicName === "fan/x");
    const y = got.filter((p) => p.topicName === "fan/y");
    assert.equal(x.length, 1, s.name);
    assert.equal(y.length, 1, s.name);
    const v5 = s.version === 5;
    assert.deepEqual(summary(x[0]), {
      topic: "fan/x",
      payload: "shared",
      qos: Math.min(2, s.qos),
      retain: s.rap ?? false,
      dup: false,
      contentType: v5 ? "text/plain" : undefined,
      user: v5 ? [["k", "v"]] : undefined,
      ids: s.id ? [s.id] : undefined,
      expiry: undefined,
    }, s.name);
    assert.equal(summary(y[0]).payload, "expiring");
    assert.equal(summary(y[0]).qos, Math.min(1, s.qos));
    if (v5) assert.ok(y[0].properties!.messageExpiryInterval! >= 59, s.name);
    // Each client numbers its own flows: the one that had a message before is one ahead.
    if (s.qos > 0) {
      const offset = s.name === "v5-q1-a" ? 1 : 0;
      assert.equal(x[0].packetId, 1 + offset, s.name);
      assert.equal(y[0].packetId, 2 + offset, s.name);
    }
    for (const p of got) {
      if (p.fixedHeader.qos === 1) await s.client!.send(ackPacket(PacketType.Puback, p.packetId!));
      if (p.fixedHeader.qos === 2) await s.client!.send(ackPacket(PacketType.Pubrec, p.packetId!));
    }
    s.client!.close();
  }
  pub.close();
});

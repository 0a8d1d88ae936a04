import assert from "node:assert/strict";
import { ByteWriter } from "../../src/packets/writer.ts";
import { type Packet, PacketType } from "../../src/packets/types.ts";
import {
  encodeMessage,
  messageRecord,
  readRecords,
  type WireControl,
  type WireMessage,
  writeControl,
  writeRecord,
} from "../../hooks/cluster/wire.ts";
import { RouteTable } from "../../hooks/cluster/route_table.ts";

const bytes = (text: string) => new TextEncoder().encode(text);

function message(qos: 0 | 1 | 2, extra: Partial<Packet> = {}): Packet {
  return {
    fixedHeader: { type: PacketType.Publish, qos, retain: false },
    topicName: "a/b",
    payload: bytes("hello"),
    created: 1_700_000_000_123,
    expiry: 0,
    origin: "publisher-1",
    ...extra,
  };
}

Deno.test("wire records round-trip messages encoded in place and from encodeMessage alike", () => {
  const packets: Packet[] = [
    message(0),
    message(1, { fixedHeader: { type: PacketType.Publish, qos: 1, retain: true } }),
    message(2, {
      topicName: "ünï/cödé/" + "x".repeat(300),
      origin: "cliënt-" + "y".repeat(100),
      payload: new Uint8Array(70_000).fill(7),
      expiry: 1_700_000_060_000,
      properties: {
        messageExpiryInterval: 60,
        contentType: "text/plain",
        userProperties: [["k", "v"]],
        topicAlias: 3, // one hop's: not forwarded
        subscriptionIdentifier: [4], // one hop's: not forwarded
      },
    }),
    message(0, { payload: new Uint8Array(0) }),
  ];
  const out = new ByteWriter(16);
  for (const packet of packets) {
    const start = writeRecord(out, packet, undefined, true, []);
    assert.ok(start > 0 && start < out.length);
    writeRecord(out, packet, encodeMessage(packet), false, ["g1/a/#", "g2/+/b"]);
  }
  writeControl(out, { release: "x", bytes: bytes("ab") });
  const read = readRecords(out.toBytes().slice());
  assert.equal(read.length, 2 * packets.length + 1);
  for (let i = 0; i < packets.length; i++) {
    const sent = packets[i];
    for (const [j, plain] of [[2 * i, true], [2 * i + 1, false]] as const) {
      const { packet, plain: readPlain, groups } = read[j] as WireMessage;
      assert.equal(readPlain, plain);
      assert.deepEqual(groups, plain ? [] : ["g1/a/#", "g2/+/b"]);
      assert.equal(packet.topicName, sent.topicName);
      assert.deepEqual(packet.payload, sent.payload);
      assert.equal(packet.fixedHeader.qos, sent.fixedHeader.qos);
      assert.equal(packet.fixedHeader.retain, sent.fixedHeader.retain);
      assert.equal(packet.packetId, undefined);
      assert.equal(packet.created, sent.created);
      assert.equal(packet.expiry, sent.expiry);
      assert.equal(packet.origin, sent.origin);
      const { topicAlias: _a, subscriptionIdentifier: _s, ...kept } = sent.properties ?? {};
      assert.deepEqual(packet.properties ?? {}, kept);
    }
  }
  assert.deepEqual((read.at(-1) as WireControl).control, { release: "x", bytes: bytes("ab") });
});

Deno.test("wire records' payloads are views into the batch, and a cut batch is refused", () => {
  const record = messageRecord(message(1));
  const [read] = readRecords(record) as WireMessage[];
  assert.equal(read.packet.payload!.buffer, record.buffer);
  assert.throws(() => readRecords(record.subarray(0, record.length - 3)), RangeError);
});

Deno.test("RouteTable.plainNodes follows route changes", () => {
  const routes = new RouteTable();
  assert.deepEqual(routes.plainNodes("a/b"), []);
  routes.apply("n1", 1, "a/+", 1);
  assert.deepEqual(routes.plainNodes("a/b"), ["n1"]);
  routes.apply("n2", 1, "a/b", 1);
  assert.deepEqual([...routes.plainNodes("a/b")!].sort(), ["n1", "n2"]);
  routes.apply("n2", 2, "$share/g/a/#", 1);
  assert.equal(routes.plainNodes("a/b"), undefined);
  routes.drop("n2");
  assert.deepEqual(routes.plainNodes("a/b"), ["n1"]);
  routes.apply("n1", 2, "a/+", 0);
  assert.deepEqual(routes.plainNodes("a/b"), []);
});

Deno.test("wire records keep topics and client ids apart whatever was read before", () => {
  const out = new ByteWriter(1024);
  const sent: Packet[] = [];
  for (let i = 0; i < 5000; i++) {
    const n = i % 4500; // past the cache's size, then ones seen before
    sent.push(message(0, { topicName: `t/${n}`, origin: `c${n % 7}`, payload: bytes(String(i)) }));
  }
  sent.push(
    message(0, { topicName: "t/ü", origin: "c/ü" }),
    message(0, { topicName: "t/ü2", origin: "c/ü" }),
  );
  for (const packet of sent) writeRecord(out, packet, undefined, true, []);
  for (let round = 0; round < 2; round++) {
    const read = readRecords(out.toBytes()) as WireMessage[];
    assert.deepEqual(
      read.map((m) => [m.packet.topicName, m.packet.origin]),
      sent.map((p) => [p.topicName, p.origin]),
    );
  }
});

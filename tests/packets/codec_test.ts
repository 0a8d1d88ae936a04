import assert, { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  ByteWriter,
  decodePacket,
  encodePacket,
  FRAME_NEED_MORE,
  FRAME_READY,
  type Packet,
  PacketFramer,
  PacketType,
  type ProtocolVersion,
} from "../../src/packets/mod.ts";
import { frame, GOLDEN, type GoldenCase, utf8 } from "./golden.ts";

/** Frames one whole packet and decodes it: the packet, or the framer's or decoder's reason code. */
function frameAndDecode(bytes: number[], version: ProtocolVersion): Packet | number {
  const framer = new PacketFramer();
  framer.push(new Uint8Array(bytes));
  const result = framer.next();
  if (result !== FRAME_READY) return result;
  strictEqual(framer.next(), FRAME_NEED_MORE, "the bytes hold exactly one packet");
  const packet = decodePacket(framer.header, framer.body, version);
  if (typeof packet !== "number") {
    strictEqual(packet.fixedHeader.remaining, framer.body.length);
    delete packet.fixedHeader.remaining;
  }
  return packet;
}

function encode(packet: Packet, version: ProtocolVersion): number[] {
  const out = new ByteWriter(8);
  const written = encodePacket(packet, version, out);
  strictEqual(written, out.length);
  return Array.from(out.toBytes());
}

Deno.test("golden table has at least 150 cases with unique names", () => {
  assert(GOLDEN.length >= 150, `only ${GOLDEN.length} cases`);
  const names = new Set(GOLDEN.map((c) => c.name));
  strictEqual(names.size, GOLDEN.length);
  for (const c of GOLDEN) {
    assert((c.packet === undefined) !== (c.error === undefined), `${c.name}: packet xor error`);
  }
});

function describe(c: GoldenCase): string {
  return `v${c.version} ${c.name}`;
}

Deno.test("decodePacket decodes every golden case to its packet", () => {
  for (const c of GOLDEN) {
    if (c.packet === undefined || c.encodeOnly) continue;
    deepStrictEqual(frameAndDecode(c.bytes, c.version), c.packet, describe(c));
  }
});

Deno.test("encodePacket encodes every golden packet to its bytes", () => {
  for (const c of GOLDEN) {
    if (c.packet === undefined || c.decodeOnly) continue;
    deepStrictEqual(encode(c.packet, c.version), c.bytes, describe(c));
  }
});

Deno.test("framer and decodePacket reject every golden error case with its reason code", () => {
  for (const c of GOLDEN) {
    if (c.error === undefined) continue;
    strictEqual(frameAndDecode(c.bytes, c.version), c.error, describe(c));
  }
});

Deno.test("decodePacket reads the protocol level from CONNECT, whatever the connection's", () => {
  for (const c of GOLDEN) {
    if (c.packet?.fixedHeader.type !== PacketType.Connect || c.encodeOnly) continue;
    for (const version of [3, 4, 5] as const) {
      deepStrictEqual(frameAndDecode(c.bytes, version), c.packet, describe(c));
    }
  }
});

Deno.test("decodePacket returns the PUBLISH payload as a view of the body", () => {
  const bytes = new Uint8Array(frame(0x30, utf8("t"), 1, 2, 3));
  const body = bytes.subarray(2);
  const packet = decodePacket(bytes[0], body, 4);
  assert(typeof packet !== "number");
  strictEqual(packet.payload?.buffer, bytes.buffer);
  body[body.length - 1] = 9;
  deepStrictEqual(Array.from(packet.payload ?? []), [1, 2, 9]);
});

Deno.test("decodePacket copies CONNECT binary fields and correlation data", () => {
  const c = GOLDEN.find((c) => c.name === "CONNECT v5 will with every will property");
  assert(c !== undefined);
  const bytes = new Uint8Array(c.bytes);
  const packet = decodePacket(bytes[0], bytes.subarray(2), 5);
  assert(typeof packet !== "number");
  bytes.fill(0);
  deepStrictEqual(packet.connect?.willPayload, new TextEncoder().encode("bye"));
  deepStrictEqual(packet.connect?.willProperties?.correlationData, new TextEncoder().encode("id"));
});

Deno.test("decodePacket never throws on truncations of golden packets", () => {
  for (const c of GOLDEN) {
    const bytes = new Uint8Array(c.bytes);
    // Body length from the (possibly multi-byte) Remaining Length; error cases may not have one.
    let headerLength = 1;
    while (headerLength < 5 && (bytes[headerLength] & 0x80) !== 0) headerLength++;
    headerLength++;
    if (headerLength > 5) continue;
    const body = bytes.subarray(headerLength);
    for (let cut = 0; cut < body.length; cut++) {
      for (const version of [3, 4, 5] as const) {
        const result = decodePacket(bytes[0], body.subarray(0, cut), version);
        if (typeof result === "number") assert(result >= 0x80, `${describe(c)} cut ${cut}: ${result}`);
      }
    }
  }
});

Deno.test("decodePacket never throws on random bodies", () => {
  let seed = 12345;
  const random = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000;
  for (let i = 0; i < 20_000; i++) {
    const body = new Uint8Array(Math.floor(random() * 40));
    for (let j = 0; j < body.length; j++) body[j] = Math.floor(random() * 256);
    const first = Math.floor(random() * 256);
    const version = ([3, 4, 5] as const)[i % 3];
    const result = decodePacket(first, body, version);
    if (typeof result === "number") assert(result >= 0x80);
    else strictEqual(result.fixedHeader.remaining, body.length);
  }
});

Deno.test("encodePacket appends after earlier packets and returns the bytes written", () => {
  const out = new ByteWriter(4);
  const first = encodePacket({ fixedHeader: { type: PacketType.Pingreq } }, 4, out);
  const payload = new Uint8Array(300).fill(7);
  const second = encodePacket(
    { fixedHeader: { type: PacketType.Publish, qos: 1 }, topicName: "a", packetId: 1, payload },
    5,
    out,
  );
  strictEqual(first, 2);
  strictEqual(second, 1 + 2 + 3 + 2 + 1 + 300);
  strictEqual(out.length, first + second);
  deepStrictEqual(Array.from(out.toBytes().subarray(0, 5)), [0xc0, 0x00, 0x32, 0xb2, 0x02]);
});

Deno.test("encodePacket moves the body when the Remaining Length guess is too small", () => {
  // The estimate counts the topic in UTF-16 units; three-byte characters push the body past 127.
  const topicName = "€".repeat(40);
  const out = new ByteWriter();
  encodePacket({ fixedHeader: { type: PacketType.Publish }, topicName, payload: new Uint8Array(5) }, 4, out);
  const framer = new PacketFramer();
  framer.push(out.toBytes());
  strictEqual(framer.next(), FRAME_READY);
  const packet = decodePacket(framer.header, framer.body, 4);
  assert(typeof packet !== "number");
  strictEqual(packet.topicName, topicName);
  strictEqual(packet.payload?.length, 5);
});

Deno.test("encodePacket moves the body when v5 properties push it past a varint boundary", () => {
  const payload = new Uint8Array(120);
  const packet: Packet = {
    fixedHeader: { type: PacketType.Publish, dup: false, qos: 0, retain: false },
    topicName: "t",
    properties: { userProperties: [["key", "value"]] },
    payload,
  };
  const out = new ByteWriter();
  out.u8(0xaa); // something before, which must stay put
  const written = encodePacket(packet, 5, out);
  strictEqual(out.buffer[0], 0xaa);
  const bytes = out.toBytes().subarray(1);
  strictEqual(bytes.length, written);
  const decoded = decodePacket(bytes[0], bytes.subarray(3), 5);
  assert(typeof decoded !== "number");
  delete decoded.fixedHeader.remaining;
  deepStrictEqual(decoded, packet);
});

Deno.test("encodePacket rejects an unknown packet type and oversized strings", () => {
  const out = new ByteWriter();
  assert.throws(() => encodePacket({ fixedHeader: { type: 0 } }, 4, out), RangeError);
  assert.throws(
    () => encodePacket({ fixedHeader: { type: PacketType.Publish }, topicName: "x".repeat(70_000) }, 4, out),
    RangeError,
  );
  assert.throws(() => encodePacket({ fixedHeader: { type: PacketType.Auth } }, 4, out), RangeError);
  assert.throws(() => encodePacket({ fixedHeader: { type: PacketType.Connect } }, 4, out), TypeError);
});

Deno.test("encodePacket output can be rewound to drop a packet", () => {
  const out = new ByteWriter();
  encodePacket({ fixedHeader: { type: PacketType.Pingresp } }, 4, out);
  const mark = out.length;
  encodePacket(
    { fixedHeader: { type: PacketType.Publish }, topicName: "t", payload: new Uint8Array(50) },
    4,
    out,
  );
  out.length = mark;
  deepStrictEqual(Array.from(out.toBytes()), [0xd0, 0x00]);
});

import assert, { deepStrictEqual, notDeepStrictEqual, strictEqual } from "node:assert/strict";
import {
  decodePacket,
  FRAME_NEED_MORE,
  FRAME_READY,
  type Packet,
  PacketFramer,
  type ProtocolVersion,
} from "../../src/packets/mod.ts";
import { frame, GOLDEN, utf8 } from "./golden.ts";

const CASES = GOLDEN.filter((c) => c.packet !== undefined && !c.encodeOnly);
const STREAM = new Uint8Array(CASES.flatMap((c) => c.bytes));

interface Frame {
  header: number;
  body: number[];
}

/** Feeds chunks and collects every frame (copied, since views only live until the next push). */
function frameAll(chunks: Uint8Array[], framer = new PacketFramer()): Frame[] {
  const frames: Frame[] = [];
  for (const chunk of chunks) {
    framer.push(chunk);
    for (;;) {
      const result = framer.next();
      if (result === FRAME_NEED_MORE) break;
      strictEqual(result, FRAME_READY);
      frames.push({ header: framer.header, body: Array.from(framer.body) });
    }
  }
  strictEqual(framer.bufferedBytes, 0);
  return frames;
}

function expectedFrames(): Frame[] {
  return CASES.map((c) => frameAll([new Uint8Array(c.bytes)])[0]);
}

function decodeFrames(frames: Frame[]): (Packet | number)[] {
  return frames.map((f, i) => {
    const packet = decodePacket(f.header, new Uint8Array(f.body), CASES[i].version as ProtocolVersion);
    if (typeof packet !== "number") delete packet.fixedHeader.remaining;
    return packet;
  });
}

function splitEvery(bytes: Uint8Array, sizes: () => number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let i = 0; i < bytes.length;) {
    const n = Math.max(1, sizes());
    chunks.push(bytes.slice(i, i + n));
    i += n;
  }
  return chunks;
}

function seeded(seed: number): () => number {
  return () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000;
}

Deno.test("PacketFramer frames the golden stream fed one byte at a time", () => {
  const frames = frameAll(splitEvery(STREAM, () => 1));
  strictEqual(frames.length, CASES.length);
  deepStrictEqual(frames, expectedFrames());
  deepStrictEqual(decodeFrames(frames), CASES.map((c) => c.packet));
});

Deno.test("PacketFramer frames the golden stream in random chunkings", () => {
  const expected = expectedFrames();
  for (let round = 0; round < 30; round++) {
    const random = seeded(round + 1);
    const largest = [2, 7, 50, 300, 5000][round % 5];
    const frames = frameAll(splitEvery(STREAM, () => Math.floor(random() * largest)));
    deepStrictEqual(frames, expected, `round ${round}`);
  }
});

Deno.test("PacketFramer frames many packets per chunk as views of the chunk", () => {
  const framer = new PacketFramer();
  const chunk = STREAM.slice();
  framer.push(chunk);
  let count = 0;
  while (framer.next() === FRAME_READY) {
    strictEqual(framer.body.buffer, chunk.buffer, "no copy for packets inside a chunk");
    count++;
  }
  strictEqual(count, CASES.length);
});

Deno.test("PacketFramer works when the caller reuses one read buffer", () => {
  // The usual read loop: read into the same buffer, push a view of it, frame until NEED_MORE.
  const readBuffer = new Uint8Array(37);
  const framer = new PacketFramer();
  const packets: (Packet | number)[] = [];
  let caseIndex = 0;
  for (let offset = 0; offset < STREAM.length; offset += readBuffer.length) {
    const n = Math.min(readBuffer.length, STREAM.length - offset);
    readBuffer.fill(0xee); // the next read overwrites everything
    readBuffer.set(STREAM.subarray(offset, offset + n));
    framer.push(readBuffer.subarray(0, n));
    while (framer.next() === FRAME_READY) {
      const packet = decodePacket(framer.header, framer.body, CASES[caseIndex++].version);
      if (typeof packet !== "number") {
        delete packet.fixedHeader.remaining;
        if (packet.payload !== undefined) packet.payload = packet.payload.slice(); // keep it: copy
      }
      packets.push(packet);
    }
  }
  deepStrictEqual(packets, CASES.map((c) => c.packet));
});

Deno.test("PacketFramer handles pushes without draining in between", () => {
  const framer = new PacketFramer();
  const chunks = splitEvery(STREAM, seeded(99));
  const frames: Frame[] = [];
  for (let i = 0; i < chunks.length; i++) {
    framer.push(chunks[i]);
    if (i % 3 !== 2) continue; // push three chunks before framing
    while (framer.next() === FRAME_READY) {
      frames.push({ header: framer.header, body: Array.from(framer.body) });
    }
  }
  while (framer.next() === FRAME_READY) frames.push({ header: framer.header, body: Array.from(framer.body) });
  deepStrictEqual(frames, expectedFrames());
});

Deno.test("PacketFramer reports 0x95 as soon as the length exceeds the maximum", () => {
  const framer = new PacketFramer(100);
  // PUBLISH announcing a remaining length of 200: the body never arrives.
  framer.push(new Uint8Array([0x30, 0xc8]));
  strictEqual(framer.next(), FRAME_NEED_MORE);
  framer.push(new Uint8Array([0x01]));
  strictEqual(framer.next(), 0x95);
  strictEqual(framer.next(), 0x95, "the error is sticky");
  framer.push(new Uint8Array([0xc0, 0x00]));
  strictEqual(framer.next(), 0x95);
});

Deno.test("PacketFramer maximum counts the fixed header", () => {
  const packet = new Uint8Array(frame(0x30, utf8("t"), new Uint8Array(10))); // 2 + 13 bytes
  const exact = new PacketFramer(packet.length);
  exact.push(packet);
  strictEqual(exact.next(), FRAME_READY);
  const smaller = new PacketFramer(packet.length - 1);
  smaller.push(packet);
  strictEqual(smaller.next(), 0x95);
  // The maximum can change between packets (e.g. after CONNECT).
  const framer = new PacketFramer();
  framer.push(packet);
  strictEqual(framer.next(), FRAME_READY);
  framer.maximumPacketSize = 5;
  framer.push(packet);
  strictEqual(framer.next(), 0x95);
});

Deno.test("PacketFramer detects an oversized packet while completing a pending header", () => {
  const framer = new PacketFramer(1000);
  framer.push(new Uint8Array([0xc0, 0x00, 0x30, 0xff]));
  strictEqual(framer.next(), FRAME_READY);
  strictEqual(framer.next(), FRAME_NEED_MORE);
  framer.push(new Uint8Array([0x7f, 1, 2, 3]));
  strictEqual(framer.next(), 0x95);
});

Deno.test("PacketFramer rejects a Remaining Length longer than four bytes", () => {
  const framer = new PacketFramer();
  framer.push(new Uint8Array([0x30, 0xff, 0xff, 0xff]));
  strictEqual(framer.next(), FRAME_NEED_MORE);
  framer.push(new Uint8Array([0xff]));
  strictEqual(framer.next(), 0x81, "four continuation bytes are already too many");
  const split = new PacketFramer();
  for (const byte of [0xc0, 0x80, 0x80, 0x80, 0x80, 0x00]) split.push(new Uint8Array([byte]));
  strictEqual(split.next(), 0x81);
});

Deno.test("PacketFramer accepts the largest four-byte Remaining Length header", () => {
  const framer = new PacketFramer();
  framer.push(new Uint8Array([0x30, 0xff, 0xff, 0xff, 0x7f, 0x00, 0x01]));
  strictEqual(framer.next(), FRAME_NEED_MORE);
  strictEqual(framer.bufferedBytes, 7);
});

Deno.test("PacketFramer does not clobber a view with frames returned from the same push", () => {
  const a = frame(0x30, utf8("a"), new Uint8Array(20).fill(0xaa));
  const b = frame(0x30, utf8("b"), new Uint8Array(20).fill(0xbb));
  const c = frame(0x30, utf8("c"), new Uint8Array(20).fill(0xcc));
  const framer = new PacketFramer();
  framer.push(new Uint8Array(a.slice(0, 10)));
  strictEqual(framer.next(), FRAME_NEED_MORE);
  framer.push(new Uint8Array([...a.slice(10), ...b, ...c.slice(0, 7)]));
  strictEqual(framer.next(), FRAME_READY);
  const viewA = framer.body; // assembled in a pending buffer
  strictEqual(framer.next(), FRAME_READY);
  const viewB = framer.body; // a view of the pushed chunk
  strictEqual(framer.next(), FRAME_NEED_MORE); // copies the start of c
  deepStrictEqual(Array.from(viewA), a.slice(2));
  deepStrictEqual(Array.from(viewB), b.slice(2));
});

Deno.test("PacketFramer pending-buffer views are only valid until the next push", () => {
  // Documents the contract: a body assembled from several chunks lives in a buffer the framer
  // reuses after later pushes. Copy what must be kept (decodePacket copies all but the payload).
  const a = frame(0x30, utf8("a"), new Uint8Array(20).fill(0xaa));
  const c = frame(0x30, utf8("c"), new Uint8Array(20).fill(0xcc));
  const d = frame(0x30, utf8("d"), new Uint8Array(20).fill(0xdd));
  const framer = new PacketFramer();
  framer.push(new Uint8Array(a.slice(0, 10)));
  strictEqual(framer.next(), FRAME_NEED_MORE);
  framer.push(new Uint8Array([...a.slice(10), ...c.slice(0, 10)]));
  strictEqual(framer.next(), FRAME_READY);
  const viewA = framer.body;
  const keptA = framer.body.slice();
  strictEqual(framer.next(), FRAME_NEED_MORE);
  framer.push(new Uint8Array([...c.slice(10), ...d.slice(0, 10)]));
  strictEqual(framer.next(), FRAME_READY);
  strictEqual(framer.next(), FRAME_NEED_MORE);
  deepStrictEqual(Array.from(keptA), a.slice(2));
  notDeepStrictEqual(Array.from(viewA), a.slice(2), "the pending buffer was reused");
});

Deno.test("PacketFramer bufferedBytes counts bytes not yet framed", () => {
  const framer = new PacketFramer();
  strictEqual(framer.bufferedBytes, 0);
  framer.push(new Uint8Array([0xc0, 0x00, 0x40, 0x02, 0x00]));
  strictEqual(framer.bufferedBytes, 5);
  strictEqual(framer.next(), FRAME_READY);
  strictEqual(framer.bufferedBytes, 3);
  strictEqual(framer.next(), FRAME_NEED_MORE);
  strictEqual(framer.bufferedBytes, 3);
  framer.push(new Uint8Array([0x01, 0xd0]));
  strictEqual(framer.next(), FRAME_READY);
  deepStrictEqual(Array.from(framer.body), [0x00, 0x01]);
  strictEqual(framer.bufferedBytes, 1);
  strictEqual(framer.next(), FRAME_NEED_MORE);
});

Deno.test("PacketFramer reset clears buffered bytes and errors", () => {
  const framer = new PacketFramer();
  framer.push(new Uint8Array([0x30, 0xff, 0xff, 0xff, 0xff]));
  strictEqual(framer.next(), 0x81);
  framer.reset();
  framer.push(new Uint8Array([0xc0, 0x00]));
  strictEqual(framer.next(), FRAME_READY);
  strictEqual(framer.header, 0xc0);
});

Deno.test("PacketFramer assembles a large packet from many small chunks", () => {
  const payload = new Uint8Array(100_000).map((_, i) => i & 0xff);
  const bytes = new Uint8Array(frame(0x30, utf8("big"), payload));
  const frames = frameAll(splitEvery(bytes, () => 1000));
  strictEqual(frames.length, 1);
  const packet = decodePacket(frames[0].header, new Uint8Array(frames[0].body), 4);
  assert(typeof packet !== "number");
  deepStrictEqual(packet.payload, payload);
});

Deno.test("PacketFramer ignores empty chunks", () => {
  const framer = new PacketFramer();
  framer.push(new Uint8Array([0xc0]));
  framer.push(new Uint8Array(0));
  strictEqual(framer.next(), FRAME_NEED_MORE);
  framer.push(new Uint8Array(0));
  framer.push(new Uint8Array([0x00]));
  strictEqual(framer.next(), FRAME_READY);
  strictEqual(framer.body.length, 0);
});

Deno.test("PacketFramer and decodePacket reject golden error cases fed one byte at a time", () => {
  for (const c of GOLDEN) {
    if (c.error === undefined) continue;
    const framer = new PacketFramer();
    let result = FRAME_NEED_MORE;
    for (const byte of c.bytes) {
      framer.push(new Uint8Array([byte]));
      result = framer.next();
      if (result !== FRAME_NEED_MORE) break;
    }
    if (result === FRAME_READY) result = decodePacket(framer.header, framer.body, c.version) as number;
    strictEqual(result, c.error, c.name);
  }
});

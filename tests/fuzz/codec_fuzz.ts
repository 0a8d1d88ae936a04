/**
 * The codec fuzzer: feeds random bytes, mutations of every golden case and random valid packet
 * sequences to {@linkcode PacketFramer} and {@linkcode decodePacket}, and checks their properties:
 *
 * - nothing throws; a decode gives a packet or a reason code in {@linkcode DECODE_CODES}, a framing
 *   error is 0x81 or 0x95;
 * - the framer agrees with an independent reference framer, whatever the chunking, reports an
 *   oversized Remaining Length (0x95) as soon as the header is complete, before any of the body is
 *   buffered, and never buffers more than the partial packet it waits for (so never more than the
 *   maximum packet size);
 * - a decoded packet encodes and decodes back to itself, and encoding is stable;
 * - structured mutations decode to the result they imply (a repeated property: 0x82);
 * - random valid packets decode to exactly what was encoded.
 *
 * @module
 */

import {
  ByteWriter,
  decodePacket,
  encodePacket,
  FRAME_NEED_MORE,
  FRAME_READY,
  type Packet,
  PacketFramer,
  PacketType,
  PROTOCOL_MAXIMUM_PACKET_SIZE,
  type ProtocolVersion,
} from "../../src/packets/mod.ts";
import { GOLDEN } from "../packets/golden.ts";
import { type Mutant, mutate } from "./mutate.ts";
import { randomPacket } from "./packets.ts";
import { Rng } from "./rng.ts";

/** The reason codes `decodePacket` may return. */
export const DECODE_CODES: ReadonlySet<number> = new Set([0x81, 0x82, 0x84, 0x90, 0x94]);
/** The reason codes the framer may return. */
export const FRAME_CODES: ReadonlySet<number> = new Set([0x81, 0x95]);

/** A property violation: what broke, and the input that shows it. */
export interface Failure {
  /** The property that does not hold. */
  property: string;
  /** Details. */
  detail: string;
  /** The stream that was fed. */
  bytes: number[];
  /** The protocol level it was decoded with. */
  version: ProtocolVersion;
  /** The framer's maximum packet size (0: the protocol maximum). */
  maximumPacketSize: number;
  /** How the input was made. */
  origin: string;
}

/** Counts kept by a fuzz run. */
export interface FuzzStats {
  /** Inputs fed. */
  cases: number;
  /** Inputs by kind (random, golden mutation, valid sequence). */
  kinds: Record<string, number>;
  /** Packets framed. */
  frames: number;
  /** Packets that decoded. */
  decoded: number;
  /** Packets re-encoded and decoded again. */
  roundTrips: number;
  /** Times each reason code was returned (framer and decoder). */
  codes: Map<number, number>;
  /** Property violations found (the first few in full). */
  failures: Failure[];
  /** All violations, counted. */
  failureCount: number;
}

/** A fresh, empty set of counts. */
export function newStats(): FuzzStats {
  return {
    cases: 0,
    kinds: {},
    frames: 0,
    decoded: 0,
    roundTrips: 0,
    codes: new Map(),
    failures: [],
    failureCount: 0,
  };
}

const KEEP_FAILURES = 20;

/** One framed packet of the reference framer. */
interface RefFrame {
  header: number;
  bodyStart: number;
  end: number;
}

/** The reference framer's view of a whole stream. */
interface RefResult {
  frames: RefFrame[];
  /** `FRAME_NEED_MORE` or the framing reason code. */
  status: number;
  /** Bytes left after the last frame (when the status is `FRAME_NEED_MORE`). */
  pending: number;
}

/**
 * Frames a whole stream the simple way (spec 2.1, 1.5.5), as the oracle for {@linkcode PacketFramer}.
 *
 * @param bytes The stream.
 * @param limit The largest packet accepted.
 * @returns The frames and the final status.
 */
export function referenceFrames(bytes: Uint8Array, limit: number): RefResult {
  const frames: RefFrame[] = [];
  let p = 0;
  for (;;) {
    if (p >= bytes.length) return { frames, status: FRAME_NEED_MORE, pending: 0 };
    let value = 0;
    let multiplier = 1;
    let headerLength = 0;
    for (let i = 1; i <= 4; i++) {
      if (p + i >= bytes.length) return { frames, status: FRAME_NEED_MORE, pending: bytes.length - p };
      const byte = bytes[p + i];
      value += (byte & 0x7f) * multiplier;
      multiplier *= 128;
      if (byte < 0x80) {
        headerLength = i + 1;
        break;
      }
    }
    if (headerLength === 0) return { frames, status: 0x81, pending: bytes.length - p };
    const total = headerLength + value;
    if (total > limit) return { frames, status: 0x95, pending: bytes.length - p };
    if (p + total > bytes.length) return { frames, status: FRAME_NEED_MORE, pending: bytes.length - p };
    frames.push({ header: bytes[p], bodyStart: p + headerLength, end: p + total });
    p += total;
  }
}

/** Structural equality for decoded packets: objects, arrays, Uint8Arrays; missing equals undefined. */
export function samePacket(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    if (!(a instanceof Uint8Array && b instanceof Uint8Array) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(ra), ...Object.keys(rb)]);
  for (const key of keys) {
    if (key === "remaining") continue;
    if (!samePacket(ra[key], rb[key])) return false;
  }
  return true;
}

/** A compact description of a decode result, for failure messages. */
export function describeResult(result: Packet | number | undefined): string {
  if (typeof result !== "object") return `${result === undefined ? "nothing" : `0x${result.toString(16)}`}`;
  return JSON.stringify(
    result,
    (_key, value) => value instanceof Uint8Array ? `bytes(${Array.from(value).join(",")})` : value,
  );
}

/** One fuzz input. */
interface Input {
  bytes: Uint8Array;
  version: ProtocolVersion;
  maximumPacketSize: number;
  origin: string;
  /** What decoding the first packet must give, when known. */
  expectDecode?: number | "packet";
  /** The packets the stream must decode to, when known (valid sequences). */
  expectPackets?: Packet[];
}

/** A framer or decoder result seen while feeding a stream: a frame's decode, or the final status. */
type Seen = { header: number; body: Uint8Array } | { status: number };

/**
 * Runs every codec property on one input, recording counts and failures in `stats`.
 *
 * @param input The stream and how to decode it.
 * @param rng Picks the chunking.
 * @param stats Where to count.
 */
function checkInput(input: Input, rng: Rng, stats: FuzzStats): void {
  const { bytes, version, maximumPacketSize } = input;
  const fail = (property: string, detail: string) => {
    stats.failureCount++;
    if (stats.failures.length < KEEP_FAILURES) {
      stats.failures.push({
        property,
        detail,
        bytes: Array.from(bytes),
        version,
        maximumPacketSize,
        origin: input.origin,
      });
    }
  };
  const limit = maximumPacketSize > 0 ? maximumPacketSize : PROTOCOL_MAXIMUM_PACKET_SIZE;
  const ref = referenceFrames(bytes, limit);

  // Whole stream in one push.
  const whole = feed(bytes, [bytes.length], undefined, maximumPacketSize, ref, limit, fail);
  if (whole === undefined) return;
  // The same stream in random chunks (and, now and then, one byte at a time).
  const chunks: number[] = [];
  if (bytes.length > 0) {
    if (rng.chance(0.1) && bytes.length < 400) {
      for (let i = 0; i < bytes.length; i++) chunks.push(1);
    } else {
      let left = bytes.length;
      while (left > 0) {
        const n = Math.min(left, rng.range(1, Math.max(1, Math.ceil(bytes.length / 2))));
        chunks.push(n);
        left -= n;
      }
    }
  }
  const chunked = feed(bytes, chunks, rng, maximumPacketSize, ref, limit, fail);
  if (chunked === undefined) return;
  if (chunked.length !== whole.length) {
    fail(
      "chunking",
      `whole stream gave ${whole.length} results, chunks ${chunks.join(",")} gave ${chunked.length}`,
    );
    return;
  }
  for (let i = 0; i < whole.length; i++) {
    const a = whole[i];
    const b = chunked[i];
    if ("status" in a || "status" in b) {
      if (!("status" in a && "status" in b && a.status === b.status)) {
        fail("chunking", `result ${i} differs with chunks ${chunks.join(",")}`);
        return;
      }
    } else if (a.header !== b.header || !samePacket(a.body, b.body)) {
      fail("chunking", `frame ${i} differs with chunks ${chunks.join(",")}`);
      return;
    }
  }

  // Decode every frame.
  let decodedPackets = 0;
  for (let i = 0; i < whole.length; i++) {
    const item = whole[i];
    if ("status" in item) {
      if (item.status !== FRAME_NEED_MORE) count(stats, item.status);
      continue;
    }
    stats.frames++;
    const result = checkDecode(item.header, item.body, version, stats, fail);
    if (i === 0 && input.expectDecode !== undefined) {
      const ok = input.expectDecode === "packet" ? typeof result === "object" : result === input.expectDecode;
      if (!ok) {
        fail(
          "expected decode",
          `expected ${describeResult(input.expectDecode === "packet" ? undefined : input.expectDecode)}${
            input.expectDecode === "packet" ? " (a packet)" : ""
          }, got ${describeResult(result)}`,
        );
      }
    }
    if (input.expectPackets !== undefined) {
      const expected = input.expectPackets[decodedPackets++];
      if (!samePacket(result, expected)) {
        fail("valid packet", `encoded ${describeResult(expected)}, decoded ${describeResult(result)}`);
      }
    }
  }
  if (input.expectPackets !== undefined && decodedPackets !== input.expectPackets.length) {
    fail("valid packet", `${input.expectPackets.length} packets encoded, ${decodedPackets} framed`);
  }
}

function count(stats: FuzzStats, code: number): void {
  stats.codes.set(code, (stats.codes.get(code) ?? 0) + 1);
}

/**
 * Feeds a stream to a fresh framer in the given chunks, checking it against the reference after every
 * push: the frames completed so far, the buffered byte count, and a framing error as soon as its
 * header is in. Frame bodies are copied, since the framer may reuse its buffers.
 */
function feed(
  bytes: Uint8Array,
  chunks: number[],
  rng: Rng | undefined,
  maximumPacketSize: number,
  ref: RefResult,
  limit: number,
  fail: (property: string, detail: string) => void,
): Seen[] | undefined {
  const framer = new PacketFramer(maximumPacketSize);
  const seen: Seen[] = [];
  let pushed = 0;
  let frameIndex = 0;
  let status = FRAME_NEED_MORE;
  const where = () => `chunks ${chunks.join(",")}, after ${pushed} bytes`;
  try {
    const live: Uint8Array[] = [];
    for (let c = 0; c < chunks.length; c++) {
      const n = chunks[c];
      // Push a copy that is overwritten once the framer is done with it, as a reused read buffer would be.
      const chunk = bytes.slice(pushed, pushed + n);
      live.push(chunk);
      framer.push(chunk);
      pushed += n;
      // Usually take every ready frame; sometimes only a few (or none), so that the next push joins
      // onto bytes the framer has not framed yet.
      const drain = rng === undefined || c === chunks.length - 1 || rng.chance(0.7) ? Infinity : rng.int(3);
      let taken = 0;
      status = FRAME_READY;
      while (taken < drain) {
        status = framer.next();
        if (status !== FRAME_READY) break;
        taken++;
        const expected = ref.frames[frameIndex++];
        if (expected === undefined) {
          fail("framer", `a frame the reference does not have (${where()})`);
          return undefined;
        }
        const body = framer.body;
        if (
          framer.header !== expected.header || body.length !== expected.end - expected.bodyStart ||
          !samePacket(body, bytes.subarray(expected.bodyStart, expected.end))
        ) {
          fail("framer", `frame ${frameIndex - 1} differs from the reference (${where()})`);
          return undefined;
        }
        seen.push({ header: framer.header, body: body.slice() });
      }
      if (status === FRAME_READY) continue; // not drained: the framer may still hold views of the chunks
      for (const old of live) old.fill(0xee);
      live.length = 0;
      // What the reference says about the bytes pushed so far.
      const prefix = referenceFrames(bytes.subarray(0, pushed), limit);
      if (prefix.frames.length !== frameIndex) {
        fail("framer", `${frameIndex} frames, the reference has ${prefix.frames.length} (${where()})`);
        return undefined;
      }
      if (status !== prefix.status) {
        // An oversized or broken length must be reported as soon as the header is in.
        fail(
          "framer",
          `status 0x${status.toString(16)}, the reference says 0x${prefix.status.toString(16)} (${where()})`,
        );
        return undefined;
      }
      if (status === FRAME_NEED_MORE) {
        const buffered = framer.bufferedBytes;
        if (buffered !== prefix.pending) {
          fail("framer", `buffers ${buffered} bytes, ${prefix.pending} are pending (${where()})`);
          return undefined;
        }
        if (buffered >= limit) fail("framer", `buffers ${buffered} bytes, limit ${limit} (${where()})`);
      } else {
        // The error is sticky, and pushing more changes nothing.
        framer.push(new Uint8Array([0x30, 0x00]));
        if (framer.next() !== status) fail("framer", `framing error 0x${status.toString(16)} is not sticky`);
        break;
      }
    }
  } catch (error) {
    fail("framer threw", `${error instanceof Error ? error.stack : error} (${where()})`);
    return undefined;
  }
  if (status !== ref.status) {
    fail("framer", `final status 0x${status.toString(16)}, reference 0x${ref.status.toString(16)}`);
    return undefined;
  }
  seen.push({ status });
  return seen;
}

const roundTripWriter = new ByteWriter(256);

/**
 * Decodes one frame and checks the result: no throw, a known reason code, or a packet that round-trips
 * through the encoder.
 */
function checkDecode(
  header: number,
  body: Uint8Array,
  version: ProtocolVersion,
  stats: FuzzStats,
  fail: (property: string, detail: string) => void,
): Packet | number | undefined {
  let result: Packet | number;
  try {
    result = decodePacket(header, body, version);
  } catch (error) {
    fail("decode threw", String(error instanceof Error ? error.stack : error));
    return undefined;
  }
  if (typeof result === "number") {
    count(stats, result);
    if (!DECODE_CODES.has(result)) fail("reason code", `decodePacket returned 0x${result.toString(16)}`);
    return result;
  }
  stats.decoded++;
  if (result.fixedHeader.type !== header >> 4) {
    fail("decode", `type ${result.fixedHeader.type} from 0x${header.toString(16)}`);
  }
  if (result.fixedHeader.remaining !== body.length) {
    fail("decode", `remaining ${result.fixedHeader.remaining}, body ${body.length}`);
  }
  // Round trip: encode for the same level (CONNECT: its own level), decode again, encode again.
  const level = result.fixedHeader.type === PacketType.Connect ? result.protocolVersion! : version;
  const out = roundTripWriter;
  try {
    out.reset();
    encodePacket(result, level, out);
    const first = out.toBytes().slice();
    const again = decodeWhole(first, version);
    if (typeof again === "number") {
      fail("round trip", `re-encoded packet decodes to 0x${again.toString(16)}: ${describeResult(result)}`);
      return result;
    }
    if (!samePacket(again, result)) {
      fail("round trip", `decoded ${describeResult(result)}, round trip gave ${describeResult(again)}`);
      return result;
    }
    out.reset();
    encodePacket(again, level, out);
    if (!samePacket(out.toBytes(), first)) {
      fail("round trip", `encoding is not stable for ${describeResult(result)}`);
    }
    stats.roundTrips++;
  } catch (error) {
    fail("encode threw", `${error instanceof Error ? error.stack : error}: ${describeResult(result)}`);
  }
  return result;
}

/** Decodes one whole packet (header, Remaining Length, body). */
function decodeWhole(bytes: Uint8Array, version: ProtocolVersion): Packet | number {
  let p = 1;
  while (bytes[p] >= 0x80) p++;
  return decodePacket(bytes[0], bytes.subarray(p + 1), version);
}

/** Everything a fuzz run needs, prepared once: the golden packets as bytes. */
export interface Corpus {
  /** Golden cases: bytes, level, and whether they decode. */
  golden: { bytes: Uint8Array; version: ProtocolVersion; decodes: boolean; name: string }[];
  /** Golden bytes only, to splice in. */
  pool: Uint8Array[];
  /** The next golden case to mutate (round robin). */
  next: number;
}

/** Builds the corpus from the golden table. */
export function goldenCorpus(): Corpus {
  const golden = GOLDEN.map((c) => ({
    bytes: new Uint8Array(c.bytes),
    version: c.version,
    decodes: c.packet !== undefined,
    name: c.name,
  }));
  return { golden, pool: golden.map((g) => g.bytes), next: 0 };
}

const FIRST_BYTES = [
  0x10,
  0x20,
  0x30,
  0x31,
  0x32,
  0x34,
  0x3d,
  0x40,
  0x50,
  0x62,
  0x70,
  0x82,
  0x90,
  0xa2,
  0xb0,
  0xc0,
  0xd0,
  0xe0,
  0xf0,
];
const LIMITS = [0, 0, 0, 64, 128, 300, 4096];

/**
 * Makes one random input: random bytes, a mutated golden case, or a sequence of random valid packets.
 *
 * @param rng The random source.
 * @param corpus The golden corpus.
 * @returns The input and its kind.
 */
function makeInput(rng: Rng, corpus: Corpus): { kind: string; input: Input } {
  const version = rng.pick([3, 4, 5, 5] as const);
  const maximumPacketSize = rng.pick(LIMITS);
  const roll = rng.int(100);
  if (roll < 20) {
    // (a) random bytes: either raw, or a well-framed random body behind a plausible first byte.
    if (rng.chance(0.3)) {
      return {
        kind: "random",
        input: { bytes: rng.bytes(rng.int(48)), version, maximumPacketSize, origin: "random bytes" },
      };
    }
    const body = rng.bytes(rng.int(64));
    const header = rng.chance(0.8) ? rng.pick(FIRST_BYTES) : rng.int(256);
    const length: number[] = [];
    let n = body.length;
    do {
      length.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
      n >>= 7;
    } while (n > 0);
    const bytes = new Uint8Array(1 + length.length + body.length);
    bytes[0] = header;
    bytes.set(length, 1);
    bytes.set(body, 1 + length.length);
    return { kind: "random", input: { bytes, version, maximumPacketSize, origin: "random body" } };
  }
  if (roll < 85) {
    // (b) a mutation of a golden case, decoded with its own protocol level.
    // Round robin, so that every golden case is mutated.
    const g = corpus.golden[corpus.next++ % corpus.golden.length];
    const mutant: Mutant = mutate(g.bytes, g.version, rng, corpus.pool);
    const input: Input = {
      bytes: mutant.bytes,
      version: g.version,
      maximumPacketSize,
      origin: `golden "${g.name}" (v${g.version}) with ${mutant.names.join(", ")}`,
    };
    if (mutant.expectDecode !== undefined && g.decodes) input.expectDecode = mutant.expectDecode;
    return { kind: "golden mutation", input };
  }
  // (c) random valid packets, concatenated; every one must decode to what was encoded.
  const packets: Packet[] = [];
  const out = new ByteWriter(256);
  const n = rng.range(1, 4);
  for (let i = 0; i < n; i++) {
    const packet = randomPacket(rng, version);
    packets.push(packet);
    encodePacket(packet, version, out);
  }
  return {
    kind: "valid sequence",
    input: {
      bytes: out.toBytes().slice(),
      version,
      maximumPacketSize: 0,
      origin: `valid packets ${packets.map((p) => p.fixedHeader.type).join(",")}`,
      expectPackets: packets,
    },
  };
}

/** Options of {@linkcode runCodecFuzz}. */
export interface CodecFuzzOptions {
  /** The seed. */
  seed: number;
  /** Stop after this many inputs (default: unbounded). */
  cases?: number;
  /** Stop after this many seconds (default: unbounded). */
  seconds?: number;
  /** Called about every 10,000 inputs. */
  onProgress?: (stats: FuzzStats) => void;
}

/**
 * Runs the codec fuzzer until the case count or the time is reached.
 *
 * @param options Seed and limits.
 * @returns The counts and the failures found.
 */
export function runCodecFuzz(options: CodecFuzzOptions): FuzzStats {
  const rng = new Rng(options.seed);
  const corpus = goldenCorpus();
  const stats = newStats();
  const cases = options.cases ?? Infinity;
  const deadline = options.seconds === undefined ? Infinity : Date.now() + options.seconds * 1000;
  // Every golden case unmutated first.
  for (const g of corpus.golden) {
    checkInput(
      { bytes: g.bytes, version: g.version, maximumPacketSize: 0, origin: `golden "${g.name}"` },
      rng,
      stats,
    );
    stats.cases++;
    stats.kinds.golden = (stats.kinds.golden ?? 0) + 1;
  }
  while (stats.cases < cases) {
    if ((stats.cases & 1023) === 0) {
      if (Date.now() >= deadline) break;
      if (stats.cases % 10_240 === 0) options.onProgress?.(stats);
    }
    const { kind, input } = makeInput(rng, corpus);
    stats.kinds[kind] = (stats.kinds[kind] ?? 0) + 1;
    checkInput(input, rng, stats);
    stats.cases++;
  }
  return stats;
}

/**
 * A one-line summary of a run's counts.
 *
 * @param stats The counts.
 * @returns The summary.
 */
export function summarize(stats: FuzzStats): string {
  const codes = [...stats.codes.entries()].sort((a, b) => a[0] - b[0])
    .map(([code, n]) => `0x${code.toString(16)}×${n}`).join(" ");
  const kinds = Object.entries(stats.kinds).map(([k, n]) => `${k} ${n}`).join(", ");
  return `${stats.cases} cases (${kinds}); ${stats.frames} frames, ${stats.decoded} decoded, ` +
    `${stats.roundTrips} round trips; ${stats.codes.size} distinct reason codes: ${codes}; ` +
    `${stats.failureCount} failures`;
}

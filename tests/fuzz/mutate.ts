/**
 * Mutations of whole MQTT packets for the fuzz harness: bit flips, truncation, Remaining Length and
 * string length corruption, huge lengths, and structured v5 property duplication (whose decode result
 * is known in advance).
 *
 * Everything here works on raw bytes with its own arithmetic, independent of the codec under test;
 * only the property table (identifier → wire type) is shared.
 *
 * @module
 */

import { propertyById, PropertyType } from "../../src/packets/mod.ts";
import type { Rng } from "./rng.ts";
import { varint } from "../packets/golden.ts";

/** The largest Variable Byte Integer. */
export const MAX_VARINT = 268_435_455;

/** A mutated byte stream and, when the mutation fixes it, what decoding its first packet must give. */
export interface Mutant {
  /** The names of the mutations applied, in order. */
  names: string[];
  /** The bytes to feed. */
  bytes: Uint8Array;
  /**
   * What `decodePacket` must return for the first packet: a reason code, `"packet"` for success, or
   * undefined when only the general properties apply.
   */
  expectDecode?: number | "packet";
}

/** Reads a Variable Byte Integer at `offset`: its value and size, or undefined if truncated or too long. */
export function readVarint(bytes: Uint8Array, offset: number): { value: number; size: number } | undefined {
  let value = 0;
  let multiplier = 1;
  for (let i = 0; i < 4; i++) {
    if (offset + i >= bytes.length) return undefined;
    const byte = bytes[offset + i];
    value += (byte & 0x7f) * multiplier;
    if (byte < 0x80) return { value, size: i + 1 };
    multiplier *= 128;
  }
  return undefined;
}

/** A whole packet from its first byte and body, with the shortest Remaining Length. */
export function framePacket(header: number, body: Uint8Array): Uint8Array {
  const length = varint(body.length);
  const out = new Uint8Array(1 + length.length + body.length);
  out[0] = header;
  out.set(length, 1);
  out.set(body, 1 + length.length);
  return out;
}

/** Splits a whole packet into first byte and body, if its Remaining Length is well formed and exact. */
export function splitPacket(bytes: Uint8Array): { header: number; body: Uint8Array } | undefined {
  const length = readVarint(bytes, 1);
  if (length === undefined || 1 + length.size + length.value !== bytes.length) return undefined;
  return { header: bytes[0], body: bytes.subarray(1 + length.size) };
}

function concat(...parts: (Uint8Array | number[])[]): Uint8Array {
  let n = 0;
  for (const part of parts) n += part.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Where a v5 property block starts in a body (the offset of its Property Length), by packet type. */
function propertyBlockOffsets(header: number, body: Uint8Array): number[] {
  const type = header >> 4;
  const u16 = (at: number) => at + 1 < body.length ? (body[at] << 8) | body[at + 1] : -1;
  switch (type) {
    case 1: { // CONNECT: name, level, flags, keep alive, properties, client id, [will properties]
      const nameLength = u16(0);
      if (nameLength < 0) return [];
      const at = 2 + nameLength + 4;
      const flags = body[2 + nameLength + 1];
      const block = readVarint(body, at);
      if (block === undefined) return [at];
      const clientIdAt = at + block.size + block.value;
      const clientIdLength = u16(clientIdAt);
      if ((flags & 0x04) === 0 || clientIdLength < 0) return [at];
      return [at, clientIdAt + 2 + clientIdLength];
    }
    case 2: // CONNACK
      return [2];
    case 3: { // PUBLISH
      const topicLength = u16(0);
      if (topicLength < 0) return [];
      return [2 + topicLength + (((header >> 1) & 3) > 0 ? 2 : 0)];
    }
    case 4:
    case 5:
    case 6:
    case 7: // acks: packet id, reason code, properties
      return body.length > 3 ? [3] : [];
    case 8:
    case 9:
    case 10:
    case 11:
      return [2];
    case 14:
    case 15:
      return body.length > 1 ? [1] : [];
    default:
      return [];
  }
}

/** The size of one property's value, or -1 if it runs past `end` or the identifier is unknown. */
function propertyValueSize(body: Uint8Array, at: number, end: number, id: number): number {
  const definition = propertyById(id);
  if (definition === undefined) return -1;
  const u16 = (p: number) => p + 1 < end ? (body[p] << 8) | body[p + 1] : -1;
  let size: number;
  switch (definition.type) {
    case PropertyType.Byte:
      size = 1;
      break;
    case PropertyType.TwoByteInteger:
      size = 2;
      break;
    case PropertyType.FourByteInteger:
      size = 4;
      break;
    case PropertyType.VariableByteInteger: {
      const v = readVarint(body.subarray(0, end), at);
      if (v === undefined) return -1;
      size = v.size;
      break;
    }
    case PropertyType.Utf8String:
    case PropertyType.BinaryData: {
      const n = u16(at);
      if (n < 0) return -1;
      size = 2 + n;
      break;
    }
    case PropertyType.Utf8StringPair: {
      const a = u16(at);
      if (a < 0) return -1;
      const b = u16(at + 2 + a);
      if (b < 0) return -1;
      size = 4 + a + b;
      break;
    }
    default:
      return -1;
  }
  return at + size <= end ? size : -1;
}

/** One property inside a block: where it starts and ends, and its identifier. */
interface PropertySpan {
  start: number;
  end: number;
  id: number;
}

/** The properties of the block whose Property Length is at `at`, or undefined if it does not parse. */
function propertySpans(
  body: Uint8Array,
  at: number,
): { spans: PropertySpan[]; lengthSize: number; length: number } | undefined {
  const block = readVarint(body, at);
  if (block === undefined) return undefined;
  const start = at + block.size;
  const end = start + block.value;
  if (end > body.length) return undefined;
  const spans: PropertySpan[] = [];
  let p = start;
  while (p < end) {
    const id = body[p];
    const size = propertyValueSize(body, p + 1, end, id);
    if (size < 0) return undefined;
    spans.push({ start: p, end: p + 1 + size, id });
    p += 1 + size;
  }
  return { spans, lengthSize: block.size, length: block.value };
}

/**
 * Duplicates one property of a v5 packet that decodes, fixing the Property Length and the Remaining
 * Length. Every property but User Property (and Subscription Identifier in PUBLISH) may appear only
 * once, so the result must decode to 0x82, or to a packet for those two.
 *
 * @param bytes A whole v5 packet that decodes.
 * @param rng The random source.
 * @returns The mutant, or undefined if the packet has no properties.
 */
export function duplicateProperty(bytes: Uint8Array, rng: Rng): Mutant | undefined {
  const packet = splitPacket(bytes);
  if (packet === undefined) return undefined;
  const { header, body } = packet;
  const candidates: { at: number; spans: PropertySpan[]; lengthSize: number; length: number }[] = [];
  for (const at of propertyBlockOffsets(header, body)) {
    const block = propertySpans(body, at);
    if (block !== undefined && block.spans.length > 0) candidates.push({ at, ...block });
  }
  if (candidates.length === 0) return undefined;
  const block = rng.pick(candidates);
  const span = rng.pick(block.spans);
  const property = body.subarray(span.start, span.end);
  const length = varint(block.length + property.length);
  const newBody = concat(
    body.subarray(0, block.at),
    length,
    body.subarray(block.at + block.lengthSize, span.end),
    property,
    body.subarray(span.end),
  );
  const repeatable = span.id === 0x26 || (span.id === 0x0b && header >> 4 === 3);
  return {
    names: [`duplicate property 0x${span.id.toString(16)}`],
    bytes: framePacket(header, newBody),
    expectDecode: repeatable ? "packet" : 0x82,
  };
}

/**
 * Replaces the Property Length of a v5 packet with a huge value (the block is far larger than the
 * body): decoding must give 0x81 without allocating anything of that size.
 *
 * @param bytes A whole v5 packet.
 * @param rng The random source.
 * @returns The mutant, or undefined if the packet has no property block.
 */
export function hugePropertyLength(bytes: Uint8Array, rng: Rng): Mutant | undefined {
  const packet = splitPacket(bytes);
  if (packet === undefined) return undefined;
  const { header, body } = packet;
  const offsets = propertyBlockOffsets(header, body).filter((at) => readVarint(body, at) !== undefined);
  if (offsets.length === 0) return undefined;
  const at = rng.pick(offsets);
  const old = readVarint(body, at)!;
  const value = rng.pick([MAX_VARINT, 0x200000, 0x4000, 65_535, body.length + 1 - at]);
  const newBody = concat(body.subarray(0, at), varint(value), body.subarray(at + old.size));
  if (at + varint(value).length + value <= newBody.length) return undefined;
  return { names: [`huge property length ${value}`], bytes: framePacket(header, newBody) };
}

const INTERESTING = [0x00, 0x01, 0x02, 0x7f, 0x80, 0xff, 0xfe, 0x3f, 0x26, 0x0b, 0x23, 0xc0, 0xed];

/**
 * Applies one random byte-level mutation. Mutations that edit the body keep the Remaining Length
 * right (so the decoder, not the framer, sees them); the others break the framing on purpose.
 *
 * @param bytes The stream to mutate (not changed).
 * @param rng The random source.
 * @param pool Whole packets to splice in.
 * @returns The mutated bytes and the mutation's name.
 */
export function mutateOnce(
  bytes: Uint8Array,
  rng: Rng,
  pool: readonly Uint8Array[],
): { name: string; bytes: Uint8Array } {
  const split = splitPacket(bytes);
  const kind = rng.int(16);
  if (split !== undefined && kind < 8) {
    const { header, body } = split;
    const out = body.slice();
    switch (kind) {
      case 0: { // flip a bit of the body
        if (out.length === 0) break;
        const at = rng.int(out.length);
        out[at] ^= 1 << rng.int(8);
        return { name: "body bit flip", bytes: framePacket(header, out) };
      }
      case 1: { // set a body byte to an interesting value
        if (out.length === 0) break;
        out[rng.int(out.length)] = rng.pick(INTERESTING);
        return { name: "body byte", bytes: framePacket(header, out) };
      }
      case 2: // cut the body short, keeping the Remaining Length right
        return {
          name: "body truncation",
          bytes: framePacket(header, body.subarray(0, rng.int(body.length + 1))),
        };
      case 3: { // a two-byte length field: 0xffff, or one more or less
        if (out.length < 2) break;
        const at = rng.int(out.length - 1);
        const old = (out[at] << 8) | out[at + 1];
        const value = rng.pick([0xffff, 0x8000, old + 1, old - 1, 0]) & 0xffff;
        out[at] = value >> 8;
        out[at + 1] = value & 0xff;
        return { name: "u16 length corruption", bytes: framePacket(header, out) };
      }
      case 4: { // insert random bytes
        const at = rng.int(body.length + 1);
        const extra = rng.bytes(rng.range(1, 8));
        return {
          name: "body insertion",
          bytes: framePacket(header, concat(body.subarray(0, at), extra, body.subarray(at))),
        };
      }
      case 5: { // delete a range
        if (body.length === 0) break;
        const at = rng.int(body.length);
        const n = rng.range(1, Math.min(8, body.length - at));
        return {
          name: "body deletion",
          bytes: framePacket(header, concat(body.subarray(0, at), body.subarray(at + n))),
        };
      }
      case 6: { // duplicate a range
        if (body.length === 0) break;
        const at = rng.int(body.length);
        const n = rng.range(1, Math.min(16, body.length - at));
        return {
          name: "body range duplication",
          bytes: framePacket(
            header,
            concat(body.subarray(0, at + n), body.subarray(at, at + n), body.subarray(at + n)),
          ),
        };
      }
      case 7: { // change the flags or the type
        const newHeader = rng.chance(0.5)
          ? (header & 0xf0) | rng.int(16)
          : (rng.int(16) << 4) | (header & 0x0f);
        return { name: "fixed header", bytes: framePacket(newHeader, body) };
      }
    }
  }
  switch (kind) {
    case 8: { // flip any bit, including the fixed header
      if (bytes.length === 0) break;
      const out = bytes.slice();
      out[rng.int(out.length)] ^= 1 << rng.int(8);
      return { name: "bit flip", bytes: out };
    }
    case 9: // cut the stream short
      return { name: "stream truncation", bytes: bytes.slice(0, rng.int(bytes.length + 1)) };
    case 10: { // a wrong Remaining Length
      if (split === undefined) break;
      const value = rng.pick([
        split.body.length + 1,
        Math.max(0, split.body.length - 1),
        rng.int(split.body.length + 1),
        rng.int(256),
      ]);
      return { name: "remaining length off", bytes: concat([split.header], varint(value), split.body) };
    }
    case 11: { // a huge Remaining Length over a small body
      if (bytes.length === 0) break;
      const value = rng.pick([MAX_VARINT, 0x200000, 0x4000, 1_000_000, rng.int(MAX_VARINT)]);
      const body = split?.body ?? bytes.subarray(1);
      return { name: `huge remaining length ${value}`, bytes: concat([bytes[0]], varint(value), body) };
    }
    case 12: { // a Remaining Length of five or more bytes
      if (bytes.length === 0) break;
      const body = split?.body ?? bytes.subarray(1);
      const n = rng.range(4, 6);
      const length = new Array(n).fill(0xff);
      length[n - 1] = rng.pick([0x00, 0x01, 0x7f]);
      return { name: "remaining length too long", bytes: concat([bytes[0]], length, body) };
    }
    case 13: // another packet after this one
      return { name: "append packet", bytes: concat(bytes, rng.pick(pool)) };
    case 14: { // random bytes after this one
      return { name: "append random", bytes: concat(bytes, rng.bytes(rng.range(1, 12))) };
    }
  }
  // Fallback (kind 15, or a mutation that did not apply): overwrite a byte anywhere.
  const out = bytes.length > 0 ? bytes.slice() : new Uint8Array(1);
  out[rng.int(out.length)] = rng.pick(INTERESTING);
  return { name: "byte", bytes: out };
}

/**
 * Mutates a golden packet with one to three random mutations, or with one of the structured ones
 * (property duplication, huge property length).
 *
 * @param bytes The golden packet.
 * @param version Its protocol level.
 * @param rng The random source.
 * @param pool Whole packets to splice in.
 * @returns The mutant.
 */
export function mutate(
  bytes: Uint8Array,
  version: number,
  rng: Rng,
  pool: readonly Uint8Array[],
): Mutant {
  if (version === 5) {
    const roll = rng.int(10);
    if (roll === 0) {
      const mutant = duplicateProperty(bytes, rng);
      if (mutant !== undefined) return mutant;
    } else if (roll === 1) {
      const mutant = hugePropertyLength(bytes, rng);
      if (mutant !== undefined) return mutant;
    }
  }
  const names: string[] = [];
  let out = bytes;
  const rounds = rng.chance(0.6) ? 1 : rng.range(2, 3);
  for (let i = 0; i < rounds; i++) {
    const step = mutateOnce(out, rng, pool);
    names.push(step.name);
    out = step.bytes;
  }
  return { names, bytes: out };
}

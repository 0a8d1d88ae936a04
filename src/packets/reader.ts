/**
 * Decoding helpers over a packet body. Nothing here throws: reads past the end return -1 (numbers),
 * `undefined` (bytes) or a reason code (strings).
 *
 * @module
 */

import { ReasonCode } from "./reason_codes.ts";

// fatal: ill-formed UTF-8 and UTF-8-encoded surrogates throw [MQTT-1.5.4-1];
// ignoreBOM: a leading U+FEFF is part of the string and must be kept [MQTT-1.5.4-3].
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** ASCII strings up to this many bytes are built by hand; longer ones go through TextDecoder. */
const SHORT_STRING = 24;

const EMPTY = new Uint8Array(0);

/**
 * Decodes a UTF-8 Encoded String's bytes, enforcing MQTT's rules: well-formed UTF-8 without
 * surrogates [MQTT-1.5.4-1] and without U+0000 [MQTT-1.5.4-2]; a BOM is kept [MQTT-1.5.4-3].
 *
 * @param buffer The bytes.
 * @param start The first byte of the string.
 * @param end The position after the last byte.
 * @returns The string, or 0x81 (Malformed Packet) if the bytes break a rule.
 *
 * @example Rejecting an encoded surrogate
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeUtf8 } from "./reader.ts";
 *
 * assert.equal(decodeUtf8(new Uint8Array([0x61, 0x62]), 0, 2), "ab");
 * assert.equal(decodeUtf8(new Uint8Array([0xed, 0xa0, 0x80]), 0, 3), 0x81); // Malformed Packet: a surrogate
 * ```
 */
export function decodeUtf8(buffer: Uint8Array, start: number, end: number): string | number {
  const n = end - start;
  if (n <= SHORT_STRING) {
    let text = "";
    for (let i = start; i < end; i++) {
      const c = buffer[i];
      if (c === 0) return ReasonCode.MalformedPacket; // [MQTT-1.5.4-2]
      if (c >= 0x80) return decodeNonAscii(buffer, i, start, end);
      text += String.fromCharCode(c);
    }
    return text;
  }
  for (let i = start; i < end; i++) {
    const c = buffer[i];
    if (c === 0) return ReasonCode.MalformedPacket; // [MQTT-1.5.4-2]
    if (c >= 0x80) return decodeNonAscii(buffer, i, start, end);
  }
  return decoder.decode(buffer.subarray(start, end));
}

/** The slow path: `from` is the first non-ASCII byte; bytes before it are known to be non-zero. */
function decodeNonAscii(buffer: Uint8Array, from: number, start: number, end: number): string | number {
  // In well-formed UTF-8 a zero byte can only be U+0000 itself (overlong forms are ill-formed).
  for (let i = from; i < end; i++) {
    if (buffer[i] === 0) return ReasonCode.MalformedPacket; // [MQTT-1.5.4-2]
  }
  try {
    return decoder.decode(buffer.subarray(start, end));
  } catch {
    return ReasonCode.MalformedPacket; // [MQTT-1.5.4-1]
  }
}

/**
 * A cursor over a packet body. Reads check bounds against `end` and never throw.
 *
 * @example Reading a packet identifier
 * ```ts
 * import assert from "node:assert/strict";
 * import { ByteReader } from "./reader.ts";
 *
 * const reader = new ByteReader().reset(new Uint8Array([0x00, 0x0a]));
 * assert.equal(reader.u16(), 10);
 * assert.equal(reader.u16(), -1); // past the end
 * ```
 */
export class ByteReader {
  /** The bytes being read. */
  buffer: Uint8Array = EMPTY;
  /** The next position to read. */
  position: number = 0;
  /** The position after the last readable byte. */
  end: number = 0;

  /**
   * Points the reader at a buffer.
   *
   * @param buffer The bytes to read.
   * @param position Where to start.
   * @param end Where to stop (exclusive).
   * @returns This reader.
   */
  reset(buffer: Uint8Array, position: number = 0, end: number = buffer.length): this {
    this.buffer = buffer;
    this.position = position;
    this.end = end;
    return this;
  }

  /**
   * The number of unread bytes.
   *
   * @returns `end - position`.
   */
  remaining(): number {
    return this.end - this.position;
  }

  /**
   * Reads one byte.
   *
   * @returns 0..255, or -1 at the end.
   */
  u8(): number {
    if (this.position >= this.end) return -1;
    return this.buffer[this.position++];
  }

  /**
   * Reads a big-endian two-byte integer.
   *
   * @returns 0..65535, or -1 if fewer than two bytes remain.
   */
  u16(): number {
    const p = this.position;
    if (p + 2 > this.end) return -1;
    this.position = p + 2;
    return (this.buffer[p] << 8) | this.buffer[p + 1];
  }

  /**
   * Reads a big-endian four-byte integer.
   *
   * @returns 0..4294967295, or -1 if fewer than four bytes remain.
   */
  u32(): number {
    const p = this.position;
    if (p + 4 > this.end) return -1;
    this.position = p + 4;
    const b = this.buffer;
    // The multiplication keeps the top byte from turning the result negative.
    return b[p] * 0x1000000 + ((b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]);
  }

  /**
   * Reads a Variable Byte Integer of at most four bytes.
   *
   * @returns 0..268435455, or -1 if it is truncated or longer than four bytes.
   */
  varint(): number {
    let value = 0;
    let multiplier = 1;
    for (let i = 0; i < 4; i++) {
      if (this.position >= this.end) return -1;
      const byte = this.buffer[this.position++];
      value += (byte & 0x7f) * multiplier;
      if (byte < 0x80) return value;
      multiplier *= 128;
    }
    return -1;
  }

  /**
   * Reads a UTF-8 Encoded String (two-byte length, then the bytes).
   *
   * @returns The string, or 0x81 (Malformed Packet) if it is truncated or not valid MQTT UTF-8.
   */
  utf8(): string | number {
    const length = this.u16();
    if (length < 0) return ReasonCode.MalformedPacket;
    const start = this.position;
    if (start + length > this.end) return ReasonCode.MalformedPacket;
    this.position = start + length;
    return decodeUtf8(this.buffer, start, start + length);
  }

  /**
   * Reads Binary Data (two-byte length, then the bytes) as a view of the buffer.
   *
   * @returns A view (not a copy), or `undefined` if it is truncated.
   */
  binary(): Uint8Array | undefined {
    const length = this.u16();
    if (length < 0) return undefined;
    const start = this.position;
    if (start + length > this.end) return undefined;
    this.position = start + length;
    return this.buffer.subarray(start, start + length);
  }

  /**
   * Reads Binary Data (two-byte length, then the bytes) into a new array, for values that outlive
   * the read buffer.
   *
   * @returns A copy, or `undefined` if it is truncated.
   */
  binaryCopy(): Uint8Array | undefined {
    const length = this.u16();
    if (length < 0) return undefined;
    const start = this.position;
    if (start + length > this.end) return undefined;
    this.position = start + length;
    return this.buffer.slice(start, start + length);
  }
}

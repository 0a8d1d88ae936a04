/**
 * A growable output buffer that packets are encoded straight into.
 *
 * @module
 */

/** The largest value a Variable Byte Integer can hold (four bytes). */
export const MAX_VARINT = 268_435_455;

/** The largest length a two-byte length prefix can describe. */
export const MAX_TWO_BYTE_LENGTH = 65_535;

const encoder = new TextEncoder();

/** Strings at most this long are tried byte by byte before falling back to `encodeInto`. */
const SHORT_STRING = 64;
/** The buffer of a writer created with no capacity (shared: nothing is ever written into it). */
const NO_CAPACITY = new Uint8Array(0);
/** The least a writer grows to from no capacity. */
const FIRST_GROWTH = 256;

/**
 * The number of bytes the Variable Byte Integer encoding of a value takes.
 *
 * @param value A value in 0..268435455.
 * @returns 1 to 4.
 *
 * @example Sizing a remaining length
 * ```ts
 * import assert from "node:assert/strict";
 * import { varintSize } from "./writer.ts";
 *
 * assert.equal(varintSize(127), 1);
 * assert.equal(varintSize(128), 2);
 * ```
 */
export function varintSize(value: number): number {
  return value < 0x80 ? 1 : value < 0x4000 ? 2 : value < 0x200000 ? 3 : 4;
}

/**
 * Writes the Variable Byte Integer encoding of a value at a position of a buffer that is known to be
 * large enough.
 *
 * @param buffer The destination.
 * @param position Where the first byte goes.
 * @param value A value in 0..268435455.
 * @returns The position after the last byte written.
 */
export function writeVarintAt(buffer: Uint8Array, position: number, value: number): number {
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    buffer[position++] = byte;
  } while (value > 0);
  return position;
}

/**
 * A growable byte buffer. `length` is the number of bytes written; setting it rewinds (for example to
 * drop a packet that turned out to be too large for the peer). Growth doubles the capacity and keeps
 * what was written.
 *
 * @example Writing a string and reading the bytes back
 * ```ts
 * import assert from "node:assert/strict";
 * import { ByteWriter } from "./writer.ts";
 *
 * const out = new ByteWriter(16);
 * out.utf8("a/b");
 * assert.deepEqual(out.toBytes(), new Uint8Array([0, 3, 97, 47, 98])); // length prefix, then the bytes
 * ```
 */
export class ByteWriter {
  /** The backing store; bytes `0..length` are the output. Replaced (not resized) on growth. */
  buffer: Uint8Array;
  /** The number of bytes written. */
  length: number = 0;

  /**
   * Creates an empty writer.
   *
   * @param initialSize The initial capacity in bytes; 0 allocates nothing until the first write.
   */
  constructor(initialSize: number = 4096) {
    this.buffer = initialSize > 0 ? new Uint8Array(Math.max(16, initialSize)) : NO_CAPACITY;
  }

  /**
   * Makes room for `n` more bytes after `length`, growing the buffer when needed.
   *
   * @param n The number of bytes about to be written.
   */
  ensure(n: number): void {
    const needed = this.length + n;
    if (needed <= this.buffer.length) return;
    let size = Math.max(this.buffer.length * 2, FIRST_GROWTH);
    while (size < needed) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buffer.subarray(0, this.length));
    this.buffer = next;
  }

  /**
   * Appends one byte.
   *
   * @param value 0..255.
   */
  u8(value: number): void {
    this.ensure(1);
    this.buffer[this.length++] = value;
  }

  /**
   * Appends a big-endian two-byte integer.
   *
   * @param value 0..65535.
   */
  u16(value: number): void {
    this.ensure(2);
    const buffer = this.buffer;
    buffer[this.length++] = value >>> 8;
    buffer[this.length++] = value & 0xff;
  }

  /**
   * Appends a big-endian four-byte integer.
   *
   * @param value 0..4294967295.
   */
  u32(value: number): void {
    this.ensure(4);
    // Byte by byte: a DataView per writer would cost every connection memory for a rare field.
    const buffer = this.buffer;
    buffer[this.length++] = value >>> 24;
    buffer[this.length++] = (value >>> 16) & 0xff;
    buffer[this.length++] = (value >>> 8) & 0xff;
    buffer[this.length++] = value & 0xff;
  }

  /**
   * Appends a Variable Byte Integer.
   *
   * @param value 0..268435455.
   * @throws {RangeError} If the value cannot be encoded in four bytes.
   */
  varint(value: number): void {
    if (!(value >= 0 && value <= MAX_VARINT)) {
      throw new RangeError(`Variable byte integer out of range: ${value}`);
    }
    this.ensure(4);
    this.length = writeVarintAt(this.buffer, this.length, value);
  }

  /**
   * Appends raw bytes, without a length prefix.
   *
   * @param bytes The bytes to copy.
   */
  bytes(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
  }

  /**
   * Appends Binary Data: a two-byte length and the bytes.
   *
   * @param bytes At most 65535 bytes.
   * @throws {RangeError} If there are more than 65535 bytes.
   */
  binary(bytes: Uint8Array): void {
    if (bytes.length > MAX_TWO_BYTE_LENGTH) {
      throw new RangeError(`Binary data too long: ${bytes.length} bytes`);
    }
    this.u16(bytes.length);
    this.bytes(bytes);
  }

  /**
   * Appends a UTF-8 Encoded String: a two-byte length and the UTF-8 bytes, encoded in place.
   *
   * @param text A string of at most 65535 UTF-8 bytes.
   * @throws {RangeError} If the encoding is longer than 65535 bytes.
   */
  utf8(text: string): void {
    const n = text.length;
    const start = this.length;
    if (n <= SHORT_STRING) {
      // Most topics and ids are short ASCII: copying code units beats setting up encodeInto.
      this.ensure(2 + n);
      const buffer = this.buffer;
      let i = 0;
      for (; i < n; i++) {
        const c = text.charCodeAt(i);
        if (c >= 0x80) break;
        buffer[start + 2 + i] = c;
      }
      if (i === n) {
        buffer[start] = n >>> 8;
        buffer[start + 1] = n & 0xff;
        this.length = start + 2 + n;
        return;
      }
    }
    this.ensure(2 + n * 3);
    const { written } = encoder.encodeInto(text, this.buffer.subarray(start + 2));
    if (written > MAX_TWO_BYTE_LENGTH) {
      throw new RangeError(`UTF-8 string too long: ${written} bytes`);
    }
    this.buffer[start] = written >>> 8;
    this.buffer[start + 1] = written & 0xff;
    this.length = start + 2 + written;
  }

  /**
   * The bytes written so far, as a view (not a copy) of the buffer.
   *
   * @returns `buffer.subarray(0, length)`; later writes may overwrite it, and after growth it still
   * shows the old buffer.
   */
  toBytes(): Uint8Array {
    return this.buffer.subarray(0, this.length);
  }

  /** Forgets what was written, keeping the capacity. */
  reset(): void {
    this.length = 0;
  }

  /** Forgets what was written and drops the buffer (the next write allocates a new one). */
  release(): void {
    this.length = 0;
    this.buffer = NO_CAPACITY;
  }
}

/**
 * Splits a byte stream into MQTT packets, whatever the chunking.
 *
 * @module
 */

import { ReasonCode } from "./reason_codes.ts";

/** {@linkcode PacketFramer.next} result: more bytes are needed. */
export const FRAME_NEED_MORE = 0;
/** {@linkcode PacketFramer.next} result: `header` and `body` describe a packet. */
export const FRAME_READY = 1;

/** The largest packet the protocol can express: 1 + 4 + 268435455 bytes. */
export const PROTOCOL_MAXIMUM_PACKET_SIZE = 268_435_460;

const EMPTY = new Uint8Array(0);
/** The smallest pending buffer worth allocating. */
const MIN_PENDING = 256;
/** A spare pending buffer above this size is dropped rather than reused for a small tail. */
const SHRINK_ABOVE = 65_536;

/**
 * A streaming packet framer. Push chunks as they arrive and call {@linkcode PacketFramer.next} until
 * it returns {@linkcode FRAME_NEED_MORE}:
 *
 * - Complete packets inside a pushed chunk are returned as views of that chunk (no copy). Only the
 *   trailing part of a packet that a chunk does not complete is copied, into an internal buffer that
 *   grows with the bytes that arrive and never beyond the packet being assembled.
 * - A `body` returned by `next()` is valid until the next `push()`: a body assembled from several
 *   chunks lives in an internal buffer that the framer reuses after the next push, and a body inside a
 *   chunk lives as long as the caller leaves that chunk alone. Once `next()` has returned
 *   `FRAME_NEED_MORE`, the framer holds no reference into the pushed chunks, so the caller may reuse
 *   its read buffer.
 * - A framing error (a Remaining Length longer than four bytes: 0x81; a packet larger than
 *   `maximumPacketSize`: 0x95, reported as soon as the length is known) is sticky: every later
 *   `next()` returns it until {@linkcode PacketFramer.reset}.
 *
 * @example Framing two packets split across chunks
 * ```ts
 * import assert from "node:assert/strict";
 * import { FRAME_READY, PacketFramer } from "./framer.ts";
 *
 * const framer = new PacketFramer();
 * framer.push(new Uint8Array([0xc0, 0x00, 0x40])); // a PINGREQ and the first byte of a PUBACK
 * framer.push(new Uint8Array([0x02, 0x00, 0x01])); // the rest of the PUBACK
 * const frames: [number, number[]][] = [];
 * while (framer.next() === FRAME_READY) frames.push([framer.header, [...framer.body]]);
 * assert.deepEqual(frames, [[0xc0, []], [0x40, [0, 1]]]);
 * ```
 */
export class PacketFramer {
  /** The largest packet accepted, counting the fixed header; 0 means the protocol maximum. */
  maximumPacketSize: number;
  /** After `FRAME_READY`: the first byte of the fixed header. */
  header: number = 0;
  /** After `FRAME_READY`: the bytes after the Remaining Length. */
  body: Uint8Array = EMPTY;

  /** The bytes being framed: a pushed chunk, a joined copy, or one of the pending buffers. */
  #source: Uint8Array = EMPTY;
  #position = 0;
  #end = 0;
  /** The rest of a pushed chunk, framed after the packet that was completed from it. */
  #queued: Uint8Array = EMPTY;
  #queuedPosition = 0;
  /**
   * Two pending buffers: `push()` completes a packet in one (and may return a view of it) while
   * `next()` copies the next partial packet into the other, so neither clobbers a live view.
   */
  #pending: [Uint8Array, Uint8Array] = [EMPTY, EMPTY];
  #assembling = 0;
  #error = 0;
  #headerLength = 0;

  /**
   * Creates a framer.
   *
   * @param maximumPacketSize The largest packet accepted in bytes, 0 for the protocol maximum.
   */
  constructor(maximumPacketSize: number = 0) {
    this.maximumPacketSize = maximumPacketSize;
  }

  /**
   * The number of bytes received but not yet returned as packets.
   *
   * @returns The count.
   */
  get bufferedBytes(): number {
    return this.#end - this.#position + this.#queued.length - this.#queuedPosition;
  }

  /**
   * Adds bytes from the stream. Invalidates every `body` returned so far.
   *
   * @param chunk The next bytes; not copied unless they end in an incomplete packet.
   */
  push(chunk: Uint8Array): void {
    if (this.#error !== 0 || chunk.length === 0) return;
    const left = this.#end - this.#position;
    const queuedLeft = this.#queued.length - this.#queuedPosition;
    if (left === 0 && queuedLeft === 0) {
      this.#source = chunk;
      this.#position = 0;
      this.#end = chunk.length;
      return;
    }
    if ((this.#source !== this.#pending[0] && this.#source !== this.#pending[1]) || queuedLeft > 0) {
      // Pushed again before next() returned FRAME_NEED_MORE: join what is left with the chunk (rare).
      const joined = new Uint8Array(left + queuedLeft + chunk.length);
      joined.set(this.#source.subarray(this.#position, this.#end));
      joined.set(this.#queued.subarray(this.#queuedPosition), left);
      joined.set(chunk, left + queuedLeft);
      this.#setSource(joined, 0, joined.length);
      this.#queued = EMPTY;
      this.#queuedPosition = 0;
      return;
    }
    // The usual case: one packet (the partial one next() carried over) waits in a pending buffer.
    // Complete it from the chunk and queue the rest of the chunk, to be framed in place.
    const index = this.#source === this.#pending[0] ? 0 : 1;
    this.#assembling = index;
    let buffer = this.#pending[index];
    if (this.#position > 0) buffer.copyWithin(0, this.#position, this.#end);
    let length = left;
    let used = 0;
    let total = this.#frameLength(buffer, 0, length);
    while (total === 0 && used < chunk.length) {
      buffer = this.#grow(index, length, length + 1, 5);
      buffer[length++] = chunk[used++];
      total = this.#frameLength(buffer, 0, length);
    }
    // A bad or oversized header is left for next() to report, before any of the body is copied.
    if (total > 0 && total <= this.#limit()) {
      const take = Math.min(total - length, chunk.length - used);
      buffer = this.#grow(index, length, length + take, total);
      buffer.set(chunk.subarray(used, used + take), length);
      length += take;
      used += take;
    }
    this.#setSource(buffer, 0, length);
    this.#queued = used < chunk.length ? chunk : EMPTY;
    this.#queuedPosition = used < chunk.length ? used : 0;
  }

  /**
   * Frames the next packet.
   *
   * @returns {@linkcode FRAME_READY} with `header` and `body` set, {@linkcode FRAME_NEED_MORE}, or
   * a reason code (0x81 Malformed Packet, 0x95 Packet Too Large) once the stream is broken.
   */
  next(): number {
    if (this.#error !== 0) return this.#error;
    if (this.#position === this.#end) {
      if (this.#queuedPosition >= this.#queued.length) {
        this.#setSource(EMPTY, 0, 0);
        return FRAME_NEED_MORE;
      }
      this.#setSource(this.#queued, this.#queuedPosition, this.#queued.length);
      this.#queued = EMPTY;
      this.#queuedPosition = 0;
    }
    const source = this.#source;
    const position = this.#position;
    const total = this.#frameLength(source, position, this.#end);
    if (total < 0) return this.#error = -total;
    if (total > this.#limit()) return this.#error = ReasonCode.PacketTooLarge;
    if (total === 0 || this.#end - position < total) {
      this.#carry(total);
      return FRAME_NEED_MORE;
    }
    this.header = source[position];
    this.body = source.subarray(position + this.#headerLength, position + total);
    this.#position = position + total;
    return FRAME_READY;
  }

  /** Forgets all buffered bytes and any framing error, for a new connection. */
  reset(): void {
    this.#setSource(EMPTY, 0, 0);
    this.#queued = EMPTY;
    this.#queuedPosition = 0;
    this.#pending = [EMPTY, EMPTY];
    this.#error = 0;
    this.header = 0;
    this.body = EMPTY;
  }

  #limit(): number {
    const maximum = this.maximumPacketSize;
    return maximum > 0 ? maximum : PROTOCOL_MAXIMUM_PACKET_SIZE;
  }

  #setSource(source: Uint8Array, position: number, end: number): void {
    this.#source = source;
    this.#position = position;
    this.#end = end;
  }

  /**
   * The total size of the packet starting at `position` (setting the header length), 0 if the
   * Remaining Length is not complete yet, or minus 0x81 if it runs past four bytes (spec 1.5.5).
   */
  #frameLength(buffer: Uint8Array, position: number, end: number): number {
    let value = 0;
    let multiplier = 1;
    for (let i = 1; i <= 4; i++) {
      if (position + i >= end) return 0;
      const byte = buffer[position + i];
      value += (byte & 0x7f) * multiplier;
      if (byte < 0x80) {
        this.#headerLength = i + 1;
        return i + 1 + value;
      }
      multiplier *= 128;
    }
    return -ReasonCode.MalformedPacket;
  }

  /** Moves the partial packet left in a pushed chunk into the spare pending buffer. */
  #carry(total: number): void {
    const source = this.#source;
    if (source === this.#pending[0] || source === this.#pending[1]) return;
    const left = this.#end - this.#position;
    const spare = 1 - this.#assembling;
    if (this.#pending[spare].length > SHRINK_ABOVE && left * 4 < this.#pending[spare].length) {
      this.#pending[spare] = EMPTY;
    }
    const buffer = this.#grow(spare, 0, left, total > 0 ? total : left);
    buffer.set(source.subarray(this.#position, this.#end));
    this.#setSource(buffer, 0, left);
  }

  /**
   * Makes pending buffer `index` hold at least `needed` bytes, keeping its first `keep` bytes. It
   * doubles, but never beyond `limit` (the size of the packet being assembled) unless `needed` is more.
   */
  #grow(index: number, keep: number, needed: number, limit: number): Uint8Array {
    const current = this.#pending[index];
    if (current.length >= needed) return current;
    const size = Math.max(needed, Math.min(limit, Math.max(MIN_PENDING, current.length * 2)));
    const next = new Uint8Array(size);
    if (keep > 0) next.set(current.subarray(0, keep));
    this.#pending[index] = next;
    return next;
  }
}

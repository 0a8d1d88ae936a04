/**
 * The bytes that carry messages between nodes and hold retained messages in the engine.
 *
 * One record per message:
 *
 * | bytes | field |
 * | --- | --- |
 * | 1 | flags: bit 0 = deliver to non-shared subscriptions; bit 2 = the message id follows |
 * | 1 | number of shared groups, then each as a two-byte length and UTF-8 |
 * | 8 + 8 | `created`, `expiry` (float64, ms since epoch) |
 * | 8 + 8 | if flags bit 2: the message's id, its origin process's random epoch and that process's forward sequence number (float64 each) |
 * | 2 + n | the publisher's client id (`origin`) |
 * | 4 + n | the message as an MQTT v5 PUBLISH packet (fixed header included) |
 *
 * A control record (flags bit 1: session release and handoff between nodes, route barriers and their
 * answers) is the flags byte, a
 * four-byte length and JSON (binary fields as `{"$b64": ...}`).
 *
 * A forwarded batch (one stream entry per destination node per turn) is records one after another.
 * Every forwarded message has an id unique cluster-wide (with the stream entry's sender node): every
 * destination node gets the same id for it, and one process's ids increase in the order it forwards, so
 * that in one node's inbox the ids from one origin only increase. A receiver delivers an id once: a
 * batch written twice (a Redis write whose reply was lost, retried) repeats ids it already passed, and
 * the copies that meet at a dead node's claimer (its own, and the dead node's inbox) share their id.
 * Retained records carry no id.
 * The PUBLISH is the codec's own v5 encoding: properties, payload and flags round-trip exactly,
 * and it is encoded once per message whatever the number of destination nodes.
 *
 * @module
 */

import { type Packet, PacketType, type QoS } from "../../src/packets/types.ts";
import { ByteWriter } from "../../src/packets/writer.ts";
import { encodePacket } from "../../src/packets/codec.ts";
import { ByteReader, decodeUtf8 } from "../../src/packets/reader.ts";
import { propertyTargetBit, readProperties } from "../../src/packets/properties.ts";
import { stripRoutingProperties } from "../../src/outbound.ts";

/** A message read from a record, with whom it is for on the receiving node. */
export interface WireMessage {
  /** The message (`origin`, `created`, `expiry` set; the payload is a view into the record). */
  packet: Packet;
  /** For the receiver's non-shared subscriptions. */
  plain: boolean;
  /** Shared groups (`"{group}/{topicFilter}"`) whose member is to be picked on the receiver. */
  groups: string[];
  /** The origin process's epoch (0 when the record has no id: a retained record). */
  epoch: number;
  /** The message's sequence number in its origin process (0 when the record has no id). */
  seq: number;
}

/** A forwarded message's id: its origin process's random epoch and sequence number. */
export interface MessageId {
  /** The origin process's epoch (random, nonzero, fixed for the process's life). */
  epoch: number;
  /** The message's number in that process (increasing from 1). */
  seq: number;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** A control record read from a batch. */
export interface WireControl {
  /** The control message. */
  control: Record<string, unknown>;
}
/** Big-endian float64s are written through this (one at a time). */
const scratch = new DataView(new ArrayBuffer(8));
/** Where {@linkcode encodeMessage} encodes (one message at a time: no allocation per message). */
const messageScratch = new ByteWriter(4096);
/** The PUBLISH that {@linkcode encodeInto} encodes, reused for every message (no allocation per message). */
const forward: Packet = {
  fixedHeader: { type: PacketType.Publish, qos: 0, retain: false },
  topicName: "",
  payload: undefined,
  properties: undefined,
  packetId: undefined,
};
/** The groups of a record for non-shared subscriptions only (one frozen array, never written to). */
export const NO_GROUPS: readonly string[] = Object.freeze([]);

/**
 * Encodes a message's PUBLISH once (v5 form, without topic alias or subscription identifiers), to be
 * framed by {@linkcode writeRecord} for any number of destinations.
 *
 * @param packet The message.
 * @returns The PUBLISH bytes: a view of a shared buffer, valid until the next call (copy it to keep it).
 */
export function encodeMessage(packet: Packet): Uint8Array {
  const out = messageScratch;
  out.reset();
  encodeInto(packet, out);
  return out.toBytes();
}

/** Appends the message's PUBLISH (v5, packet id 1 when QoS > 0) to `out`. */
function encodeInto(packet: Packet, out: ByteWriter): void {
  const qos = packet.fixedHeader.qos ?? 0;
  const header = forward.fixedHeader;
  header.qos = qos;
  header.retain = packet.fixedHeader.retain ?? false;
  forward.topicName = packet.topicName;
  forward.payload = packet.payload;
  forward.properties = stripRoutingProperties(packet.properties);
  forward.packetId = qos > 0 ? 1 : undefined;
  try {
    encodePacket(forward, 5, out);
  } finally {
    forward.payload = forward.properties = undefined; // nothing kept alive between messages
  }
}

/**
 * Appends one record to `out`.
 *
 * @param out Where to write.
 * @param packet The message (for `created`, `expiry`, `origin`).
 * @param encoded Its PUBLISH bytes from {@linkcode encodeMessage}; undefined to encode it straight
 *   into `out` (one copy less for a message that goes to one node).
 * @param plain For the receiver's non-shared subscriptions.
 * @param groups Shared groups picked on the receiver.
 * @param id The message's id (the same for every destination); none for a retained record.
 * @returns Where the PUBLISH bytes start in `out.buffer` (they end at `out.length`).
 */
export function writeRecord(
  out: ByteWriter,
  packet: Packet,
  encoded: Uint8Array | undefined,
  plain: boolean,
  groups: readonly string[],
  id?: MessageId,
): number {
  out.ensure(18);
  out.buffer[out.length++] = (plain ? 1 : 0) | (id ? 4 : 0);
  out.buffer[out.length++] = groups.length;
  for (let i = 0; i < groups.length; i++) out.utf8(groups[i]);
  writeFloats(out, packet.created ?? Date.now(), packet.expiry ?? 0);
  if (id) writeFloats(out, id.epoch, id.seq);
  out.utf8(packet.origin ?? "");
  out.ensure(4);
  const lengthAt = out.length;
  out.length += 4;
  const start = out.length;
  if (encoded === undefined) encodeInto(packet, out);
  else out.bytes(encoded);
  const length = out.length - start;
  const buffer = out.buffer;
  buffer[lengthAt] = length >>> 24;
  buffer[lengthAt + 1] = (length >>> 16) & 0xff;
  buffer[lengthAt + 2] = (length >>> 8) & 0xff;
  buffer[lengthAt + 3] = length & 0xff;
  return start;
}

/**
 * Reads every record of a batch.
 *
 * @param bytes The batch (records one after another); payloads are views into it.
 * @returns The messages, in order.
 * @throws {RangeError} When the bytes are not records written by {@linkcode writeRecord}.
 */
export function readRecords(bytes: Uint8Array): (WireMessage | WireControl)[] {
  const reader = new RecordReader(bytes);
  const messages: (WireMessage | WireControl)[] = [];
  for (let message = reader.next(); message !== undefined; message = reader.next()) messages.push(message);
  return messages;
}

/**
 * Reads a batch's records one at a time: nothing is decoded ahead of its delivery, so a message that
 * waits for nothing dies young (a whole entry decoded at once outlives the waits for a congested
 * subscriber, and is promoted).
 *
 * @example Two records, one at a time
 * ```ts
 * import assert from "node:assert/strict";
 * import { ByteWriter } from "../../src/packets/writer.ts";
 * import { PacketType } from "../../src/packets/types.ts";
 * import { NO_GROUPS, RecordReader, type WireMessage, writeRecord } from "./wire.ts";
 * const out = new ByteWriter(256);
 * for (const topicName of ["a", "b"]) {
 *   const packet = { fixedHeader: { type: PacketType.Publish, qos: 0 as const }, topicName, created: 1 };
 *   writeRecord(out, packet, undefined, true, NO_GROUPS, { epoch: 7, seq: 1 });
 * }
 * const reader = new RecordReader(out.toBytes());
 * assert.equal((reader.next() as WireMessage).packet.topicName, "a");
 * assert.equal((reader.next() as WireMessage).packet.topicName, "b");
 * assert.equal(reader.next(), undefined);
 * ```
 */
export class RecordReader {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  #at = 0;

  /**
   * Starts reading a batch.
   *
   * @param bytes The batch (records one after another); payloads are views into it.
   */
  constructor(bytes: Uint8Array) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /**
   * The next record.
   *
   * @returns The record, or undefined after the last one.
   * @throws {RangeError} When the bytes are not records written by {@linkcode writeRecord} (the records
   *   before were read).
   */
  next(): WireMessage | WireControl | undefined {
    const bytes = this.#bytes;
    const view = this.#view;
    const end = bytes.length;
    let at = this.#at;
    if (at >= end) return undefined;
    this.#at = end; // a record that throws ends the batch
    const flags = bytes[at++];
    if ((flags & 2) !== 0) {
      const length = view.getUint32(at);
      at += 4;
      const control = JSON.parse(decoder.decode(bytes.subarray(at, at + length)), reviver);
      this.#at = at + length;
      return { control };
    }
    const plain = (flags & 1) === 1;
    let groups = NO_GROUPS as string[];
    const count = bytes[at++];
    if (count > 0) {
      groups = [];
      for (let n = count; n > 0; n--) {
        groups.push(text(bytes, at, view.getUint16(at)));
        at += 2 + view.getUint16(at);
      }
    }
    const created = view.getFloat64(at);
    const expiry = view.getFloat64(at + 8);
    at += 16;
    let epoch = 0;
    let seq = 0;
    if ((flags & 4) !== 0) {
      epoch = view.getFloat64(at);
      seq = view.getFloat64(at + 8);
      at += 16;
    }
    const originLength = view.getUint16(at);
    const origin = recentText(bytes, at, originLength);
    at += 2 + originLength;
    const length = view.getUint32(at);
    at += 4;
    if (at + length > end) throw new RangeError("Bad forwarded message (truncated)");
    const packet = decodeMessage(bytes, at, at + length, created, expiry, origin);
    this.#at = at + length;
    return { packet, plain, groups, epoch, seq };
  }
}

/**
 * Recently read topics and client ids by a hash of their bytes: the same few repeat in every batch,
 * and one string object per value (flat, its hash computed once) is cheaper to decode, match and keep
 * than a new one per message.
 */
const recent = new Map<number, { bytes: Uint8Array; text: string }>();
const RECENT_SIZE = 4096;

/** A two-byte-length string at `at` (its `length` already read), from {@linkcode recent} when there. */
function recentText(bytes: Uint8Array, at: number, length: number): string {
  const start = at + 2;
  const end = start + length;
  if (length > 256 || end > bytes.length) return text(bytes, at, length);
  let hash = 0x811c9dc5 ^ length;
  for (let i = start; i < end; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193);
  const seen = recent.get(hash);
  if (seen !== undefined && seen.bytes.length === length) {
    const known = seen.bytes;
    let i = 0;
    while (i < length && known[i] === bytes[start + i]) i++;
    if (i === length) return seen.text;
  }
  const value = text(bytes, at, length);
  if (recent.size >= RECENT_SIZE) recent.clear();
  recent.set(hash, { bytes: bytes.slice(start, end), text: value });
  return value;
}

/** A two-byte-length string at `at` (its `length` already read). */
function text(bytes: Uint8Array, at: number, length: number): string {
  const value = decodeUtf8(bytes, at + 2, at + 2 + length);
  if (typeof value === "number") throw new RangeError(`Bad forwarded string (reason ${value})`);
  return value;
}

/**
 * Appends a control record to `out`.
 *
 * @param out Where to write.
 * @param control The control message (JSON; Uint8Array fields are kept as base64).
 */
export function writeControl(out: ByteWriter, control: Record<string, unknown>): void {
  const json = encoder.encode(JSON.stringify(control, replacer));
  out.u8(2);
  out.u32(json.length);
  out.bytes(json);
}

/**
 * JSON with `Uint8Array` fields as `{"$b64": ...}` (session records in the engine).
 *
 * @param value The value.
 * @returns The JSON text.
 */
export function encodeJson(value: unknown): string {
  return JSON.stringify(value, replacer);
}

/**
 * Parses what {@linkcode encodeJson} wrote.
 *
 * @param text The JSON text.
 * @returns The value.
 */
export function decodeJson<T>(text: string): T {
  return JSON.parse(text, reviver) as T;
}

function replacer(_key: string, value: unknown): unknown {
  if (value instanceof Uint8Array) {
    let text = "";
    for (let i = 0; i < value.length; i += 0x8000) {
      text += String.fromCharCode(...value.subarray(i, i + 0x8000));
    }
    return { $b64: btoa(text) };
  }
  return value;
}

function reviver(_key: string, value: unknown): unknown {
  if (typeof value === "object" && value !== null && "$b64" in value) {
    const text = atob((value as { $b64: string }).$b64);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return bytes;
  }
  return value;
}

const PUBLISH_BIT = propertyTargetBit(PacketType.Publish);
const propertyReader = new ByteReader();

/**
 * Decodes a PUBLISH written by {@linkcode encodeMessage} (`bytes[start..end]`, fixed header included).
 * This node's own encoding, so only its shape is checked: the topic was valid when it was accepted.
 * The packet is built whole at once (one object shape for every forwarded message); the payload is a
 * view into `bytes`.
 */
function decodeMessage(
  bytes: Uint8Array,
  start: number,
  end: number,
  created: number,
  expiry: number,
  origin: string,
): Packet {
  const first = bytes[start];
  if (first >> 4 !== PacketType.Publish) throw new RangeError("Bad forwarded message (not a PUBLISH)");
  let at = start + 1;
  while (at < end && (bytes[at] & 0x80) !== 0) at++; // the Remaining Length: the record gave the size
  at++;
  const topicLength = (bytes[at] << 8) | bytes[at + 1];
  const topicName = recentText(bytes, at, topicLength);
  at += 2 + topicLength;
  const qos = ((first >> 1) & 3) as QoS;
  if (qos > 0) at += 2; // the placeholder packet id
  let properties: Packet["properties"];
  if (bytes[at] === 0) at++;
  else {
    const reader = propertyReader.reset(bytes, at, end);
    const read = readProperties(reader, PUBLISH_BIT, PacketType.Publish);
    if (typeof read === "number") throw new RangeError(`Bad forwarded message (reason ${read})`);
    properties = read;
    at = reader.position;
    reader.reset(EMPTY);
  }
  if (at > end) throw new RangeError("Bad forwarded message (truncated)");
  return {
    fixedHeader: { type: PacketType.Publish, dup: false, qos, retain: (first & 1) !== 0 },
    topicName,
    payload: bytes.subarray(at, end),
    properties,
    created,
    expiry,
    origin,
  };
}

const EMPTY = new Uint8Array(0);

/** Writes two big-endian float64s. */
function writeFloats(out: ByteWriter, first: number, second: number): void {
  out.ensure(16);
  const buffer = out.buffer;
  let at = out.length;
  scratch.setFloat64(0, first);
  for (let i = 0; i < 8; i++) buffer[at++] = scratch.getUint8(i);
  scratch.setFloat64(0, second);
  for (let i = 0; i < 8; i++) buffer[at++] = scratch.getUint8(i);
  out.length = at;
}

/**
 * One record holding a single message for every subscriber (retained messages in the engine).
 *
 * @param packet The message.
 * @returns The record's bytes.
 */
export function messageRecord(packet: Packet): Uint8Array {
  const out = new ByteWriter(64 + (packet.payload?.length ?? 0));
  writeRecord(out, packet, undefined, true, NO_GROUPS);
  return out.toBytes();
}

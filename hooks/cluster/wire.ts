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
 * | 4 + 8 | if flags bit 2: the message's id, its origin process's random epoch (uint32) and that process's forward sequence number (float64) |
 * | 2 + n | the publisher's client id (`origin`) |
 * | 4 + n | the message as an MQTT v5 PUBLISH packet (fixed header included) |
 *
 * A control record (flags bit 1: session release and handoff between nodes) is the flags byte, a
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

import type { Packet } from "../../src/packets/types.ts";
import { ByteWriter } from "../../src/packets/writer.ts";
import { decodePacket, encodePacket } from "../../src/packets/codec.ts";
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
const scratch = new DataView(new ArrayBuffer(8));
/** Where {@linkcode encodeMessage} encodes (one message at a time: no allocation per message). */
const messageScratch = new ByteWriter(4096);

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
  const qos = packet.fixedHeader.qos ?? 0;
  encodePacket(
    {
      fixedHeader: { type: packet.fixedHeader.type, qos, retain: packet.fixedHeader.retain ?? false },
      topicName: packet.topicName,
      payload: packet.payload,
      properties: stripRoutingProperties(packet.properties),
      packetId: qos > 0 ? 1 : undefined,
    },
    5,
    out,
  );
  return out.toBytes();
}

/**
 * Appends one record to `out`.
 *
 * @param out Where to write.
 * @param packet The message (for `created`, `expiry`, `origin`).
 * @param encoded Its PUBLISH bytes from {@linkcode encodeMessage}.
 * @param plain For the receiver's non-shared subscriptions.
 * @param groups Shared groups picked on the receiver.
 * @param id The message's id (the same for every destination); none for a retained record.
 */
export function writeRecord(
  out: ByteWriter,
  packet: Packet,
  encoded: Uint8Array,
  plain: boolean,
  groups: readonly string[],
  id?: MessageId,
): void {
  out.u8((plain ? 1 : 0) | (id ? 4 : 0));
  out.u8(groups.length);
  for (const group of groups) out.utf8(group);
  writeFloat(out, packet.created ?? Date.now());
  writeFloat(out, packet.expiry ?? 0);
  if (id) {
    out.u32(id.epoch);
    writeFloat(out, id.seq);
  }
  out.utf8(packet.origin ?? "");
  out.u32(encoded.length);
  out.bytes(encoded);
}

/**
 * Reads every record of a batch.
 *
 * @param bytes The batch (records one after another); payloads are views into it.
 * @returns The messages, in order.
 * @throws {RangeError} When the bytes are not records written by {@linkcode writeRecord}.
 */
export function readRecords(bytes: Uint8Array): (WireMessage | WireControl)[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const messages: (WireMessage | WireControl)[] = [];
  let at = 0;
  const text = () => {
    const length = view.getUint16(at);
    at += 2;
    const value = decoder.decode(bytes.subarray(at, at + length));
    at += length;
    return value;
  };
  while (at < bytes.length) {
    const flags = bytes[at++];
    if ((flags & 2) !== 0) {
      const length = view.getUint32(at);
      at += 4;
      messages.push({ control: JSON.parse(decoder.decode(bytes.subarray(at, at + length)), reviver) });
      at += length;
      continue;
    }
    const plain = (flags & 1) === 1;
    const groups: string[] = [];
    for (let n = bytes[at++]; n > 0; n--) groups.push(text());
    const created = view.getFloat64(at);
    const expiry = view.getFloat64(at + 8);
    at += 16;
    let epoch = 0;
    let seq = 0;
    if ((flags & 4) !== 0) {
      epoch = view.getUint32(at);
      seq = view.getFloat64(at + 4);
      at += 12;
    }
    const origin = text();
    const length = view.getUint32(at);
    at += 4;
    const packet = decodeMessage(bytes.subarray(at, at + length));
    at += length;
    packet.created = created;
    packet.expiry = expiry;
    packet.origin = origin;
    delete packet.packetId;
    messages.push({ packet, plain, groups, epoch, seq });
  }
  return messages;
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

/** Decodes a whole PUBLISH packet (fixed header included). */
function decodeMessage(bytes: Uint8Array): Packet {
  let at = 1;
  let multiplier = 1;
  let length = 0;
  for (;;) {
    const byte = bytes[at++];
    length += (byte & 0x7f) * multiplier;
    if ((byte & 0x80) === 0) break;
    multiplier *= 128;
  }
  const decoded = decodePacket(bytes[0], bytes.subarray(at, at + length), 5);
  if (typeof decoded === "number") throw new RangeError(`Bad forwarded message (reason ${decoded})`);
  return decoded;
}

function writeFloat(out: ByteWriter, value: number): void {
  scratch.setFloat64(0, value);
  out.ensure(8);
  for (let i = 0; i < 8; i++) out.buffer[out.length++] = scratch.getUint8(i);
}

/**
 * One record holding a single message for every subscriber (retained messages in the engine).
 *
 * @param packet The message.
 * @returns The record's bytes.
 */
export function messageRecord(packet: Packet): Uint8Array {
  const out = new ByteWriter(64 + (packet.payload?.length ?? 0));
  writeRecord(out, packet, encodeMessage(packet), true, []);
  return out.toBytes();
}

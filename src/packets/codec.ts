/**
 * Whole-packet encoding and decoding: the fixed header, then the body by packet family.
 *
 * @module
 */

import { decodeAck, encodeAck } from "./acks.ts";
import { decodeConnack, decodeConnect, encodeConnack, encodeConnect } from "./connect.ts";
import { decodeDisconnectOrAuth, decodePing, encodeDisconnectOrAuth } from "./control.ts";
import { decodePublish, encodePublish, publishFlags } from "./publish.ts";
import { ReasonCode } from "./reason_codes.ts";
import { ByteReader } from "./reader.ts";
import {
  decodeSuback,
  decodeSubscribe,
  decodeUnsuback,
  decodeUnsubscribe,
  encodeSuback,
  encodeSubscribe,
  encodeUnsuback,
  encodeUnsubscribe,
} from "./subscribe.ts";
import { type Packet, PacketType, type ProtocolVersion } from "./types.ts";
import { type ByteWriter, MAX_VARINT, varintSize, writeVarintAt } from "./writer.ts";

/**
 * Appends a whole packet (fixed header, Remaining Length, body) to `out`. The body is encoded once,
 * straight into the writer; v3/v4 never get properties or v5-only fields. Setting `out.length` back
 * to its value before the call drops the packet again (e.g. when it exceeds the peer's maximum).
 *
 * @param packet The packet; `fixedHeader.type` picks the encoding.
 * @param version The protocol level to encode for (for CONNECT, the level written).
 * @param out The writer to append to.
 * @returns The number of bytes appended.
 * @throws {RangeError} If the packet type is not a valid one, the packet is longer than the protocol
 * allows, or a string or binary field is longer than 65535 bytes.
 * @throws {TypeError} If a CONNECT lacks its `connect` fields. After a throw `out.length` may point
 * into a partial packet: set it back to its value before the call.
 *
 * @example Encoding a PINGREQ and a PUBLISH
 * ```ts
 * import assert from "node:assert/strict";
 * import { ByteWriter, encodePacket, PacketType } from "./mod.ts";
 *
 * const out = new ByteWriter();
 * encodePacket({ fixedHeader: { type: PacketType.Pingreq } }, 4, out);
 * const payload = new TextEncoder().encode("hi");
 * encodePacket({ fixedHeader: { type: PacketType.Publish }, topicName: "a", payload }, 4, out);
 * assert.deepEqual(out.toBytes(), new Uint8Array([192, 0, 48, 5, 0, 1, 97, 104, 105]));
 * ```
 */
export function encodePacket(packet: Packet, version: ProtocolVersion, out: ByteWriter): number {
  const type = packet.fixedHeader.type;
  let firstByte = type << 4;
  // Guess the size of the Remaining Length from a lower bound of the body, so that the body rarely
  // has to move once its real length is known.
  let estimate = 0;
  switch (type) {
    case PacketType.Publish:
      firstByte |= publishFlags(packet);
      estimate = 2 + (packet.topicName?.length ?? 0) + (packet.payload?.length ?? 0);
      break;
    case PacketType.Pubrel:
    case PacketType.Subscribe:
    case PacketType.Unsubscribe:
      firstByte |= 0x02; // [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1]; MQTT 3.1: QoS 1
      // MQTT 3.1 sets DUP when it re-sends these; 3.1.1 and 5 fixed the flags at 0010.
      if (version === 3 && packet.fixedHeader.dup) firstByte |= 0x08;
      break;
    default:
      if (!(type >= PacketType.Connect && type <= PacketType.Auth)) {
        throw new RangeError(`Cannot encode packet type ${type}`);
      }
  }
  const start = out.length;
  const reserved = varintSize(Math.min(estimate, MAX_VARINT));
  out.ensure(1 + reserved);
  out.buffer[start] = firstByte;
  const bodyStart = start + 1 + reserved;
  out.length = bodyStart;
  encodeBody(packet, type, version, out);
  const remaining = out.length - bodyStart;
  if (remaining > MAX_VARINT) {
    out.length = start;
    throw new RangeError(`Packet too large to encode: remaining length ${remaining}`);
  }
  const size = varintSize(remaining);
  if (size !== reserved) {
    out.ensure(size - reserved);
    out.buffer.copyWithin(start + 1 + size, bodyStart, out.length);
    out.length += size - reserved;
  }
  writeVarintAt(out.buffer, start + 1, remaining);
  return out.length - start;
}

function encodeBody(packet: Packet, type: PacketType, version: ProtocolVersion, out: ByteWriter): void {
  switch (type) {
    case PacketType.Connect:
      return encodeConnect(packet, version, out);
    case PacketType.Connack:
      return encodeConnack(packet, version, out);
    case PacketType.Publish:
      return encodePublish(packet, version, out);
    case PacketType.Puback:
    case PacketType.Pubrec:
    case PacketType.Pubrel:
    case PacketType.Pubcomp:
      return encodeAck(packet, version, out);
    case PacketType.Subscribe:
      return encodeSubscribe(packet, version, out);
    case PacketType.Suback:
      return encodeSuback(packet, version, out);
    case PacketType.Unsubscribe:
      return encodeUnsubscribe(packet, version, out);
    case PacketType.Unsuback:
      return encodeUnsuback(packet, version, out);
    case PacketType.Disconnect:
    case PacketType.Auth:
      return encodeDisconnectOrAuth(packet, version, out);
    default:
      // PINGREQ and PINGRESP have no body.
      return;
  }
}

// Decoding is synchronous, so one reader serves every call.
const reader = new ByteReader();
const EMPTY = new Uint8Array(0);

/**
 * Decodes one packet from its first byte and body (the bytes after the Remaining Length), as given
 * by {@linkcode PacketFramer}. Never throws. The PUBLISH payload is a view of `body`; other binary
 * fields are copies. `fixedHeader.remaining` is `body.length`; properties are set only when the
 * packet carries some.
 *
 * @param firstByte The fixed header's first byte (type and flags).
 * @param body The packet body.
 * @param version The connection's protocol level; ignored for CONNECT, which carries its own (and
 * sets `protocolVersion` on the result).
 * @returns The packet, or a reason code: 0x81 Malformed Packet, 0x82 Protocol Error, 0x84
 * Unsupported Protocol Version (CONNECT), 0x90 Topic Name Invalid, 0x94 Topic Alias Invalid.
 *
 * @example Decoding a PUBACK
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodePacket } from "./mod.ts";
 *
 * assert.deepEqual(decodePacket(0x40, new Uint8Array([0, 7]), 4), {
 *   fixedHeader: { type: 4, remaining: 2 },
 *   packetId: 7,
 * });
 * ```
 */
export function decodePacket(firstByte: number, body: Uint8Array, version: ProtocolVersion): Packet | number {
  const type = (firstByte >> 4) as PacketType;
  const flags = firstByte & 0x0f;
  reader.reset(body);
  let result: Packet | number;
  switch (type) {
    case PacketType.Publish:
      result = decodePublish(reader, flags, version);
      break;
    case PacketType.Pubrel:
    case PacketType.Subscribe:
    case PacketType.Unsubscribe:
      // [MQTT-3.6.1-1] [MQTT-3.8.1-1] [MQTT-3.10.1-1] [MQTT-2.2.2-2]: flags must be 0b0010. MQTT 3.1
      // has no such rule: these use QoS 1 and set DUP when re-sent, and the flags are not checked.
      result = flags !== 0x02 && version !== 3
        ? ReasonCode.MalformedPacket
        : type === PacketType.Pubrel
        ? decodeAck(reader, type, version)
        : type === PacketType.Subscribe
        ? decodeSubscribe(reader, version)
        : decodeUnsubscribe(reader, version);
      break;
    case PacketType.Reserved:
      result = ReasonCode.MalformedPacket; // type 0 is forbidden
      break;
    case PacketType.Connect:
      // The level is in the body: MQTT 3.1 leaves the fixed header flags of CONNECT unused.
      result = decodeConnect(reader);
      if (flags !== 0 && typeof result !== "number" && result.protocolVersion !== 3) {
        result = ReasonCode.MalformedPacket; // [MQTT-2.2.2-2]
      }
      break;
    default:
      // [MQTT-2.2.2-2]: every other type has reserved flags 0 in 3.1.1 and 5; in MQTT 3.1 the DUP,
      // QoS and RETAIN bits of packets that do not use them are "not used", so they are ignored.
      result = flags !== 0 && version !== 3 ? ReasonCode.MalformedPacket : decodeBody(type, version);
  }
  reader.reset(EMPTY);
  return result;
}

function decodeBody(type: PacketType, version: ProtocolVersion): Packet | number {
  switch (type) {
    case PacketType.Connack:
      return decodeConnack(reader, version);
    case PacketType.Puback:
    case PacketType.Pubrec:
    case PacketType.Pubcomp:
      return decodeAck(reader, type, version);
    case PacketType.Suback:
      return decodeSuback(reader, type, version);
    case PacketType.Unsuback:
      return decodeUnsuback(reader, version);
    case PacketType.Pingreq:
    case PacketType.Pingresp:
      return decodePing(reader, type);
    case PacketType.Disconnect:
      return decodeDisconnectOrAuth(reader, type, version);
    case PacketType.Auth:
      // AUTH exists in v5 only; to v3/v4 type 15 is reserved.
      return version === 5 ? decodeDisconnectOrAuth(reader, type, version) : ReasonCode.MalformedPacket;
    default:
      return ReasonCode.MalformedPacket;
  }
}

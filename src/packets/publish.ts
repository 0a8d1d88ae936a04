/**
 * PUBLISH bodies (spec 3.3).
 *
 * @module
 */

import { encodeProperties, propertyTargetBit, readProperties } from "./properties.ts";
import { ReasonCode } from "./reason_codes.ts";
import type { ByteReader } from "./reader.ts";
import { topicNameError } from "./topic_rules.ts";
import { type Packet, PacketType, type ProtocolVersion, type QoS } from "./types.ts";
import type { ByteWriter } from "./writer.ts";

const PUBLISH_BIT = propertyTargetBit(PacketType.Publish);
const EMPTY = new Uint8Array(0);

/**
 * The fixed header flags of a PUBLISH: DUP (bit 3), QoS (bits 2-1) and RETAIN (bit 0).
 *
 * @param packet The packet.
 * @returns The low nibble of the first byte.
 */
export function publishFlags(packet: Packet): number {
  const header = packet.fixedHeader;
  return (header.dup ? 0x08 : 0) | ((header.qos ?? 0) << 1) | (header.retain ? 0x01 : 0);
}

/**
 * Appends a PUBLISH body: topic, packet identifier (QoS > 0), v5 properties and the payload.
 *
 * @param packet The packet.
 * @param version The protocol level.
 * @param out The writer.
 */
export function encodePublish(packet: Packet, version: ProtocolVersion, out: ByteWriter): void {
  out.utf8(packet.topicName ?? "");
  if ((packet.fixedHeader.qos ?? 0) > 0) out.u16(packet.packetId ?? 0);
  if (version === 5) encodeProperties(packet.properties, PacketType.Publish, out);
  out.bytes(packet.payload ?? EMPTY);
}

/**
 * Decodes a PUBLISH. The payload is a view of the body, not a copy.
 *
 * @param reader A reader over the body.
 * @param flags The low nibble of the first byte.
 * @param version The protocol level of the connection.
 * @returns The packet, or a reason code.
 */
export function decodePublish(reader: ByteReader, flags: number, version: ProtocolVersion): Packet | number {
  const qos = (flags >> 1) & 0x03;
  if (qos === 3) return ReasonCode.MalformedPacket; // [MQTT-3.3.1-4]
  const dup = (flags & 0x08) !== 0;
  // [MQTT-3.3.1-2] (3.1.1 and 5); MQTT 3.1 only says DUP marks a re-delivery, which QoS 0 never is.
  if (dup && qos === 0 && version !== 3) return ReasonCode.ProtocolError;
  const topicName = reader.utf8();
  if (typeof topicName === "number") return topicName;
  const topicError = topicNameError(topicName);
  if (topicError === ReasonCode.TopicNameInvalid) return topicError; // [MQTT-3.3.2-2] no wildcards
  const packet: Packet = {
    fixedHeader: {
      type: PacketType.Publish,
      dup,
      qos: qos as QoS,
      retain: (flags & 0x01) !== 0,
      remaining: reader.end,
    },
    topicName,
  };
  if (qos > 0) {
    const packetId = reader.u16();
    if (packetId < 0) return ReasonCode.MalformedPacket;
    if (packetId === 0) return ReasonCode.ProtocolError; // [MQTT-2.2.1-3]
    packet.packetId = packetId;
  }
  if (version === 5) {
    const properties = readProperties(reader, PUBLISH_BIT, PacketType.Publish);
    if (typeof properties === "number") return properties;
    if (properties !== undefined) packet.properties = properties;
    // An empty topic name stands for a topic alias; without one it is a Protocol Error (spec 3.3.2.1).
    if (topicError !== 0 && properties?.topicAlias === undefined) return topicError;
  } else if (topicError !== 0) {
    return ReasonCode.TopicNameInvalid; // [MQTT-4.7.3-1] topic names are at least one character
  }
  packet.payload = reader.buffer.subarray(reader.position, reader.end);
  return packet;
}

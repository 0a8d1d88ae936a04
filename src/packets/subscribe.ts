/**
 * SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK bodies (spec 3.8 to 3.11).
 *
 * @module
 */

import { encodeProperties, propertyTargetBit, readProperties } from "./properties.ts";
import { ReasonCode } from "./reason_codes.ts";
import type { ByteReader } from "./reader.ts";
import {
  type Packet,
  PacketType,
  type Properties,
  type ProtocolVersion,
  type QoS,
  type Subscription,
} from "./types.ts";
import type { ByteWriter } from "./writer.ts";

const SUBSCRIBE_BIT = propertyTargetBit(PacketType.Subscribe);
const SUBACK_BIT = propertyTargetBit(PacketType.Suback);
const UNSUBSCRIBE_BIT = propertyTargetBit(PacketType.Unsubscribe);
const UNSUBACK_BIT = propertyTargetBit(PacketType.Unsuback);

/**
 * Appends a SUBSCRIBE body. When the properties carry no Subscription Identifier but the first
 * subscription has an `identifier`, that identifier is written.
 *
 * @param packet The packet, with `filters`.
 * @param version The protocol level; v3 and v4 write the QoS bits of the options only.
 * @param out The writer.
 */
export function encodeSubscribe(packet: Packet, version: ProtocolVersion, out: ByteWriter): void {
  const filters = packet.filters ?? [];
  out.u16(packet.packetId ?? 0);
  if (version === 5) {
    let properties: Properties | undefined = packet.properties;
    const identifier = filters[0]?.identifier;
    if (identifier !== undefined && properties?.subscriptionIdentifier === undefined) {
      properties = { ...properties, subscriptionIdentifier: [identifier] };
    }
    encodeProperties(properties, PacketType.Subscribe, out);
  }
  for (const subscription of filters) {
    out.utf8(subscription.filter);
    let options = subscription.qos;
    if (version === 5) {
      if (subscription.noLocal) options |= 0x04;
      if (subscription.retainAsPublished) options |= 0x08;
      options |= (subscription.retainHandling ?? 0) << 4;
    }
    out.u8(options);
  }
}

/**
 * Decodes a SUBSCRIBE. Every subscription gets all four option fields (v3 and v4: `noLocal` and
 * `retainAsPublished` false, `retainHandling` 0) and, in v5, the packet's Subscription Identifier as
 * `identifier`. Filter syntax is not checked here: the server answers a bad filter in the SUBACK.
 *
 * @param reader A reader over the body.
 * @param version The protocol level of the connection.
 * @returns The packet, or a reason code.
 */
export function decodeSubscribe(reader: ByteReader, version: ProtocolVersion): Packet | number {
  const packetId = reader.u16();
  if (packetId < 0) return ReasonCode.MalformedPacket;
  if (packetId === 0) return ReasonCode.ProtocolError; // [MQTT-2.2.1-3]
  let properties: Properties | undefined;
  let identifier: number | undefined;
  if (version === 5) {
    const result = readProperties(reader, SUBSCRIBE_BIT, PacketType.Subscribe);
    if (typeof result === "number") return result;
    properties = result;
    identifier = result?.subscriptionIdentifier?.[0];
  }
  const filters: Subscription[] = [];
  const reservedBits = version === 5 ? 0xc0 : 0xfc;
  while (reader.position < reader.end) {
    const filter = reader.utf8();
    if (typeof filter === "number") return filter;
    const options = reader.u8();
    if (options < 0) return ReasonCode.MalformedPacket;
    if ((options & reservedBits) !== 0) return ReasonCode.MalformedPacket; // [MQTT-3.8.3-5]
    const qos = options & 0x03;
    // v5 3.8.3.1: Maximum QoS 3 is a Protocol Error; v3.1.1 [MQTT-3-8.3-4]: malformed.
    if (qos === 3) return version === 5 ? ReasonCode.ProtocolError : ReasonCode.MalformedPacket;
    const retainHandling = (options >> 4) & 0x03;
    if (retainHandling === 3) return ReasonCode.ProtocolError; // v5 3.8.3.1
    const noLocal = (options & 0x04) !== 0;
    // [MQTT-3.8.3-4]: No Local on a shared subscription is a Protocol Error.
    if (noLocal && filter.startsWith("$share/")) return ReasonCode.ProtocolError;
    const subscription: Subscription = {
      filter,
      qos: qos as QoS,
      noLocal,
      retainAsPublished: (options & 0x08) !== 0,
      retainHandling: retainHandling as 0 | 1 | 2,
    };
    if (identifier !== undefined) subscription.identifier = identifier;
    filters.push(subscription);
  }
  if (filters.length === 0) return ReasonCode.ProtocolError; // [MQTT-3.8.3-2]
  const packet: Packet = {
    fixedHeader: { type: PacketType.Subscribe, remaining: reader.end },
    packetId,
    filters,
  };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

/**
 * Appends a SUBACK body: packet identifier, v5 properties, one reason code per filter (as given; the
 * server maps them for v3).
 *
 * @param packet The packet, with `reasonCodes`.
 * @param version The protocol level.
 * @param out The writer.
 */
export function encodeSuback(packet: Packet, version: ProtocolVersion, out: ByteWriter): void {
  out.u16(packet.packetId ?? 0);
  if (version === 5) encodeProperties(packet.properties, PacketType.Suback, out);
  writeCodes(packet.reasonCodes, out);
}

function writeCodes(codes: number[] | undefined, out: ByteWriter): void {
  if (codes === undefined) return;
  out.ensure(codes.length);
  for (const code of codes) out.buffer[out.length++] = code;
}

function readCodes(reader: ByteReader): number[] {
  const codes: number[] = [];
  while (reader.position < reader.end) codes.push(reader.buffer[reader.position++]);
  return codes;
}

/**
 * Decodes a SUBACK or a v5 UNSUBACK (their bodies have the same shape).
 *
 * @param reader A reader over the body.
 * @param type SUBACK or UNSUBACK.
 * @param version The protocol level of the connection.
 * @returns The packet, or a reason code (an ack without codes is a Protocol Error).
 */
export function decodeSuback(
  reader: ByteReader,
  type: typeof PacketType.Suback | typeof PacketType.Unsuback,
  version: ProtocolVersion,
): Packet | number {
  const packetId = reader.u16();
  if (packetId < 0) return ReasonCode.MalformedPacket;
  if (packetId === 0) return ReasonCode.ProtocolError; // [MQTT-2.2.1-3]
  const packet: Packet = { fixedHeader: { type, remaining: reader.end }, packetId };
  if (version === 5) {
    const properties = readProperties(reader, type === PacketType.Suback ? SUBACK_BIT : UNSUBACK_BIT, type);
    if (typeof properties === "number") return properties;
    if (properties !== undefined) packet.properties = properties;
  }
  const codes = readCodes(reader);
  // Each code answers one filter, and SUBSCRIBE/UNSUBSCRIBE carry at least one.
  if (codes.length === 0) return ReasonCode.ProtocolError;
  packet.reasonCodes = codes;
  return packet;
}

/**
 * Appends an UNSUBSCRIBE body: packet identifier, v5 properties, the filters.
 *
 * @param packet The packet, with `filters` (only `filter` is used).
 * @param version The protocol level.
 * @param out The writer.
 */
export function encodeUnsubscribe(packet: Packet, version: ProtocolVersion, out: ByteWriter): void {
  out.u16(packet.packetId ?? 0);
  if (version === 5) encodeProperties(packet.properties, PacketType.Unsubscribe, out);
  for (const subscription of packet.filters ?? []) out.utf8(subscription.filter);
}

/**
 * Decodes an UNSUBSCRIBE; filters come back as `{ filter, qos: 0 }`.
 *
 * @param reader A reader over the body.
 * @param version The protocol level of the connection.
 * @returns The packet, or a reason code.
 */
export function decodeUnsubscribe(reader: ByteReader, version: ProtocolVersion): Packet | number {
  const packetId = reader.u16();
  if (packetId < 0) return ReasonCode.MalformedPacket;
  if (packetId === 0) return ReasonCode.ProtocolError; // [MQTT-2.2.1-3]
  const packet: Packet = {
    fixedHeader: { type: PacketType.Unsubscribe, remaining: reader.end },
    packetId,
  };
  if (version === 5) {
    const properties = readProperties(reader, UNSUBSCRIBE_BIT, PacketType.Unsubscribe);
    if (typeof properties === "number") return properties;
    if (properties !== undefined) packet.properties = properties;
  }
  const filters: Subscription[] = [];
  while (reader.position < reader.end) {
    const filter = reader.utf8();
    if (typeof filter === "number") return filter;
    filters.push({ filter, qos: 0 });
  }
  if (filters.length === 0) return ReasonCode.ProtocolError; // [MQTT-3.10.3-2]
  packet.filters = filters;
  return packet;
}

/**
 * Appends an UNSUBACK body: the packet identifier, and in v5 the properties and one reason code per
 * filter.
 *
 * @param packet The packet.
 * @param version The protocol level.
 * @param out The writer.
 */
export function encodeUnsuback(packet: Packet, version: ProtocolVersion, out: ByteWriter): void {
  out.u16(packet.packetId ?? 0);
  if (version !== 5) return;
  encodeProperties(packet.properties, PacketType.Unsuback, out);
  writeCodes(packet.reasonCodes, out);
}

/**
 * Decodes an UNSUBACK: v3 and v4 carry the packet identifier only.
 *
 * @param reader A reader over the body.
 * @param version The protocol level of the connection.
 * @returns The packet, or a reason code.
 */
export function decodeUnsuback(reader: ByteReader, version: ProtocolVersion): Packet | number {
  if (version === 5) return decodeSuback(reader, PacketType.Unsuback, version);
  const packetId = reader.u16();
  if (packetId < 0) return ReasonCode.MalformedPacket;
  if (packetId === 0) return ReasonCode.ProtocolError; // [MQTT-2.2.1-3]
  if (reader.position !== reader.end) return ReasonCode.MalformedPacket;
  return { fixedHeader: { type: PacketType.Unsuback, remaining: reader.end }, packetId };
}

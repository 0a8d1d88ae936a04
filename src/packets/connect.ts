/**
 * CONNECT and CONNACK bodies (spec 3.1, 3.2).
 *
 * @module
 */

import { encodeProperties, propertyTargetBit, readProperties } from "./properties.ts";
import { ReasonCode } from "./reason_codes.ts";
import type { ByteReader } from "./reader.ts";
import { topicNameError } from "./topic_rules.ts";
import {
  type ConnectParams,
  type Packet,
  PacketType,
  type Properties,
  type ProtocolVersion,
  type QoS,
} from "./types.ts";
import type { ByteWriter } from "./writer.ts";

const EMPTY = new Uint8Array(0);
const CONNECT_BIT = propertyTargetBit(PacketType.Connect);
const WILL_BIT = propertyTargetBit("will");
const CONNACK_BIT = propertyTargetBit(PacketType.Connack);

/**
 * Appends a CONNECT body. The protocol name and level come from `version` ("MQIsdp" for 3, "MQTT"
 * for 4 and 5), not from `packet.connect`; flags follow from which optional fields are set.
 *
 * @param packet A packet with `connect` set.
 * @param version The protocol level to write.
 * @param out The writer.
 * @throws {TypeError} If `packet.connect` is missing.
 */
export function encodeConnect(packet: Packet, version: ProtocolVersion, out: ByteWriter): void {
  const connect = packet.connect;
  if (connect === undefined) throw new TypeError("A CONNECT packet needs its connect fields");
  out.utf8(version === 3 ? "MQIsdp" : "MQTT");
  out.u8(version);
  let flags = connect.clean ? 0x02 : 0;
  if (connect.willFlag) {
    flags |= 0x04 | ((connect.willQos ?? 0) << 3);
    if (connect.willRetain) flags |= 0x20;
  }
  if (connect.password !== undefined) flags |= 0x40;
  if (connect.username !== undefined) flags |= 0x80;
  out.u8(flags);
  out.u16(connect.keepAlive);
  if (version === 5) encodeProperties(packet.properties, PacketType.Connect, out);
  out.utf8(connect.clientId);
  if (connect.willFlag) {
    if (version === 5) encodeProperties(connect.willProperties, "will", out);
    out.utf8(connect.willTopic ?? "");
    out.binary(connect.willPayload ?? EMPTY);
  }
  if (connect.username !== undefined) out.utf8(connect.username);
  if (connect.password !== undefined) out.binary(connect.password);
}

/**
 * Decodes a CONNECT body. The protocol level is read from the packet; binary fields (password, will
 * payload) are copies, since a session keeps them beyond the read buffer.
 *
 * @param reader A reader over the body.
 * @returns The packet (with `protocolVersion` set), or a reason code: 0x84 for a protocol name or
 * level this codec does not speak, 0x81 or 0x82 for a broken packet.
 */
export function decodeConnect(reader: ByteReader): Packet | number {
  const malformed = ReasonCode.MalformedPacket;
  const protocolName = reader.utf8();
  if (typeof protocolName === "number") return protocolName;
  const level = reader.u8();
  if (level < 0) return malformed;
  // [MQTT-3.1.2-1] [MQTT-3.1.2-2]: an unknown name or level gets 0x84 (v3 return code 1).
  if (
    !(protocolName === "MQTT" && (level === 4 || level === 5)) &&
    !(protocolName === "MQIsdp" && level === 3)
  ) {
    return ReasonCode.UnsupportedProtocolVersion;
  }
  const version = level as ProtocolVersion;
  const flags = reader.u8();
  if (flags < 0) return malformed;
  // [MQTT-3.1.2-3] the reserved flag is 0 in 3.1.1 and 5; MQTT 3.1 only calls it unused.
  if ((flags & 0x01) !== 0 && version !== 3) return malformed;
  const willFlag = (flags & 0x04) !== 0;
  const willQos = (flags >> 3) & 0x03;
  const willRetain = (flags & 0x20) !== 0;
  const passwordFlag = (flags & 0x40) !== 0;
  const usernameFlag = (flags & 0x80) !== 0;
  if (willQos === 3) return malformed; // [MQTT-3.1.2-12]
  if (!willFlag && (willQos !== 0 || willRetain)) return malformed; // [MQTT-3.1.2-11] [MQTT-3.1.2-13]
  // v3.1.1 [MQTT-3.1.2-22]: a password needs a user name; v5 lifted this.
  if (version < 5 && passwordFlag && !usernameFlag) return malformed;
  const keepAlive = reader.u16();
  if (keepAlive < 0) return malformed;

  let properties: Properties | undefined;
  if (version === 5) {
    const result = readProperties(reader, CONNECT_BIT, PacketType.Connect);
    if (typeof result === "number") return result;
    // "It is a Protocol Error to include Authentication Data if there is no Authentication Method"
    if (result?.authenticationData !== undefined && result.authenticationMethod === undefined) {
      return ReasonCode.ProtocolError;
    }
    properties = result;
  }
  const clientId = reader.utf8();
  if (typeof clientId === "number") return clientId;

  const connect: ConnectParams = {
    protocolName,
    protocolVersion: version,
    clean: (flags & 0x02) !== 0,
    keepAlive,
    clientId,
    willFlag,
  };
  if (willFlag) {
    if (version === 5) {
      const willProperties = readProperties(reader, WILL_BIT, PacketType.Reserved);
      if (typeof willProperties === "number") return willProperties;
      if (willProperties !== undefined) connect.willProperties = willProperties;
    }
    const willTopic = reader.utf8();
    if (typeof willTopic === "number") return willTopic;
    // The Will Topic is a Topic Name [MQTT-3.1.3-11]: not empty [MQTT-4.7.3-1], no wildcards.
    const topicError = topicNameError(willTopic);
    if (topicError !== 0) return topicError;
    const willPayload = reader.binaryCopy();
    if (willPayload === undefined) return malformed;
    connect.willTopic = willTopic;
    connect.willPayload = willPayload;
    connect.willQos = willQos as QoS;
    connect.willRetain = willRetain;
  }
  if (usernameFlag) {
    const username = reader.utf8();
    if (typeof username === "number") return username;
    connect.username = username;
  }
  if (passwordFlag) {
    const password = reader.binaryCopy();
    if (password === undefined) return malformed;
    connect.password = password;
  }
  if (reader.position !== reader.end) return malformed;

  const packet: Packet = {
    fixedHeader: { type: PacketType.Connect, remaining: reader.end },
    protocolVersion: version,
    connect,
  };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

/**
 * Appends a CONNACK body: acknowledge flags, the reason code (v3: the return code, as given) and, for
 * v5, the properties. Level 3 has no Session Present flag, so it is written as 0.
 *
 * @param packet The packet.
 * @param version The protocol level.
 * @param out The writer.
 */
export function encodeConnack(packet: Packet, version: ProtocolVersion, out: ByteWriter): void {
  out.u8(version !== 3 && packet.sessionPresent ? 1 : 0);
  out.u8(packet.reasonCode ?? 0);
  if (version === 5) encodeProperties(packet.properties, PacketType.Connack, out);
}

/**
 * Decodes a CONNACK body.
 *
 * @param reader A reader over the body.
 * @param version The protocol level of the connection.
 * @returns The packet, or a reason code.
 */
export function decodeConnack(reader: ByteReader, version: ProtocolVersion): Packet | number {
  const flags = reader.u8();
  const reasonCode = reader.u8();
  if (reasonCode < 0) return ReasonCode.MalformedPacket;
  if ((flags & 0xfe) !== 0) return ReasonCode.MalformedPacket; // Acknowledge flags bits 7-1 are reserved
  const packet: Packet = {
    fixedHeader: { type: PacketType.Connack, remaining: reader.end },
    // Level 3 has no Session Present flag (the byte is unused in 3.1), so the encoder cannot write one.
    sessionPresent: version !== 3 && (flags & 0x01) !== 0,
    reasonCode,
  };
  if (version === 5) {
    const properties = readProperties(reader, CONNACK_BIT, PacketType.Connack);
    if (typeof properties === "number") return properties;
    if (properties !== undefined) packet.properties = properties;
  }
  if (reader.position !== reader.end) return ReasonCode.MalformedPacket;
  return packet;
}

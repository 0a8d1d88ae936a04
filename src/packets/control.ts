/**
 * PINGREQ, PINGRESP, DISCONNECT and AUTH bodies (spec 3.12 to 3.15).
 *
 * @module
 */

import { encodeProperties, propertyTargetBit, readProperties } from "./properties.ts";
import { ReasonCode } from "./reason_codes.ts";
import type { ByteReader } from "./reader.ts";
import { type Packet, PacketType, type ProtocolVersion } from "./types.ts";
import type { ByteWriter } from "./writer.ts";

/**
 * Decodes a PINGREQ or PINGRESP, which have no body.
 *
 * @param reader A reader over the body.
 * @param type PINGREQ or PINGRESP.
 * @returns The packet, or 0x81 if the body is not empty.
 */
export function decodePing(reader: ByteReader, type: PacketType): Packet | number {
  if (reader.end !== 0) return ReasonCode.MalformedPacket;
  return { fixedHeader: { type, remaining: 0 } };
}

/**
 * Appends a DISCONNECT (v5 only; v3 and v4 have no body) or AUTH body in its shortest form: nothing
 * for reason code 0 without properties; for DISCONNECT with a code but no properties, the code alone
 * (spec 3.14.2.2.1 allows it); otherwise the code and the properties. AUTH always writes a Property
 * Length after a code, since 3.15 does not allow leaving it out.
 *
 * @param packet The packet.
 * @param version The protocol level.
 * @param out The writer.
 * @throws {RangeError} For AUTH below v5.
 */
export function encodeDisconnectOrAuth(packet: Packet, version: ProtocolVersion, out: ByteWriter): void {
  const type = packet.fixedHeader.type;
  if (version !== 5) {
    if (type === PacketType.Auth) {
      throw new RangeError(`AUTH packets need MQTT 5, not protocol level ${version}`);
    }
    return;
  }
  const reasonCode = packet.reasonCode ?? 0;
  out.u8(reasonCode);
  if (encodeProperties(packet.properties, type, out) === 0) {
    if (reasonCode === 0) out.length -= 2;
    else if (type !== PacketType.Auth) out.length -= 1;
  }
}

/**
 * Decodes a DISCONNECT or AUTH body. v3/v4 DISCONNECT must be empty; in v5 an empty body means
 * reason code 0 and a body of one byte has no properties.
 *
 * @param reader A reader over the body.
 * @param type DISCONNECT or AUTH (AUTH below v5 is rejected by the caller).
 * @param version The protocol level of the connection.
 * @returns The packet, or a reason code.
 */
export function decodeDisconnectOrAuth(
  reader: ByteReader,
  type: PacketType,
  version: ProtocolVersion,
): Packet | number {
  const packet: Packet = { fixedHeader: { type, remaining: reader.end } };
  if (version !== 5) {
    if (reader.end !== 0) return ReasonCode.MalformedPacket;
    return packet;
  }
  packet.reasonCode = reader.position < reader.end ? reader.u8() : 0;
  if (reader.position < reader.end) {
    const properties = readProperties(reader, propertyTargetBit(type), type);
    if (typeof properties === "number") return properties;
    if (properties !== undefined) packet.properties = properties;
  }
  if (reader.position !== reader.end) return ReasonCode.MalformedPacket;
  return packet;
}

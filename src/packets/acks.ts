/**
 * PUBACK, PUBREC, PUBREL and PUBCOMP bodies (spec 3.4 to 3.7): a packet identifier and, in v5, a
 * reason code and properties that may be left out.
 *
 * @module
 */

import { encodeProperties, propertyTargetBit, readProperties } from "./properties.ts";
import { ReasonCode } from "./reason_codes.ts";
import type { ByteReader } from "./reader.ts";
import type { Packet, PacketType, ProtocolVersion } from "./types.ts";
import type { ByteWriter } from "./writer.ts";

/**
 * Appends an ack body in its shortest v5 form: the reason code is left out when it is 0 and there
 * are no properties (remaining length 2), the Property Length when there are no properties
 * (remaining length 3). v3 and v4 write the packet identifier only.
 *
 * @param packet The packet.
 * @param version The protocol level.
 * @param out The writer.
 */
export function encodeAck(packet: Packet, version: ProtocolVersion, out: ByteWriter): void {
  out.u16(packet.packetId ?? 0);
  if (version !== 5) return;
  const reasonCode = packet.reasonCode ?? 0;
  out.u8(reasonCode);
  if (encodeProperties(packet.properties, packet.fixedHeader.type, out) === 0) {
    out.length -= reasonCode === 0 ? 2 : 1;
  }
}

/**
 * Decodes an ack body.
 *
 * @param reader A reader over the body.
 * @param type PUBACK, PUBREC, PUBREL or PUBCOMP.
 * @param version The protocol level of the connection.
 * @returns The packet (v5: with `reasonCode`, 0 when left out), or a reason code.
 */
export function decodeAck(reader: ByteReader, type: PacketType, version: ProtocolVersion): Packet | number {
  const packetId = reader.u16();
  if (packetId < 0) return ReasonCode.MalformedPacket;
  if (packetId === 0) return ReasonCode.ProtocolError; // [MQTT-2.2.1-3]
  const packet: Packet = { fixedHeader: { type, remaining: reader.end }, packetId };
  if (version === 5) {
    // Remaining length 2: Success and no properties; 3: no Property Length (spec 3.4.2.1).
    packet.reasonCode = reader.position < reader.end ? reader.u8() : 0;
    if (reader.position < reader.end) {
      const properties = readProperties(reader, propertyTargetBit(type), type);
      if (typeof properties === "number") return properties;
      if (properties !== undefined) packet.properties = properties;
    }
  }
  if (reader.position !== reader.end) return ReasonCode.MalformedPacket;
  return packet;
}

/**
 * The MQTT packet codec (levels 3, 4 and 5), with no dependencies: packet types, reason codes,
 * a streaming framer, encoding into a growable buffer, decoding that returns reason codes instead
 * of throwing, v5 properties and topic syntax rules.
 *
 * @example Framing, decoding and encoding
 * ```ts
 * import assert from "node:assert/strict";
 * import { ByteWriter, decodePacket, encodePacket, FRAME_READY, PacketFramer } from "./mod.ts";
 *
 * const framer = new PacketFramer();
 * framer.push(new Uint8Array([0x30, 0x05, 0x00, 0x01, 0x61, 0x68, 0x69]));
 * const out = new ByteWriter();
 * while (framer.next() === FRAME_READY) {
 *   const packet = decodePacket(framer.header, framer.body, 4);
 *   if (typeof packet === "number") throw new Error(`bad packet: ${packet}`);
 *   encodePacket(packet, 5, out); // the same PUBLISH for a v5 client
 * }
 * // The v5 encoding adds an empty property length (0) after the topic name "a".
 * assert.deepEqual(out.toBytes(), new Uint8Array([48, 6, 0, 1, 97, 0, 104, 105]));
 * ```
 *
 * @module
 */

export * from "./types.ts";
export * from "./reason_codes.ts";
export { ByteWriter, MAX_TWO_BYTE_LENGTH, MAX_VARINT, varintSize } from "./writer.ts";
export { ByteReader, decodeUtf8 } from "./reader.ts";
export { decodePacket, encodePacket } from "./codec.ts";
export { FRAME_NEED_MORE, FRAME_READY, PacketFramer, PROTOCOL_MAXIMUM_PACKET_SIZE } from "./framer.ts";
export {
  isValidTopicFilter,
  isValidTopicName,
  MAX_TOPIC_BYTES,
  parseSharedFilter,
  SHARE_PREFIX,
  type SharedFilter,
} from "./topic_rules.ts";
export {
  type DecodedProperties,
  decodeProperties,
  encodeProperties,
  PROPERTIES,
  propertyById,
  type PropertyDefinition,
  type PropertyTarget,
  propertyTargetBit,
  PropertyType,
} from "./properties.ts";

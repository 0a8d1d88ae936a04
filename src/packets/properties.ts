/**
 * MQTT v5 properties: the table of every property (spec 2.2.2.2), and their encoding and decoding.
 *
 * @module
 */

import { ReasonCode } from "./reason_codes.ts";
import { ByteReader } from "./reader.ts";
import { topicNameError } from "./topic_rules.ts";
import { type PacketType, PacketType as Type, type Properties, type UserProperty } from "./types.ts";
import { type ByteWriter, varintSize, writeVarintAt } from "./writer.ts";

/** How a property value is encoded on the wire (spec 1.5). */
export const PropertyType = {
  Byte: 1,
  TwoByteInteger: 2,
  FourByteInteger: 3,
  VariableByteInteger: 4,
  Utf8String: 5,
  BinaryData: 6,
  Utf8StringPair: 7,
} as const;

/** One of the {@linkcode PropertyType} values. */
export type PropertyType = typeof PropertyType[keyof typeof PropertyType];

/** Where a property may appear: a packet type, or `"will"` for the CONNECT will properties. */
export type PropertyTarget = PacketType | "will";

/** The description of one property. */
export interface PropertyDefinition {
  /** The property identifier. */
  readonly id: number;
  /** The key in {@linkcode Properties}. */
  readonly name: keyof Properties;
  /** The wire encoding. */
  readonly type: PropertyType;
  /** Where the property is allowed. */
  readonly targets: readonly PropertyTarget[];
  /** `targets` as a bit set, see {@linkcode propertyTargetBit}. */
  readonly mask: number;
}

/** The bit that stands for the will properties; packet types use bits 0-15. */
const WILL_BIT = 1 << 16;

/**
 * The bit of a property target in {@linkcode PropertyDefinition.mask}.
 *
 * @param target A packet type or `"will"`.
 * @returns `1 << type`, or bit 16 for the will.
 */
export function propertyTargetBit(target: PropertyTarget): number {
  return target === "will" ? WILL_BIT : 1 << target;
}

function define(
  id: number,
  name: keyof Properties,
  type: PropertyType,
  targets: readonly PropertyTarget[],
): PropertyDefinition {
  let mask = 0;
  for (const target of targets) mask |= propertyTargetBit(target);
  return { id, name, type, targets, mask };
}

const T = PropertyType;
const ACKS: readonly PropertyTarget[] = [Type.Puback, Type.Pubrec, Type.Pubrel, Type.Pubcomp];

/** Every MQTT v5 property, in identifier order (spec table 2-4). The encoder writes them in this order. */
export const PROPERTIES: readonly PropertyDefinition[] = [
  define(0x01, "payloadFormatIndicator", T.Byte, [Type.Publish, "will"]),
  define(0x02, "messageExpiryInterval", T.FourByteInteger, [Type.Publish, "will"]),
  define(0x03, "contentType", T.Utf8String, [Type.Publish, "will"]),
  define(0x08, "responseTopic", T.Utf8String, [Type.Publish, "will"]),
  define(0x09, "correlationData", T.BinaryData, [Type.Publish, "will"]),
  define(0x0b, "subscriptionIdentifier", T.VariableByteInteger, [Type.Publish, Type.Subscribe]),
  define(0x11, "sessionExpiryInterval", T.FourByteInteger, [Type.Connect, Type.Connack, Type.Disconnect]),
  define(0x12, "assignedClientIdentifier", T.Utf8String, [Type.Connack]),
  define(0x13, "serverKeepAlive", T.TwoByteInteger, [Type.Connack]),
  define(0x15, "authenticationMethod", T.Utf8String, [Type.Connect, Type.Connack, Type.Auth]),
  define(0x16, "authenticationData", T.BinaryData, [Type.Connect, Type.Connack, Type.Auth]),
  define(0x17, "requestProblemInformation", T.Byte, [Type.Connect]),
  define(0x18, "willDelayInterval", T.FourByteInteger, ["will"]),
  define(0x19, "requestResponseInformation", T.Byte, [Type.Connect]),
  define(0x1a, "responseInformation", T.Utf8String, [Type.Connack]),
  define(0x1c, "serverReference", T.Utf8String, [Type.Connack, Type.Disconnect]),
  define(0x1f, "reasonString", T.Utf8String, [
    Type.Connack,
    ...ACKS,
    Type.Suback,
    Type.Unsuback,
    Type.Disconnect,
    Type.Auth,
  ]),
  define(0x21, "receiveMaximum", T.TwoByteInteger, [Type.Connect, Type.Connack]),
  define(0x22, "topicAliasMaximum", T.TwoByteInteger, [Type.Connect, Type.Connack]),
  define(0x23, "topicAlias", T.TwoByteInteger, [Type.Publish]),
  define(0x24, "maximumQoS", T.Byte, [Type.Connack]),
  define(0x25, "retainAvailable", T.Byte, [Type.Connack]),
  define(0x26, "userProperties", T.Utf8StringPair, [
    Type.Connect,
    Type.Connack,
    Type.Publish,
    "will",
    ...ACKS,
    Type.Subscribe,
    Type.Suback,
    Type.Unsubscribe,
    Type.Unsuback,
    Type.Disconnect,
    Type.Auth,
  ]),
  define(0x27, "maximumPacketSize", T.FourByteInteger, [Type.Connect, Type.Connack]),
  define(0x28, "wildcardSubscriptionAvailable", T.Byte, [Type.Connack]),
  define(0x29, "subscriptionIdentifierAvailable", T.Byte, [Type.Connack]),
  define(0x2a, "sharedSubscriptionAvailable", T.Byte, [Type.Connack]),
];

const BY_ID: (PropertyDefinition | undefined)[] = new Array(0x80);
for (const definition of PROPERTIES) BY_ID[definition.id] = definition;

/**
 * Looks a property up by identifier.
 *
 * @param id The property identifier.
 * @returns Its definition, or `undefined` for an unknown identifier.
 *
 * @example Naming a property
 * ```ts
 * import assert from "node:assert/strict";
 * import { propertyById } from "./properties.ts";
 *
 * assert.equal(propertyById(0x23)?.name, "topicAlias");
 * ```
 */
export function propertyById(id: number): PropertyDefinition | undefined {
  return BY_ID[id];
}

/**
 * Appends the Property Length and the properties allowed in `target` (others, and undefined values,
 * are skipped), in identifier order.
 *
 * @param properties The properties, or `undefined` for none (a single zero byte is written).
 * @param target The packet type, or `"will"`.
 * @param out The writer.
 * @returns The Property Length written (0 when there were no properties).
 * @throws {RangeError} If a string, binary value or the total does not fit its length field.
 *
 * @example Encoding a topic alias
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodeProperties } from "./properties.ts";
 * import { ByteWriter } from "./writer.ts";
 *
 * const out = new ByteWriter();
 * encodeProperties({ topicAlias: 1 }, 3, out);
 * // Property length 3, then id 0x23 (35) and the alias as two bytes.
 * assert.deepEqual(out.toBytes(), new Uint8Array([3, 35, 0, 1]));
 * ```
 */
export function encodeProperties(
  properties: Properties | undefined,
  target: PropertyTarget,
  out: ByteWriter,
): number {
  // Reserve one byte for the Property Length and shift the rest if it turns out to need more.
  out.ensure(1);
  const lengthAt = out.length++;
  if (properties !== undefined) {
    const mask = propertyTargetBit(target);
    for (const definition of PROPERTIES) {
      const value = properties[definition.name];
      if (value === undefined || (definition.mask & mask) === 0) continue;
      writeProperty(definition, value, out);
    }
  }
  const length = out.length - lengthAt - 1;
  const size = varintSize(length);
  if (size > 1) {
    if (length > 268_435_455) throw new RangeError(`Properties too long: ${length} bytes`);
    out.ensure(size - 1);
    out.buffer.copyWithin(lengthAt + size, lengthAt + 1, out.length);
    out.length += size - 1;
  }
  writeVarintAt(out.buffer, lengthAt, length);
  return length;
}

function writeProperty(
  definition: PropertyDefinition,
  value: NonNullable<Properties[keyof Properties]>,
  out: ByteWriter,
): void {
  const id = definition.id;
  switch (definition.type) {
    case T.Byte:
      out.u8(id);
      out.u8(value as number);
      break;
    case T.TwoByteInteger:
      out.u8(id);
      out.u16(value as number);
      break;
    case T.FourByteInteger:
      out.u8(id);
      out.u32(value as number);
      break;
    case T.VariableByteInteger:
      // Only the Subscription Identifier has this type, and it is a list.
      for (const identifier of value as number[]) {
        out.u8(id);
        out.varint(identifier);
      }
      break;
    case T.Utf8String:
      out.u8(id);
      out.utf8(value as string);
      break;
    case T.BinaryData:
      out.u8(id);
      out.binary(value as Uint8Array);
      break;
    case T.Utf8StringPair:
      for (const [name, text] of value as UserProperty[]) {
        out.u8(id);
        out.utf8(name);
        out.utf8(text);
      }
      break;
  }
}

/**
 * Reads a Property Length and the properties after it, advancing the reader past them. Used by the
 * packet decoders; see {@linkcode decodeProperties} for a standalone form.
 *
 * @param reader The reader, positioned at the Property Length.
 * @param mask The target's bit, from {@linkcode propertyTargetBit}.
 * @param packetType The packet type (decides whether Subscription Identifiers may repeat).
 * @returns The properties, `undefined` if the Property Length is 0, or a reason code.
 */
export function readProperties(
  reader: ByteReader,
  mask: number,
  packetType: PacketType,
): Properties | undefined | number {
  const length = reader.varint();
  if (length < 0) return ReasonCode.MalformedPacket;
  if (length === 0) return undefined;
  const end = reader.position + length;
  if (end > reader.end) return ReasonCode.MalformedPacket;
  const outerEnd = reader.end;
  // Clamp reads to the property block so a value cannot run into the payload.
  reader.end = end;
  const result = readPropertyList(reader, mask, packetType);
  reader.end = outerEnd;
  return result;
}

function flag(value: number): number {
  // Byte properties that are booleans on the wire: anything but 0 or 1 is a Protocol Error (-2);
  // -1 (end of data) passes through as malformed.
  return value === 0 || value === 1 || value === -1 ? value : -2;
}

function readPropertyList(reader: ByteReader, mask: number, packetType: PacketType): Properties | number {
  const properties: Properties = {};
  const malformed = ReasonCode.MalformedPacket;
  const protocolError = ReasonCode.ProtocolError;
  while (reader.position < reader.end) {
    const id = reader.u8();
    const definition = BY_ID[id];
    // Unknown identifiers and properties not allowed in this packet are malformed (spec 2.2.2.2).
    if (definition === undefined || (definition.mask & mask) === 0) return malformed;
    // "It is a Protocol Error to include <property> more than once" (spec 3.1.2.11 and on), for every
    // property but User Property and, in PUBLISH only, Subscription Identifier.
    if (
      id !== 0x26 && properties[definition.name] !== undefined &&
      !(id === 0x0b && packetType === Type.Publish)
    ) {
      return protocolError;
    }
    let n: number;
    let s: string | number;
    switch (id) {
      case 0x01:
        n = flag(reader.u8());
        if (n < 0) return n === -1 ? malformed : protocolError;
        properties.payloadFormatIndicator = n;
        break;
      case 0x02:
        n = reader.u32();
        if (n < 0) return malformed;
        properties.messageExpiryInterval = n;
        break;
      case 0x03:
        s = reader.utf8();
        if (typeof s === "number") return s;
        properties.contentType = s;
        break;
      case 0x08:
        s = reader.utf8();
        if (typeof s === "number") return s;
        // A Topic Name (spec 3.3.2.3.5, 3.1.3.2.5): the same rule as every Topic Name field.
        n = topicNameError(s);
        if (n !== 0) return n;
        properties.responseTopic = s;
        break;
      case 0x09: {
        const data = reader.binaryCopy();
        if (data === undefined) return malformed;
        properties.correlationData = data;
        break;
      }
      case 0x0b:
        n = reader.varint();
        if (n < 0) return malformed;
        if (n === 0) return protocolError; // 1..268435455 (spec 3.3.2.3.8, 3.8.2.1.2)
        if (properties.subscriptionIdentifier === undefined) properties.subscriptionIdentifier = [n];
        else properties.subscriptionIdentifier.push(n);
        break;
      case 0x11:
        n = reader.u32();
        if (n < 0) return malformed;
        properties.sessionExpiryInterval = n;
        break;
      case 0x12:
        s = reader.utf8();
        if (typeof s === "number") return s;
        properties.assignedClientIdentifier = s;
        break;
      case 0x13:
        n = reader.u16();
        if (n < 0) return malformed;
        properties.serverKeepAlive = n;
        break;
      case 0x15:
        s = reader.utf8();
        if (typeof s === "number") return s;
        properties.authenticationMethod = s;
        break;
      case 0x16: {
        const data = reader.binaryCopy();
        if (data === undefined) return malformed;
        properties.authenticationData = data;
        break;
      }
      case 0x17:
        n = flag(reader.u8());
        if (n < 0) return n === -1 ? malformed : protocolError;
        properties.requestProblemInformation = n;
        break;
      case 0x18:
        n = reader.u32();
        if (n < 0) return malformed;
        properties.willDelayInterval = n;
        break;
      case 0x19:
        n = flag(reader.u8());
        if (n < 0) return n === -1 ? malformed : protocolError;
        properties.requestResponseInformation = n;
        break;
      case 0x1a:
        s = reader.utf8();
        if (typeof s === "number") return s;
        properties.responseInformation = s;
        break;
      case 0x1c:
        s = reader.utf8();
        if (typeof s === "number") return s;
        properties.serverReference = s;
        break;
      case 0x1f:
        s = reader.utf8();
        if (typeof s === "number") return s;
        properties.reasonString = s;
        break;
      case 0x21:
        n = reader.u16();
        if (n < 0) return malformed;
        if (n === 0) return protocolError; // Receive Maximum 0 (spec 3.1.2.11.3, 3.2.2.3.3)
        properties.receiveMaximum = n;
        break;
      case 0x22:
        n = reader.u16();
        if (n < 0) return malformed;
        properties.topicAliasMaximum = n;
        break;
      case 0x23:
        n = reader.u16();
        if (n < 0) return malformed;
        if (n === 0) return ReasonCode.TopicAliasInvalid; // [MQTT-3.3.2-8]
        properties.topicAlias = n;
        break;
      case 0x24:
        n = flag(reader.u8());
        if (n < 0) return n === -1 ? malformed : protocolError;
        properties.maximumQoS = n;
        break;
      case 0x25:
        n = flag(reader.u8());
        if (n < 0) return n === -1 ? malformed : protocolError;
        properties.retainAvailable = n;
        break;
      case 0x26: {
        const name = reader.utf8();
        if (typeof name === "number") return name;
        const value = reader.utf8();
        if (typeof value === "number") return value;
        const pair: UserProperty = [name, value];
        if (properties.userProperties === undefined) properties.userProperties = [pair];
        else properties.userProperties.push(pair);
        break;
      }
      case 0x27:
        n = reader.u32();
        if (n < 0) return malformed;
        if (n === 0) return protocolError; // Maximum Packet Size 0 (spec 3.1.2.11.4, 3.2.2.3.6)
        properties.maximumPacketSize = n;
        break;
      case 0x28:
        n = flag(reader.u8());
        if (n < 0) return n === -1 ? malformed : protocolError;
        properties.wildcardSubscriptionAvailable = n;
        break;
      case 0x29:
        n = flag(reader.u8());
        if (n < 0) return n === -1 ? malformed : protocolError;
        properties.subscriptionIdentifierAvailable = n;
        break;
      case 0x2a:
        n = flag(reader.u8());
        if (n < 0) return n === -1 ? malformed : protocolError;
        properties.sharedSubscriptionAvailable = n;
        break;
    }
  }
  return properties;
}

/** A successful {@linkcode decodeProperties} result. */
export interface DecodedProperties {
  /** The properties; empty when the Property Length was 0. */
  properties: Properties;
  /** The position after the property block. */
  end: number;
}

const standaloneReader = new ByteReader();

/**
 * Decodes a Property Length and the properties after it, enforcing the v5 rules: unknown identifiers,
 * properties not allowed in `target` and blocks running past the end are Malformed (0x81); repeats
 * (except User Property, and Subscription Identifier in PUBLISH), zero Receive Maximum, Maximum Packet
 * Size or Subscription Identifier, and boolean bytes other than 0 or 1 are a Protocol Error (0x82);
 * Topic Alias 0 is Topic Alias Invalid (0x94).
 *
 * @param body The bytes.
 * @param offset The position of the Property Length.
 * @param target The packet type, or `"will"`.
 * @returns The properties and the position after them, or a reason code.
 *
 * @example Decoding user properties
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeProperties } from "./properties.ts";
 *
 * const bytes = new Uint8Array([7, 0x26, 0, 1, 0x6b, 0, 1, 0x76]);
 * assert.deepEqual(decodeProperties(bytes, 0, 3), { properties: { userProperties: [["k", "v"]] }, end: 8 });
 * ```
 */
export function decodeProperties(
  body: Uint8Array,
  offset: number,
  target: PropertyTarget,
): DecodedProperties | number {
  const reader = standaloneReader.reset(body, offset);
  const packetType: PacketType = target === "will" ? Type.Reserved : target;
  const result = readProperties(reader, propertyTargetBit(target), packetType);
  const end = reader.position;
  standaloneReader.reset(EMPTY_BODY);
  if (typeof result === "number") return result;
  return { properties: result ?? {}, end };
}

const EMPTY_BODY = new Uint8Array(0);

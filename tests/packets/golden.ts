/**
 * The golden table: MQTT packets as bytes, with the packet they decode to (and encode from) or the
 * reason code they must be rejected with. Shared by the codec and framer tests.
 *
 * Bytes are written with small helpers (`utf8`, `u16`, `frame`, ...) whose arithmetic is independent
 * of the codec; the property helpers in `P` spell out the identifiers from spec table 2-4.
 *
 * Conventions of decoded packets: `fixedHeader.remaining` is left out here (the tests check it equals
 * the body length, then drop it); PUBLISH always has `dup`, `qos` and `retain`; `properties` appear
 * only when the packet carries some; v5 acks, DISCONNECT and AUTH always have `reasonCode`; SUBSCRIBE
 * entries always have all four options.
 *
 * @module
 */

import type {
  ConnectParams,
  Packet,
  PacketType,
  Properties,
  ProtocolVersion,
  Subscription,
} from "../../src/packets/mod.ts";

/** One golden case. */
export interface GoldenCase {
  /** What the case shows. */
  name: string;
  /** The protocol level to decode and encode with. */
  version: ProtocolVersion;
  /** The whole packet on the wire. */
  bytes: number[];
  /** The packet the bytes decode to and encode from. */
  packet?: Packet;
  /** The reason code the framer or decoder must return instead. */
  error?: number;
  /** Only check decoding (the encoder writes a shorter or different form). */
  decodeOnly?: boolean;
  /** Only check encoding (the bytes decode to something else, e.g. without v5 fields). */
  encodeOnly?: boolean;
}

const textEncoder = new TextEncoder();

/** A UTF-8 Encoded String: two-byte length and the bytes. */
export function utf8(text: string): number[] {
  const bytes = textEncoder.encode(text);
  return [bytes.length >> 8, bytes.length & 0xff, ...bytes];
}

/** A two-byte length and the given raw bytes (Binary Data, or a hand-made ill-formed string). */
export function bin(...bytes: number[]): number[] {
  return [bytes.length >> 8, bytes.length & 0xff, ...bytes];
}

/** A big-endian two-byte integer. */
export function u16(value: number): number[] {
  return [value >> 8, value & 0xff];
}

/** A big-endian four-byte integer. */
export function u32(value: number): number[] {
  return [(value >>> 24) & 0xff, (value >>> 16) & 0xff, (value >>> 8) & 0xff, value & 0xff];
}

/** A Variable Byte Integer. */
export function varint(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value % 128;
    value = Math.floor(value / 128);
    if (value > 0) byte |= 0x80;
    out.push(byte);
  } while (value > 0);
  return out;
}

/** Bytes, byte lists and byte arrays, joined. */
function join(parts: (number | number[] | Uint8Array)[]): number[] {
  const out: number[] = [];
  for (const part of parts) {
    if (typeof part === "number") out.push(part);
    else out.push(...part);
  }
  return out;
}

/** A whole packet: first byte, Remaining Length, body. */
export function frame(first: number, ...parts: (number | number[] | Uint8Array)[]): number[] {
  const body = join(parts);
  return [first, ...varint(body.length), ...body];
}

/** A property block: Property Length, then the properties. */
export function props(...parts: (number | number[] | Uint8Array)[]): number[] {
  const body = join(parts);
  return [...varint(body.length), ...body];
}

/** The bytes of a string, for payloads and binary properties. */
function data(text: string): Uint8Array {
  return textEncoder.encode(text);
}

/** Property encodings by name, identifiers from spec table 2-4. */
export const P = {
  payloadFormatIndicator: (v: number): number[] => [0x01, v],
  messageExpiryInterval: (v: number): number[] => [0x02, ...u32(v)],
  contentType: (v: string): number[] => [0x03, ...utf8(v)],
  responseTopic: (v: string): number[] => [0x08, ...utf8(v)],
  correlationData: (v: string): number[] => [0x09, ...utf8(v)],
  subscriptionIdentifier: (v: number): number[] => [0x0b, ...varint(v)],
  sessionExpiryInterval: (v: number): number[] => [0x11, ...u32(v)],
  assignedClientIdentifier: (v: string): number[] => [0x12, ...utf8(v)],
  serverKeepAlive: (v: number): number[] => [0x13, ...u16(v)],
  authenticationMethod: (v: string): number[] => [0x15, ...utf8(v)],
  authenticationData: (v: string): number[] => [0x16, ...utf8(v)],
  requestProblemInformation: (v: number): number[] => [0x17, v],
  willDelayInterval: (v: number): number[] => [0x18, ...u32(v)],
  requestResponseInformation: (v: number): number[] => [0x19, v],
  responseInformation: (v: string): number[] => [0x1a, ...utf8(v)],
  serverReference: (v: string): number[] => [0x1c, ...utf8(v)],
  reasonString: (v: string): number[] => [0x1f, ...utf8(v)],
  receiveMaximum: (v: number): number[] => [0x21, ...u16(v)],
  topicAliasMaximum: (v: number): number[] => [0x22, ...u16(v)],
  topicAlias: (v: number): number[] => [0x23, ...u16(v)],
  maximumQoS: (v: number): number[] => [0x24, v],
  retainAvailable: (v: number): number[] => [0x25, v],
  userProperty: (k: string, v: string): number[] => [0x26, ...utf8(k), ...utf8(v)],
  maximumPacketSize: (v: number): number[] => [0x27, ...u32(v)],
  wildcardSubscriptionAvailable: (v: number): number[] => [0x28, v],
  subscriptionIdentifierAvailable: (v: number): number[] => [0x29, v],
  sharedSubscriptionAvailable: (v: number): number[] => [0x2a, v],
};

type ConnectFields = Omit<ConnectParams, "protocolName" | "protocolVersion">;

function connectPacket(version: ProtocolVersion, fields: ConnectFields, properties?: Properties): Packet {
  const packet: Packet = {
    fixedHeader: { type: 1 },
    protocolVersion: version,
    connect: { protocolName: version === 3 ? "MQIsdp" : "MQTT", protocolVersion: version, ...fields },
  };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function connectHead(version: ProtocolVersion, flags: number, keepAlive = 60): number[] {
  return [...utf8(version === 3 ? "MQIsdp" : "MQTT"), version, flags, ...u16(keepAlive)];
}

function publish(
  qos: 0 | 1 | 2,
  topicName: string,
  payload: string | Uint8Array,
  extra: { dup?: boolean; retain?: boolean; packetId?: number; properties?: Properties } = {},
): Packet {
  const packet: Packet = {
    fixedHeader: { type: 3, dup: extra.dup ?? false, qos, retain: extra.retain ?? false },
    topicName,
  };
  if (extra.packetId !== undefined) packet.packetId = extra.packetId;
  if (extra.properties !== undefined) packet.properties = extra.properties;
  packet.payload = typeof payload === "string" ? data(payload) : payload;
  return packet;
}

function ack(type: PacketType, packetId: number, reasonCode?: number, properties?: Properties): Packet {
  const packet: Packet = { fixedHeader: { type }, packetId };
  if (reasonCode !== undefined) packet.reasonCode = reasonCode;
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function sub(filter: string, qos: 0 | 1 | 2, options: Partial<Subscription> = {}): Subscription {
  return { filter, qos, noLocal: false, retainAsPublished: false, retainHandling: 0, ...options };
}

function subscribe(packetId: number, filters: Subscription[], properties?: Properties): Packet {
  const packet: Packet = { fixedHeader: { type: 8 }, packetId, filters };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function unsubscribe(packetId: number, filters: string[], properties?: Properties): Packet {
  const packet: Packet = {
    fixedHeader: { type: 10 },
    packetId,
    filters: filters.map((filter): Subscription => ({ filter, qos: 0 })),
  };
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

function codes(type: PacketType, packetId: number, reasonCodes: number[], properties?: Properties): Packet {
  const packet: Packet = { fixedHeader: { type }, packetId };
  if (properties !== undefined) packet.properties = properties;
  packet.reasonCodes = reasonCodes;
  return packet;
}

function control(type: PacketType, reasonCode?: number, properties?: Properties): Packet {
  const packet: Packet = { fixedHeader: { type } };
  if (reasonCode !== undefined) packet.reasonCode = reasonCode;
  if (properties !== undefined) packet.properties = properties;
  return packet;
}

const MALFORMED = 0x81;
const PROTOCOL_ERROR = 0x82;
const UNSUPPORTED_VERSION = 0x84;
const TOPIC_NAME_INVALID = 0x90;
const TOPIC_ALIAS_INVALID = 0x94;

const payload200 = new Uint8Array(200).map((_, i) => i);
const payload20000 = new Uint8Array(20_000).map((_, i) => (i * 7) & 0xff);

// ---------------------------------------------------------------------------------------------
// CONNECT
// ---------------------------------------------------------------------------------------------

const connectCases: GoldenCase[] = [
  {
    name: "CONNECT v4 minimal",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x02), utf8("c1")),
    packet: connectPacket(4, { clean: true, keepAlive: 60, clientId: "c1", willFlag: false }),
  },
  {
    name: "CONNECT v4 literal bytes",
    version: 4,
    bytes: [0x10, 0x0e, 0, 4, 0x4d, 0x51, 0x54, 0x54, 4, 0x02, 0, 0x3c, 0, 2, 0x63, 0x31],
    packet: connectPacket(4, { clean: true, keepAlive: 60, clientId: "c1", willFlag: false }),
  },
  {
    name: "CONNECT v3 (MQIsdp) minimal",
    version: 3,
    bytes: frame(0x10, connectHead(3, 0x02, 30), utf8("c3")),
    packet: connectPacket(3, { clean: true, keepAlive: 30, clientId: "c3", willFlag: false }),
  },
  {
    name: "CONNECT v5 minimal",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x02), props(), utf8("c5")),
    packet: connectPacket(5, { clean: true, keepAlive: 60, clientId: "c5", willFlag: false }),
  },
  {
    name: "CONNECT v4 persistent session, empty client id, keep alive 0",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x00, 0), utf8("")),
    packet: connectPacket(4, { clean: false, keepAlive: 0, clientId: "", willFlag: false }),
  },
  {
    name: "CONNECT v4 keep alive 65535",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x02, 65535), utf8("k")),
    packet: connectPacket(4, { clean: true, keepAlive: 65535, clientId: "k", willFlag: false }),
  },
  {
    name: "CONNECT v4 username and password",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0xc2), utf8("c1"), utf8("user"), bin(1, 2, 3)),
    packet: connectPacket(4, {
      clean: true,
      keepAlive: 60,
      clientId: "c1",
      willFlag: false,
      username: "user",
      password: new Uint8Array([1, 2, 3]),
    }),
  },
  {
    name: "CONNECT v4 username only",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x82), utf8("c1"), utf8("user")),
    packet: connectPacket(4, {
      clean: true,
      keepAlive: 60,
      clientId: "c1",
      willFlag: false,
      username: "user",
    }),
  },
  {
    name: "CONNECT v4 will QoS 1 retained, username, password",
    version: 4,
    bytes: frame(
      0x10,
      connectHead(4, 0xee),
      utf8("c1"),
      utf8("will/t"),
      bin(0x62, 0x79, 0x65),
      utf8("u"),
      bin(0x70),
    ),
    packet: connectPacket(4, {
      clean: true,
      keepAlive: 60,
      clientId: "c1",
      willFlag: true,
      willTopic: "will/t",
      willPayload: data("bye"),
      willQos: 1,
      willRetain: true,
      username: "u",
      password: data("p"),
    }),
  },
  {
    name: "CONNECT v4 will QoS 2 not retained",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x16), utf8("c1"), utf8("w"), bin()),
    packet: connectPacket(4, {
      clean: true,
      keepAlive: 60,
      clientId: "c1",
      willFlag: true,
      willTopic: "w",
      willPayload: new Uint8Array(0),
      willQos: 2,
      willRetain: false,
    }),
  },
  {
    name: "CONNECT v4 will QoS 0",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x06), utf8("c1"), utf8("w"), bin(0x78)),
    packet: connectPacket(4, {
      clean: true,
      keepAlive: 60,
      clientId: "c1",
      willFlag: true,
      willTopic: "w",
      willPayload: data("x"),
      willQos: 0,
      willRetain: false,
    }),
  },
  {
    name: "CONNECT v3 will, username and password",
    version: 3,
    bytes: frame(0x10, connectHead(3, 0xcc), utf8("c3"), utf8("w"), bin(0x78), utf8("u"), bin(0x70)),
    packet: connectPacket(3, {
      clean: false,
      keepAlive: 60,
      clientId: "c3",
      willFlag: true,
      willTopic: "w",
      willPayload: data("x"),
      willQos: 1,
      willRetain: false,
      username: "u",
      password: data("p"),
    }),
  },
  {
    name: "CONNECT v5 every CONNECT property",
    version: 5,
    bytes: frame(
      0x10,
      connectHead(5, 0x02),
      props(
        P.sessionExpiryInterval(3600),
        P.authenticationMethod("SCRAM"),
        P.authenticationData("abc"),
        P.requestProblemInformation(0),
        P.requestResponseInformation(1),
        P.receiveMaximum(100),
        P.topicAliasMaximum(10),
        P.userProperty("a", "1"),
        P.userProperty("a", "2"),
        P.maximumPacketSize(1048576),
      ),
      utf8("c5"),
    ),
    packet: connectPacket(5, { clean: true, keepAlive: 60, clientId: "c5", willFlag: false }, {
      sessionExpiryInterval: 3600,
      authenticationMethod: "SCRAM",
      authenticationData: data("abc"),
      requestProblemInformation: 0,
      requestResponseInformation: 1,
      receiveMaximum: 100,
      topicAliasMaximum: 10,
      userProperties: [["a", "1"], ["a", "2"]],
      maximumPacketSize: 1048576,
    }),
  },
  {
    name: "CONNECT v5 will with every will property",
    version: 5,
    bytes: frame(
      0x10,
      connectHead(5, 0x2e),
      props(),
      utf8("c5"),
      props(
        P.payloadFormatIndicator(1),
        P.messageExpiryInterval(120),
        P.contentType("text/plain"),
        P.responseTopic("r/t"),
        P.correlationData("id"),
        P.willDelayInterval(5),
        P.userProperty("k", "v"),
      ),
      utf8("will/t"),
      bin(0x62, 0x79, 0x65),
    ),
    packet: connectPacket(5, {
      clean: true,
      keepAlive: 60,
      clientId: "c5",
      willFlag: true,
      willProperties: {
        payloadFormatIndicator: 1,
        messageExpiryInterval: 120,
        contentType: "text/plain",
        responseTopic: "r/t",
        correlationData: data("id"),
        willDelayInterval: 5,
        userProperties: [["k", "v"]],
      },
      willTopic: "will/t",
      willPayload: data("bye"),
      willQos: 1,
      willRetain: true,
    }),
  },
  {
    name: "CONNECT v5 will without will properties, username and password",
    version: 5,
    bytes: frame(
      0x10,
      connectHead(5, 0xd6),
      props(P.sessionExpiryInterval(10)),
      utf8("c5"),
      props(),
      utf8("w"),
      bin(0x78),
      utf8("u"),
      bin(0x70),
    ),
    packet: connectPacket(5, {
      clean: true,
      keepAlive: 60,
      clientId: "c5",
      willFlag: true,
      willTopic: "w",
      willPayload: data("x"),
      willQos: 2,
      willRetain: false,
      username: "u",
      password: data("p"),
    }, { sessionExpiryInterval: 10 }),
  },
  {
    name: "CONNECT v5 password without username is allowed",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x42), props(), utf8("c5"), bin(0x70)),
    packet: connectPacket(5, {
      clean: true,
      keepAlive: 60,
      clientId: "c5",
      willFlag: false,
      password: data("p"),
    }),
  },
  {
    name: "CONNECT v5 username only, clean start off",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x80, 0), props(), utf8("c5"), utf8("user")),
    packet: connectPacket(5, {
      clean: false,
      keepAlive: 0,
      clientId: "c5",
      willFlag: false,
      username: "user",
    }),
  },
  {
    name: "CONNECT v4 multi-byte UTF-8 client id",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x02), utf8("ü€😀")),
    packet: connectPacket(4, { clean: true, keepAlive: 60, clientId: "ü€😀", willFlag: false }),
  },
  {
    name: "CONNECT v4 keeps a leading BOM [MQTT-1.5.4-3]",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x02), bin(0xef, 0xbb, 0xbf, 0x61)),
    packet: connectPacket(4, { clean: true, keepAlive: 60, clientId: "\ufeffa", willFlag: false }),
  },
  {
    name: "CONNECT v4 long ASCII client id",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x02), utf8("client-0123456789-abcdefghijklmnop")),
    packet: connectPacket(4, {
      clean: true,
      keepAlive: 60,
      clientId: "client-0123456789-abcdefghijklmnop",
      willFlag: false,
    }),
  },
  {
    name: "CONNECT v3 encode ignores v5 properties",
    version: 3,
    bytes: frame(0x10, connectHead(3, 0x02), utf8("c3")),
    packet: connectPacket(3, { clean: true, keepAlive: 60, clientId: "c3", willFlag: false }, {
      sessionExpiryInterval: 5,
    }),
    encodeOnly: true,
  },
  // Errors.
  {
    name: "CONNECT unknown protocol name",
    version: 4,
    bytes: frame(0x10, utf8("MQTX"), 4, 0x02, u16(60), utf8("c")),
    error: UNSUPPORTED_VERSION,
  },
  {
    name: "CONNECT MQTT with level 3",
    version: 4,
    bytes: frame(0x10, utf8("MQTT"), 3, 0x02, u16(60), utf8("c")),
    error: UNSUPPORTED_VERSION,
  },
  {
    name: "CONNECT MQIsdp with level 4",
    version: 4,
    bytes: frame(0x10, utf8("MQIsdp"), 4, 0x02, u16(60), utf8("c")),
    error: UNSUPPORTED_VERSION,
  },
  {
    name: "CONNECT level 6",
    version: 5,
    bytes: frame(0x10, utf8("MQTT"), 6, 0x02, u16(60), props(), utf8("c")),
    error: UNSUPPORTED_VERSION,
  },
  {
    name: "CONNECT lowercase protocol name",
    version: 4,
    bytes: frame(0x10, utf8("mqtt"), 4, 0x02, u16(60), utf8("c")),
    error: UNSUPPORTED_VERSION,
  },
  {
    name: "CONNECT truncated protocol name",
    version: 4,
    bytes: frame(0x10, 0, 4, 0x4d, 0x51),
    error: MALFORMED,
  },
  { name: "CONNECT missing protocol level", version: 4, bytes: frame(0x10, utf8("MQTT")), error: MALFORMED },
  {
    name: "CONNECT missing keep alive",
    version: 4,
    bytes: frame(0x10, utf8("MQTT"), 4, 0x02, 0),
    error: MALFORMED,
  },
  {
    name: "CONNECT v4 reserved flag [MQTT-3.1.2-3]",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x03), utf8("c")),
    error: MALFORMED,
  },
  {
    name: "CONNECT v5 reserved flag [MQTT-3.1.2-3]",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x01), props(), utf8("c")),
    error: MALFORMED,
  },
  {
    name: "CONNECT will QoS 3",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x1e), utf8("c"), utf8("w"), bin()),
    error: MALFORMED,
  },
  {
    name: "CONNECT will QoS without will flag [MQTT-3.1.2-11]",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x0a), utf8("c")),
    error: MALFORMED,
  },
  {
    name: "CONNECT will retain without will flag [MQTT-3.1.2-13]",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x22), props(), utf8("c")),
    error: MALFORMED,
  },
  {
    name: "CONNECT v4 password without username [MQTT-3.1.2-22]",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x42), utf8("c"), bin(0x70)),
    error: MALFORMED,
  },
  {
    name: "CONNECT v3 password without username",
    version: 3,
    bytes: frame(0x10, connectHead(3, 0x42), utf8("c"), bin(0x70)),
    error: MALFORMED,
  },
  {
    name: "CONNECT v4 trailing bytes",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x02), utf8("c"), 0x00),
    error: MALFORMED,
  },
  {
    name: "CONNECT v5 trailing bytes",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x02), props(), utf8("c"), 0x01, 0x02),
    error: MALFORMED,
  },
  {
    name: "CONNECT client id runs past the end",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x02), 0, 5, 0x61),
    error: MALFORMED,
  },
  {
    name: "CONNECT missing client id",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x02)),
    error: MALFORMED,
  },
  {
    name: "CONNECT will flag without will topic",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x06), utf8("c")),
    error: MALFORMED,
  },
  {
    name: "CONNECT will payload truncated",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x06), utf8("c"), utf8("w"), 0, 3, 1),
    error: MALFORMED,
  },
  {
    name: "CONNECT username flag without username",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x82), utf8("c")),
    error: MALFORMED,
  },
  {
    name: "CONNECT password truncated",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0xc2), utf8("c"), utf8("u"), 0, 2, 1),
    error: MALFORMED,
  },
  {
    name: "CONNECT client id with U+0000 [MQTT-1.5.4-2]",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x02), bin(0x61, 0x00)),
    error: MALFORMED,
  },
  {
    name: "CONNECT client id with a UTF-8 surrogate [MQTT-1.5.4-1]",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x02), bin(0xed, 0xa0, 0x80)),
    error: MALFORMED,
  },
  {
    name: "CONNECT client id with byte 0xFF",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x02), bin(0x61, 0xff)),
    error: MALFORMED,
  },
  {
    name: "CONNECT username with overlong NUL (C0 80)",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x82), utf8("c"), bin(0xc0, 0x80)),
    error: MALFORMED,
  },
  {
    name: "CONNECT will topic with truncated UTF-8 sequence",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x06), utf8("c"), bin(0xe2, 0x82), bin()),
    error: MALFORMED,
  },
  {
    name: "CONNECT fixed header flags 0001",
    version: 4,
    bytes: frame(0x11, connectHead(4, 0x02), utf8("c")),
    error: MALFORMED,
  },
  {
    name: "CONNECT v5 Topic Alias not allowed",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x02), props(P.topicAlias(1)), utf8("c")),
    error: MALFORMED,
  },
  {
    name: "CONNECT v5 Will Delay Interval not allowed outside the will",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x02), props(P.willDelayInterval(1)), utf8("c")),
    error: MALFORMED,
  },
  {
    name: "CONNECT v5 Session Expiry Interval not allowed in will properties",
    version: 5,
    bytes: frame(
      0x10,
      connectHead(5, 0x06),
      props(),
      utf8("c"),
      props(P.sessionExpiryInterval(1)),
      utf8("w"),
      bin(),
    ),
    error: MALFORMED,
  },
  {
    name: "CONNECT v5 unknown property 0x7F",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x02), props(0x7f, 0), utf8("c")),
    error: MALFORMED,
  },
  {
    name: "CONNECT v5 property identifier 0",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x02), props(0x00, 0), utf8("c")),
    error: MALFORMED,
  },
  {
    name: "CONNECT v5 Property Length past the end",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x02), 20, P.sessionExpiryInterval(1)),
    error: MALFORMED,
  },
  {
    name: "CONNECT v5 property value past the Property Length",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x02), 3, P.sessionExpiryInterval(1), utf8("c")),
    error: MALFORMED,
  },
  {
    name: "CONNECT v5 Receive Maximum 0",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x02), props(P.receiveMaximum(0)), utf8("c")),
    error: PROTOCOL_ERROR,
  },
  {
    name: "CONNECT v5 Maximum Packet Size 0",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x02), props(P.maximumPacketSize(0)), utf8("c")),
    error: PROTOCOL_ERROR,
  },
  {
    name: "CONNECT v5 Request Problem Information 2",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x02), props(P.requestProblemInformation(2)), utf8("c")),
    error: PROTOCOL_ERROR,
  },
  {
    name: "CONNECT v5 Request Response Information 2",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x02), props(P.requestResponseInformation(2)), utf8("c")),
    error: PROTOCOL_ERROR,
  },
  {
    name: "CONNECT v5 will Payload Format Indicator 2",
    version: 5,
    bytes: frame(
      0x10,
      connectHead(5, 0x06),
      props(),
      utf8("c"),
      props(P.payloadFormatIndicator(2)),
      utf8("w"),
      bin(),
    ),
    error: PROTOCOL_ERROR,
  },
  {
    name: "CONNECT v5 Authentication Data without Authentication Method",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x02), props(P.authenticationData("x")), utf8("c")),
    error: PROTOCOL_ERROR,
  },
  {
    name: "CONNECT v5 user property value with U+0000",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x02), props(0x26, utf8("k"), bin(0x00)), utf8("c")),
    error: MALFORMED,
  },
];

// ---------------------------------------------------------------------------------------------
// CONNACK
// ---------------------------------------------------------------------------------------------

const connackCases: GoldenCase[] = [
  ...[0, 1, 2, 3, 4, 5].map((code): GoldenCase => ({
    name: `CONNACK v4 return code ${code}`,
    version: 4,
    bytes: [0x20, 0x02, 0x00, code],
    packet: { fixedHeader: { type: 2 }, sessionPresent: false, reasonCode: code },
  })),
  ...[0, 2, 5].map((code): GoldenCase => ({
    name: `CONNACK v3 return code ${code}`,
    version: 3,
    bytes: [0x20, 0x02, 0x00, code],
    packet: { fixedHeader: { type: 2 }, sessionPresent: false, reasonCode: code },
  })),
  {
    name: "CONNACK v4 session present",
    version: 4,
    bytes: [0x20, 0x02, 0x01, 0x00],
    packet: { fixedHeader: { type: 2 }, sessionPresent: true, reasonCode: 0 },
  },
  {
    name: "CONNACK v3 has no Session Present flag to encode",
    version: 3,
    bytes: [0x20, 0x02, 0x00, 0x00],
    packet: { fixedHeader: { type: 2 }, sessionPresent: true, reasonCode: 0 },
    encodeOnly: true,
  },
  {
    // Found by the fuzzer: decoding it as Session Present broke the encode/decode round trip.
    name: "CONNACK v3 reads no Session Present flag",
    version: 3,
    bytes: [0x20, 0x02, 0x01, 0x00],
    packet: { fixedHeader: { type: 2 }, sessionPresent: false, reasonCode: 0 },
    decodeOnly: true,
  },
  {
    name: "CONNACK v5 success without properties",
    version: 5,
    bytes: [0x20, 0x03, 0x00, 0x00, 0x00],
    packet: { fixedHeader: { type: 2 }, sessionPresent: false, reasonCode: 0 },
  },
  {
    name: "CONNACK v5 session present",
    version: 5,
    bytes: [0x20, 0x03, 0x01, 0x00, 0x00],
    packet: { fixedHeader: { type: 2 }, sessionPresent: true, reasonCode: 0 },
  },
  {
    name: "CONNACK v5 refused with a reason string",
    version: 5,
    bytes: frame(0x20, 0x00, 0x87, props(P.reasonString("no"))),
    packet: {
      fixedHeader: { type: 2 },
      sessionPresent: false,
      reasonCode: 0x87,
      properties: { reasonString: "no" },
    },
  },
  {
    name: "CONNACK v5 every CONNACK property",
    version: 5,
    bytes: frame(
      0x20,
      0x00,
      0x00,
      props(
        P.sessionExpiryInterval(7200),
        P.assignedClientIdentifier("auto-1"),
        P.serverKeepAlive(30),
        P.authenticationMethod("SCRAM"),
        P.authenticationData("srv"),
        P.responseInformation("resp/"),
        P.serverReference("other:1883"),
        P.reasonString("ok"),
        P.receiveMaximum(20),
        P.topicAliasMaximum(5),
        P.maximumQoS(1),
        P.retainAvailable(0),
        P.userProperty("x", "y"),
        P.maximumPacketSize(65536),
        P.wildcardSubscriptionAvailable(1),
        P.subscriptionIdentifierAvailable(0),
        P.sharedSubscriptionAvailable(1),
      ),
    ),
    packet: {
      fixedHeader: { type: 2 },
      sessionPresent: false,
      reasonCode: 0,
      properties: {
        sessionExpiryInterval: 7200,
        assignedClientIdentifier: "auto-1",
        serverKeepAlive: 30,
        authenticationMethod: "SCRAM",
        authenticationData: data("srv"),
        responseInformation: "resp/",
        serverReference: "other:1883",
        reasonString: "ok",
        receiveMaximum: 20,
        topicAliasMaximum: 5,
        maximumQoS: 1,
        retainAvailable: 0,
        userProperties: [["x", "y"]],
        maximumPacketSize: 65536,
        wildcardSubscriptionAvailable: 1,
        subscriptionIdentifierAvailable: 0,
        sharedSubscriptionAvailable: 1,
      },
    },
  },
  {
    name: "CONNACK v4 encode drops v5 properties",
    version: 4,
    bytes: [0x20, 0x02, 0x00, 0x00],
    packet: {
      fixedHeader: { type: 2 },
      sessionPresent: false,
      reasonCode: 0,
      properties: { reasonString: "x" },
    },
    encodeOnly: true,
  },
  {
    name: "CONNACK reserved acknowledge flag",
    version: 4,
    bytes: [0x20, 0x02, 0x02, 0x00],
    error: MALFORMED,
  },
  { name: "CONNACK v4 truncated", version: 4, bytes: [0x20, 0x01, 0x00], error: MALFORMED },
  { name: "CONNACK v4 trailing byte", version: 4, bytes: [0x20, 0x03, 0x00, 0x00, 0x00], error: MALFORMED },
  {
    name: "CONNACK v5 without Property Length",
    version: 5,
    bytes: [0x20, 0x02, 0x00, 0x00],
    error: MALFORMED,
  },
  { name: "CONNACK fixed header flags 0001", version: 4, bytes: [0x21, 0x02, 0x00, 0x00], error: MALFORMED },
  {
    name: "CONNACK v5 Maximum QoS 2",
    version: 5,
    bytes: frame(0x20, 0, 0, props(P.maximumQoS(2))),
    error: PROTOCOL_ERROR,
  },
  {
    name: "CONNACK v5 Retain Available 2",
    version: 5,
    bytes: frame(0x20, 0, 0, props(P.retainAvailable(2))),
    error: PROTOCOL_ERROR,
  },
  {
    name: "CONNACK v5 Wildcard Subscription Available 2",
    version: 5,
    bytes: frame(0x20, 0, 0, props(P.wildcardSubscriptionAvailable(2))),
    error: PROTOCOL_ERROR,
  },
  {
    name: "CONNACK v5 Subscription Identifier Available 2",
    version: 5,
    bytes: frame(0x20, 0, 0, props(P.subscriptionIdentifierAvailable(2))),
    error: PROTOCOL_ERROR,
  },
  {
    name: "CONNACK v5 Shared Subscription Available 255",
    version: 5,
    bytes: frame(0x20, 0, 0, props(P.sharedSubscriptionAvailable(255))),
    error: PROTOCOL_ERROR,
  },
  {
    name: "CONNACK v5 Receive Maximum 0",
    version: 5,
    bytes: frame(0x20, 0, 0, props(P.receiveMaximum(0))),
    error: PROTOCOL_ERROR,
  },
  {
    name: "CONNACK v5 Maximum Packet Size 0",
    version: 5,
    bytes: frame(0x20, 0, 0, props(P.maximumPacketSize(0))),
    error: PROTOCOL_ERROR,
  },
  {
    name: "CONNACK v5 Topic Alias not allowed",
    version: 5,
    bytes: frame(0x20, 0, 0, props(P.topicAlias(3))),
    error: MALFORMED,
  },
  {
    name: "CONNACK v5 Request Problem Information not allowed",
    version: 5,
    bytes: frame(0x20, 0, 0, props(P.requestProblemInformation(1))),
    error: MALFORMED,
  },
  {
    name: "CONNACK v5 assigned client id with surrogate",
    version: 5,
    bytes: frame(0x20, 0, 0, props(0x12, bin(0xed, 0xbf, 0xbf))),
    error: MALFORMED,
  },
];

// ---------------------------------------------------------------------------------------------
// PUBLISH
// ---------------------------------------------------------------------------------------------

const publishCases: GoldenCase[] = [
  {
    name: "PUBLISH v4 QoS 0",
    version: 4,
    bytes: frame(0x30, utf8("a/b"), data("hello")),
    packet: publish(0, "a/b", "hello"),
  },
  {
    name: "PUBLISH v4 QoS 0 literal bytes",
    version: 4,
    bytes: [0x30, 0x07, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x68, 0x69],
    packet: publish(0, "a/b", "hi"),
  },
  {
    name: "PUBLISH v4 QoS 1",
    version: 4,
    bytes: frame(0x32, utf8("a/b"), u16(7), data("x")),
    packet: publish(1, "a/b", "x", { packetId: 7 }),
  },
  {
    name: "PUBLISH v4 QoS 2 retained",
    version: 4,
    bytes: frame(0x35, utf8("t"), u16(65535), data("y")),
    packet: publish(2, "t", "y", { packetId: 65535, retain: true }),
  },
  {
    name: "PUBLISH v4 QoS 1 duplicate",
    version: 4,
    bytes: frame(0x3a, utf8("t"), u16(1), data("z")),
    packet: publish(1, "t", "z", { packetId: 1, dup: true }),
  },
  {
    name: "PUBLISH v4 QoS 2 duplicate retained",
    version: 4,
    bytes: frame(0x3d, utf8("t"), u16(2), data("z")),
    packet: publish(2, "t", "z", { packetId: 2, dup: true, retain: true }),
  },
  {
    name: "PUBLISH v4 retained empty payload (clears the retained message)",
    version: 4,
    bytes: frame(0x31, utf8("a/b")),
    packet: publish(0, "a/b", "", { retain: true }),
  },
  {
    name: "PUBLISH v3 QoS 1",
    version: 3,
    bytes: frame(0x32, utf8("old/topic"), u16(10), data("v3")),
    packet: publish(1, "old/topic", "v3", { packetId: 10 }),
  },
  {
    name: "PUBLISH v4 200-byte payload (two-byte Remaining Length)",
    version: 4,
    bytes: [0x30, 0xcd, 0x01, 0x00, 0x03, 0x61, 0x2f, 0x62, ...payload200],
    packet: publish(0, "a/b", payload200),
  },
  {
    name: "PUBLISH v4 20000-byte payload (three-byte Remaining Length)",
    version: 4,
    bytes: [0x30, 0xa3, 0x9c, 0x01, 0x00, 0x01, 0x78, ...payload20000],
    packet: publish(0, "x", payload20000),
  },
  {
    name: "PUBLISH v4 multi-byte UTF-8 topic",
    version: 4,
    bytes: frame(0x30, utf8("ü/€/😀"), data("u")),
    packet: publish(0, "ü/€/😀", "u"),
  },
  {
    name: "PUBLISH v4 topic starting with $",
    version: 4,
    bytes: frame(0x30, utf8("$SYS/x")),
    packet: publish(0, "$SYS/x", ""),
  },
  {
    name: "PUBLISH v5 QoS 0 without properties",
    version: 5,
    bytes: frame(0x30, utf8("a/b"), props(), data("hello")),
    packet: publish(0, "a/b", "hello"),
  },
  {
    name: "PUBLISH v5 QoS 1 without properties",
    version: 5,
    bytes: frame(0x32, utf8("a/b"), u16(300), props(), data("x")),
    packet: publish(1, "a/b", "x", { packetId: 300 }),
  },
  {
    name: "PUBLISH v5 QoS 2 retained",
    version: 5,
    bytes: frame(0x35, utf8("a"), u16(9), props(), data("x")),
    packet: publish(2, "a", "x", { packetId: 9, retain: true }),
  },
  {
    name: "PUBLISH v5 every PUBLISH property",
    version: 5,
    bytes: frame(
      0x32,
      utf8("req/1"),
      u16(5),
      props(
        P.payloadFormatIndicator(1),
        P.messageExpiryInterval(60),
        P.contentType("application/json"),
        P.responseTopic("resp/1"),
        P.correlationData("c-1"),
        P.subscriptionIdentifier(3),
        P.topicAlias(4),
        P.userProperty("trace", "abc"),
      ),
      data("{}"),
    ),
    packet: publish(1, "req/1", "{}", {
      packetId: 5,
      properties: {
        payloadFormatIndicator: 1,
        messageExpiryInterval: 60,
        contentType: "application/json",
        responseTopic: "resp/1",
        correlationData: data("c-1"),
        subscriptionIdentifier: [3],
        topicAlias: 4,
        userProperties: [["trace", "abc"]],
      },
    }),
  },
  {
    name: "PUBLISH v5 Payload Format Indicator 0",
    version: 5,
    bytes: frame(0x30, utf8("t"), props(P.payloadFormatIndicator(0)), 0xff),
    packet: publish(0, "t", new Uint8Array([0xff]), { properties: { payloadFormatIndicator: 0 } }),
  },
  {
    name: "PUBLISH v5 Message Expiry Interval 0xFFFFFFFF",
    version: 5,
    bytes: frame(0x30, utf8("t"), props(P.messageExpiryInterval(0xffffffff))),
    packet: publish(0, "t", "", { properties: { messageExpiryInterval: 0xffffffff } }),
  },
  {
    name: "PUBLISH v5 Content Type",
    version: 5,
    bytes: frame(0x30, utf8("t"), props(P.contentType("text/plain; charset=utf-8"))),
    packet: publish(0, "t", "", { properties: { contentType: "text/plain; charset=utf-8" } }),
  },
  {
    name: "PUBLISH v5 Response Topic and Correlation Data",
    version: 5,
    bytes: frame(0x32, utf8("t"), u16(1), props(P.responseTopic("r"), P.correlationData("")), data("q")),
    packet: publish(1, "t", "q", {
      packetId: 1,
      properties: { responseTopic: "r", correlationData: new Uint8Array(0) },
    }),
  },
  {
    name: "PUBLISH v5 several Subscription Identifiers",
    version: 5,
    bytes: frame(
      0x30,
      utf8("t"),
      props(P.subscriptionIdentifier(1), P.subscriptionIdentifier(200), P.subscriptionIdentifier(268435455)),
      data("m"),
    ),
    packet: publish(0, "t", "m", { properties: { subscriptionIdentifier: [1, 200, 268435455] } }),
  },
  {
    name: "PUBLISH v5 user properties keep their order and repeats",
    version: 5,
    bytes: frame(
      0x30,
      utf8("t"),
      props(
        P.userProperty("b", "1"),
        P.userProperty("a", "2"),
        P.userProperty("b", "3"),
        P.userProperty("", ""),
      ),
    ),
    packet: publish(0, "t", "", {
      properties: { userProperties: [["b", "1"], ["a", "2"], ["b", "3"], ["", ""]] },
    }),
  },
  {
    name: "PUBLISH v5 topic alias with the topic",
    version: 5,
    bytes: frame(0x30, utf8("long/topic"), props(P.topicAlias(1)), data("a")),
    packet: publish(0, "long/topic", "a", { properties: { topicAlias: 1 } }),
  },
  {
    name: "PUBLISH v5 topic alias with an empty topic",
    version: 5,
    bytes: frame(0x32, utf8(""), u16(2), props(P.topicAlias(65535)), data("b")),
    packet: publish(1, "", "b", { packetId: 2, properties: { topicAlias: 65535 } }),
  },
  {
    name: "PUBLISH v5 large user property (two-byte Property Length)",
    version: 5,
    bytes: frame(0x30, utf8("t"), props(P.userProperty("k", "v".repeat(150)))),
    packet: publish(0, "t", "", { properties: { userProperties: [["k", "v".repeat(150)]] } }),
  },
  {
    name: "PUBLISH v4 encode drops v5 properties",
    version: 4,
    bytes: frame(0x30, utf8("t"), data("p")),
    packet: publish(0, "t", "p", { properties: { topicAlias: 1, userProperties: [["a", "b"]] } }),
    encodeOnly: true,
  },
  {
    name: "PUBLISH v5 encode skips properties PUBLISH cannot carry",
    version: 5,
    bytes: frame(0x30, utf8("t"), props(P.contentType("c")), data("p")),
    packet: publish(0, "t", "p", {
      properties: { sessionExpiryInterval: 5, contentType: "c", reasonString: "r" },
    }),
    encodeOnly: true,
  },
  // Errors.
  {
    name: "PUBLISH v4 QoS 3 [MQTT-3.3.1-4]",
    version: 4,
    bytes: frame(0x36, utf8("t"), u16(1)),
    error: MALFORMED,
  },
  {
    name: "PUBLISH v5 QoS 3 [MQTT-3.3.1-4]",
    version: 5,
    bytes: frame(0x36, utf8("t"), u16(1), props()),
    error: MALFORMED,
  },
  {
    name: "PUBLISH v4 DUP with QoS 0 [MQTT-3.3.1-2]",
    version: 4,
    bytes: frame(0x38, utf8("t")),
    error: PROTOCOL_ERROR,
  },
  {
    name: "PUBLISH v5 DUP with QoS 0 [MQTT-3.3.1-2]",
    version: 5,
    bytes: frame(0x38, utf8("t"), props()),
    error: PROTOCOL_ERROR,
  },
  {
    name: "PUBLISH v4 topic with + [MQTT-3.3.2-2]",
    version: 4,
    bytes: frame(0x30, utf8("a/+/b")),
    error: TOPIC_NAME_INVALID,
  },
  {
    name: "PUBLISH v4 topic with # [MQTT-3.3.2-2]",
    version: 4,
    bytes: frame(0x30, utf8("a/#")),
    error: TOPIC_NAME_INVALID,
  },
  {
    name: "PUBLISH v5 topic with + [MQTT-3.3.2-2]",
    version: 5,
    bytes: frame(0x30, utf8("+"), props()),
    error: TOPIC_NAME_INVALID,
  },
  { name: "PUBLISH v3 topic with #", version: 3, bytes: frame(0x30, utf8("#")), error: TOPIC_NAME_INVALID },
  {
    name: "PUBLISH v4 QoS 1 packet id 0 [MQTT-2.2.1-3]",
    version: 4,
    bytes: frame(0x32, utf8("t"), u16(0)),
    error: PROTOCOL_ERROR,
  },
  {
    name: "PUBLISH v5 QoS 2 packet id 0 [MQTT-2.2.1-3]",
    version: 5,
    bytes: frame(0x34, utf8("t"), u16(0), props()),
    error: PROTOCOL_ERROR,
  },
  {
    name: "PUBLISH v4 empty topic",
    version: 4,
    bytes: frame(0x30, utf8(""), data("x")),
    error: TOPIC_NAME_INVALID,
  },
  { name: "PUBLISH v3 empty topic", version: 3, bytes: frame(0x30, utf8("")), error: TOPIC_NAME_INVALID },
  {
    name: "PUBLISH v5 empty topic without a topic alias",
    version: 5,
    bytes: frame(0x30, utf8(""), props(), data("x")),
    error: PROTOCOL_ERROR,
  },
  {
    name: "PUBLISH v5 Topic Alias 0",
    version: 5,
    bytes: frame(0x30, utf8("t"), props(P.topicAlias(0))),
    error: TOPIC_ALIAS_INVALID,
  },
  {
    name: "PUBLISH v5 Subscription Identifier 0",
    version: 5,
    bytes: frame(0x30, utf8("t"), props(P.subscriptionIdentifier(0))),
    error: PROTOCOL_ERROR,
  },
  {
    name: "PUBLISH v5 Subscription Identifier of five bytes",
    version: 5,
    bytes: frame(0x30, utf8("t"), props(0x0b, 0x80, 0x80, 0x80, 0x80, 0x01)),
    error: MALFORMED,
  },
  {
    name: "PUBLISH v5 Payload Format Indicator 2",
    version: 5,
    bytes: frame(0x30, utf8("t"), props(P.payloadFormatIndicator(2))),
    error: PROTOCOL_ERROR,
  },
  {
    name: "PUBLISH v5 Session Expiry Interval not allowed",
    version: 5,
    bytes: frame(0x30, utf8("t"), props(P.sessionExpiryInterval(1))),
    error: MALFORMED,
  },
  {
    name: "PUBLISH v5 Reason String not allowed",
    version: 5,
    bytes: frame(0x30, utf8("t"), props(P.reasonString("r"))),
    error: MALFORMED,
  },
  {
    name: "PUBLISH v5 Will Delay Interval not allowed",
    version: 5,
    bytes: frame(0x30, utf8("t"), props(P.willDelayInterval(1))),
    error: MALFORMED,
  },
  {
    name: "PUBLISH v5 Property Length past the end",
    version: 5,
    bytes: frame(0x30, utf8("t"), 9, P.topicAlias(1)),
    error: MALFORMED,
  },
  {
    name: "PUBLISH v5 truncated Property Length",
    version: 5,
    bytes: frame(0x32, utf8("t"), u16(1)),
    error: MALFORMED,
  },
  {
    name: "PUBLISH v5 Message Expiry Interval cut by the Property Length",
    version: 5,
    bytes: frame(0x30, utf8("t"), 3, P.messageExpiryInterval(1)),
    error: MALFORMED,
  },
  { name: "PUBLISH v4 truncated topic", version: 4, bytes: frame(0x30, 0, 9, 0x61), error: MALFORMED },
  { name: "PUBLISH v4 empty body", version: 4, bytes: [0x30, 0x00], error: MALFORMED },
  { name: "PUBLISH v4 QoS 1 without packet id", version: 4, bytes: frame(0x32, utf8("t")), error: MALFORMED },
  {
    name: "PUBLISH v4 QoS 1 with half a packet id",
    version: 4,
    bytes: frame(0x32, utf8("t"), 0x01),
    error: MALFORMED,
  },
  {
    name: "PUBLISH v4 topic with U+0000 [MQTT-1.5.4-2]",
    version: 4,
    bytes: frame(0x30, bin(0x61, 0x00, 0x62)),
    error: MALFORMED,
  },
  {
    name: "PUBLISH v4 topic with an encoded surrogate (ED A0 80) [MQTT-1.5.4-1]",
    version: 4,
    bytes: frame(0x30, bin(0x61, 0xed, 0xa0, 0x80)),
    error: MALFORMED,
  },
  {
    name: "PUBLISH v5 topic with a lone continuation byte",
    version: 5,
    bytes: frame(0x30, bin(0x80), props()),
    error: MALFORMED,
  },
  {
    name: "PUBLISH v5 Content Type with U+0000",
    version: 5,
    bytes: frame(0x30, utf8("t"), props(0x03, bin(0x00))),
    error: MALFORMED,
  },
  {
    name: "PUBLISH v5 user property name with bad UTF-8",
    version: 5,
    bytes: frame(0x30, utf8("t"), props(0x26, bin(0xc3), utf8("v"))),
    error: MALFORMED,
  },
];

// ---------------------------------------------------------------------------------------------
// PUBACK, PUBREC, PUBREL, PUBCOMP
// ---------------------------------------------------------------------------------------------

const ACK_TYPES: [name: string, type: PacketType, first: number][] = [
  ["PUBACK", 4, 0x40],
  ["PUBREC", 5, 0x50],
  ["PUBREL", 6, 0x62],
  ["PUBCOMP", 7, 0x70],
];

const ACK_CODES: Record<string, number> = { PUBACK: 0x10, PUBREC: 0x80, PUBREL: 0x92, PUBCOMP: 0x92 };

const ackCases: GoldenCase[] = [
  ...ACK_TYPES.map(([name, type, first]): GoldenCase => ({
    name: `${name} v4`,
    version: 4,
    bytes: [first, 0x02, 0x12, 0x34],
    packet: ack(type, 0x1234),
  })),
  ...ACK_TYPES.map(([name, type, first]): GoldenCase => ({
    name: `${name} v3`,
    version: 3,
    bytes: [first, 0x02, 0x00, 0x01],
    packet: ack(type, 1),
  })),
  ...ACK_TYPES.map(([name, type, first]): GoldenCase => ({
    name: `${name} v5 short form (success, no properties)`,
    version: 5,
    bytes: [first, 0x02, 0x00, 0x05],
    packet: ack(type, 5, 0),
  })),
  ...ACK_TYPES.map(([name, type, first]): GoldenCase => ({
    name: `${name} v5 reason code without properties`,
    version: 5,
    bytes: [first, 0x03, 0x00, 0x05, ACK_CODES[name]],
    packet: ack(type, 5, ACK_CODES[name]),
  })),
  ...ACK_TYPES.map(([name, type, first]): GoldenCase => ({
    name: `${name} v5 reason code with reason string and user property`,
    version: 5,
    bytes: frame(first, u16(6), ACK_CODES[name], props(P.reasonString("why"), P.userProperty("k", "v"))),
    packet: ack(type, 6, ACK_CODES[name], { reasonString: "why", userProperties: [["k", "v"]] }),
  })),
  ...ACK_TYPES.map(([name, type, first]): GoldenCase => ({
    name: `${name} v5 success with an empty property block decodes like the short form`,
    version: 5,
    bytes: [first, 0x04, 0x00, 0x05, 0x00, 0x00],
    packet: ack(type, 5, 0),
    decodeOnly: true,
  })),
  {
    name: "PUBACK v5 success with a reason string",
    version: 5,
    bytes: frame(0x40, u16(1), 0x00, props(P.reasonString("fine"))),
    packet: ack(4, 1, 0, { reasonString: "fine" }),
  },
  {
    name: "PUBACK v4 encode drops the reason code and properties",
    version: 4,
    bytes: [0x40, 0x02, 0x00, 0x05],
    packet: ack(4, 5, 0x80, { reasonString: "x" }),
    encodeOnly: true,
  },
  { name: "PUBACK v4 packet id 0", version: 4, bytes: [0x40, 0x02, 0x00, 0x00], error: PROTOCOL_ERROR },
  { name: "PUBREC v5 packet id 0", version: 5, bytes: [0x50, 0x02, 0x00, 0x00], error: PROTOCOL_ERROR },
  { name: "PUBREL v4 packet id 0", version: 4, bytes: [0x62, 0x02, 0x00, 0x00], error: PROTOCOL_ERROR },
  {
    name: "PUBCOMP v5 packet id 0 with reason code",
    version: 5,
    bytes: [0x70, 0x03, 0x00, 0x00, 0x00],
    error: PROTOCOL_ERROR,
  },
  { name: "PUBACK v4 remaining length 1", version: 4, bytes: [0x40, 0x01, 0x00], error: MALFORMED },
  { name: "PUBACK v5 remaining length 0", version: 5, bytes: [0x40, 0x00], error: MALFORMED },
  {
    name: "PUBREC v4 remaining length 3",
    version: 4,
    bytes: [0x50, 0x03, 0x00, 0x01, 0x00],
    error: MALFORMED,
  },
  {
    name: "PUBREL v3 remaining length 4",
    version: 3,
    bytes: [0x62, 0x04, 0x00, 0x01, 0x00, 0x00],
    error: MALFORMED,
  },
  { name: "PUBREL flags 0000 [MQTT-3.6.1-1]", version: 4, bytes: [0x60, 0x02, 0x00, 0x01], error: MALFORMED },
  { name: "PUBREL flags 0011", version: 5, bytes: [0x63, 0x02, 0x00, 0x01], error: MALFORMED },
  { name: "PUBACK flags 0010", version: 4, bytes: [0x42, 0x02, 0x00, 0x01], error: MALFORMED },
  { name: "PUBREC flags 0001", version: 4, bytes: [0x51, 0x02, 0x00, 0x01], error: MALFORMED },
  { name: "PUBCOMP flags 0010", version: 5, bytes: [0x72, 0x02, 0x00, 0x01], error: MALFORMED },
  {
    name: "PUBACK v5 Topic Alias not allowed",
    version: 5,
    bytes: frame(0x40, u16(1), 0, props(P.topicAlias(1))),
    error: MALFORMED,
  },
  {
    name: "PUBCOMP v5 Session Expiry Interval not allowed",
    version: 5,
    bytes: frame(0x70, u16(1), 0, props(P.sessionExpiryInterval(1))),
    error: MALFORMED,
  },
  {
    name: "PUBREC v5 Property Length past the end",
    version: 5,
    bytes: [0x50, 0x05, 0x00, 0x01, 0x00, 0x05, 0x1f],
    error: MALFORMED,
  },
  {
    name: "PUBREL v5 bytes after the properties",
    version: 5,
    bytes: [0x62, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00],
    error: MALFORMED,
  },
];

// ---------------------------------------------------------------------------------------------
// SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK
// ---------------------------------------------------------------------------------------------

const subscribeCases: GoldenCase[] = [
  {
    name: "SUBSCRIBE v4 one filter",
    version: 4,
    bytes: [0x82, 0x08, 0x00, 0x01, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x01],
    packet: subscribe(1, [sub("a/b", 1)]),
  },
  {
    name: "SUBSCRIBE v4 several filters",
    version: 4,
    bytes: frame(0x82, u16(2), utf8("a/+"), 0, utf8("b/#"), 2, utf8("$share/g/c"), 1),
    packet: subscribe(2, [sub("a/+", 0), sub("b/#", 2), sub("$share/g/c", 1)]),
  },
  {
    name: "SUBSCRIBE v3 one filter",
    version: 3,
    bytes: frame(0x82, u16(3), utf8("x/y"), 2),
    packet: subscribe(3, [sub("x/y", 2)]),
  },
  {
    name: "SUBSCRIBE v4 leaves filter syntax to the server",
    version: 4,
    bytes: frame(0x82, u16(4), utf8("a/#/b"), 0, utf8("c+"), 0),
    packet: subscribe(4, [sub("a/#/b", 0), sub("c+", 0)]),
  },
  {
    name: "SUBSCRIBE v5 without properties",
    version: 5,
    bytes: frame(0x82, u16(1), props(), utf8("a"), 0x01),
    packet: subscribe(1, [sub("a", 1)]),
  },
  {
    name: "SUBSCRIBE v5 every subscription option",
    version: 5,
    bytes: frame(0x82, u16(9), props(), utf8("a"), 0x2e, utf8("b"), 0x10, utf8("c"), 0x08),
    packet: subscribe(9, [
      sub("a", 2, { noLocal: true, retainAsPublished: true, retainHandling: 2 }),
      sub("b", 0, { retainHandling: 1 }),
      sub("c", 0, { retainAsPublished: true }),
    ]),
  },
  {
    name: "SUBSCRIBE v5 subscription identifier and user property",
    version: 5,
    bytes: frame(
      0x82,
      u16(10),
      props(P.subscriptionIdentifier(1000), P.userProperty("a", "b")),
      utf8("x/#"),
      1,
      utf8("y"),
      0,
    ),
    packet: subscribe(10, [sub("x/#", 1, { identifier: 1000 }), sub("y", 0, { identifier: 1000 })], {
      subscriptionIdentifier: [1000],
      userProperties: [["a", "b"]],
    }),
  },
  {
    name: "SUBSCRIBE v5 largest subscription identifier",
    version: 5,
    bytes: frame(0x82, u16(11), props(P.subscriptionIdentifier(268435455)), utf8("z"), 0),
    packet: subscribe(11, [sub("z", 0, { identifier: 268435455 })], { subscriptionIdentifier: [268435455] }),
  },
  {
    name: "SUBSCRIBE v5 shared subscription",
    version: 5,
    bytes: frame(0x82, u16(12), props(), utf8("$share/workers/jobs/+"), 0x21),
    packet: subscribe(12, [sub("$share/workers/jobs/+", 1, { retainHandling: 2 })]),
  },
  {
    name: "SUBSCRIBE v5 encode takes the identifier from the subscriptions",
    version: 5,
    bytes: frame(0x82, u16(13), props(P.subscriptionIdentifier(7)), utf8("q"), 0),
    packet: { fixedHeader: { type: 8 }, packetId: 13, filters: [{ filter: "q", qos: 0, identifier: 7 }] },
    encodeOnly: true,
  },
  {
    name: "SUBSCRIBE v4 encode drops v5 options",
    version: 4,
    bytes: frame(0x82, u16(14), utf8("q"), 1),
    packet: subscribe(14, [sub("q", 1, { noLocal: true, retainAsPublished: true, retainHandling: 2 })]),
    encodeOnly: true,
  },
  {
    name: "SUBSCRIBE v4 packet id 0",
    version: 4,
    bytes: frame(0x82, u16(0), utf8("a"), 0),
    error: PROTOCOL_ERROR,
  },
  {
    name: "SUBSCRIBE v5 packet id 0",
    version: 5,
    bytes: frame(0x82, u16(0), props(), utf8("a"), 0),
    error: PROTOCOL_ERROR,
  },
  {
    name: "SUBSCRIBE v4 without filters [MQTT-3.8.3-2]",
    version: 4,
    bytes: frame(0x82, u16(1)),
    error: PROTOCOL_ERROR,
  },
  {
    name: "SUBSCRIBE v5 without filters [MQTT-3.8.3-2]",
    version: 5,
    bytes: frame(0x82, u16(1), props()),
    error: PROTOCOL_ERROR,
  },
  { name: "SUBSCRIBE v4 truncated packet id", version: 4, bytes: frame(0x82, 0x00), error: MALFORMED },
  {
    name: "SUBSCRIBE v4 QoS 3 is malformed (3.1.1 [MQTT-3.8.3-4])",
    version: 4,
    bytes: frame(0x82, u16(1), utf8("a"), 3),
    error: MALFORMED,
  },
  {
    name: "SUBSCRIBE v5 QoS 3 is a protocol error (5.0 3.8.3.1)",
    version: 5,
    bytes: frame(0x82, u16(1), props(), utf8("a"), 3),
    error: PROTOCOL_ERROR,
  },
  {
    name: "SUBSCRIBE v5 Retain Handling 3",
    version: 5,
    bytes: frame(0x82, u16(1), props(), utf8("a"), 0x30),
    error: PROTOCOL_ERROR,
  },
  {
    name: "SUBSCRIBE v5 reserved option bit 6 [MQTT-3.8.3-5]",
    version: 5,
    bytes: frame(0x82, u16(1), props(), utf8("a"), 0x40),
    error: MALFORMED,
  },
  {
    name: "SUBSCRIBE v5 reserved option bit 7 [MQTT-3.8.3-5]",
    version: 5,
    bytes: frame(0x82, u16(1), props(), utf8("a"), 0x81),
    error: MALFORMED,
  },
  {
    name: "SUBSCRIBE v4 reserved option bit 2",
    version: 4,
    bytes: frame(0x82, u16(1), utf8("a"), 0x04),
    error: MALFORMED,
  },
  {
    name: "SUBSCRIBE v3 reserved option bits 4-5",
    version: 3,
    bytes: frame(0x82, u16(1), utf8("a"), 0x30),
    error: MALFORMED,
  },
  {
    name: "SUBSCRIBE v5 No Local on a shared subscription [MQTT-3.8.3-4]",
    version: 5,
    bytes: frame(0x82, u16(1), props(), utf8("$share/g/a"), 0x04),
    error: PROTOCOL_ERROR,
  },
  {
    name: "SUBSCRIBE flags 0000 [MQTT-3.8.1-1]",
    version: 4,
    bytes: frame(0x80, u16(1), utf8("a"), 0),
    error: MALFORMED,
  },
  {
    name: "SUBSCRIBE flags 0011",
    version: 5,
    bytes: frame(0x83, u16(1), props(), utf8("a"), 0),
    error: MALFORMED,
  },
  {
    name: "SUBSCRIBE filter without options byte",
    version: 4,
    bytes: frame(0x82, u16(1), utf8("a")),
    error: MALFORMED,
  },
  {
    name: "SUBSCRIBE filter with bad UTF-8",
    version: 4,
    bytes: frame(0x82, u16(1), bin(0xfe), 0),
    error: MALFORMED,
  },
  {
    name: "SUBSCRIBE filter with U+0000",
    version: 5,
    bytes: frame(0x82, u16(1), props(), bin(0x61, 0x00), 0),
    error: MALFORMED,
  },
  {
    name: "SUBSCRIBE v5 Subscription Identifier 0",
    version: 5,
    bytes: frame(0x82, u16(1), props(P.subscriptionIdentifier(0)), utf8("a"), 0),
    error: PROTOCOL_ERROR,
  },
  {
    name: "SUBSCRIBE v5 two Subscription Identifiers",
    version: 5,
    bytes: frame(0x82, u16(1), props(P.subscriptionIdentifier(1), P.subscriptionIdentifier(2)), utf8("a"), 0),
    error: PROTOCOL_ERROR,
  },
  {
    name: "SUBSCRIBE v5 Reason String not allowed",
    version: 5,
    bytes: frame(0x82, u16(1), props(P.reasonString("r")), utf8("a"), 0),
    error: MALFORMED,
  },
  {
    name: "SUBSCRIBE v5 Topic Alias not allowed",
    version: 5,
    bytes: frame(0x82, u16(1), props(P.topicAlias(1)), utf8("a"), 0),
    error: MALFORMED,
  },
];

const subackCases: GoldenCase[] = [
  {
    name: "SUBACK v4 granted and failed",
    version: 4,
    bytes: [0x90, 0x06, 0x00, 0x01, 0x00, 0x01, 0x02, 0x80],
    packet: codes(9, 1, [0, 1, 2, 0x80]),
  },
  {
    name: "SUBACK v3",
    version: 3,
    bytes: [0x90, 0x03, 0x00, 0x07, 0x01],
    packet: codes(9, 7, [1]),
  },
  {
    name: "SUBACK v5 without properties",
    version: 5,
    bytes: [0x90, 0x04, 0x00, 0x02, 0x00, 0x01],
    packet: codes(9, 2, [1]),
  },
  {
    name: "SUBACK v5 with reason string and failure codes",
    version: 5,
    bytes: frame(
      0x90,
      u16(3),
      props(P.reasonString("partly"), P.userProperty("u", "p")),
      0x00,
      0x8f,
      0x97,
      0xa2,
    ),
    packet: codes(9, 3, [0x00, 0x8f, 0x97, 0xa2], { reasonString: "partly", userProperties: [["u", "p"]] }),
  },
  {
    name: "SUBACK v4 encode drops properties",
    version: 4,
    bytes: [0x90, 0x03, 0x00, 0x01, 0x00],
    packet: codes(9, 1, [0], { reasonString: "x" }),
    encodeOnly: true,
  },
  { name: "SUBACK packet id 0", version: 4, bytes: [0x90, 0x03, 0x00, 0x00, 0x00], error: PROTOCOL_ERROR },
  { name: "SUBACK v4 without codes", version: 4, bytes: [0x90, 0x02, 0x00, 0x01], error: PROTOCOL_ERROR },
  {
    name: "SUBACK v5 without codes",
    version: 5,
    bytes: [0x90, 0x03, 0x00, 0x01, 0x00],
    error: PROTOCOL_ERROR,
  },
  { name: "SUBACK flags 0010", version: 4, bytes: [0x92, 0x03, 0x00, 0x01, 0x00], error: MALFORMED },
  {
    name: "SUBACK v5 Topic Alias not allowed",
    version: 5,
    bytes: frame(0x90, u16(1), props(P.topicAlias(1)), 0),
    error: MALFORMED,
  },
  {
    name: "SUBACK v5 duplicate Reason String",
    version: 5,
    bytes: frame(0x90, u16(1), props(P.reasonString("a"), P.reasonString("b")), 0),
    error: PROTOCOL_ERROR,
  },
];

const unsubscribeCases: GoldenCase[] = [
  {
    name: "UNSUBSCRIBE v4 two filters",
    version: 4,
    bytes: [0xa2, 0x0b, 0x00, 0x05, 0x00, 0x03, 0x61, 0x2f, 0x62, 0x00, 0x02, 0x63, 0x23],
    packet: unsubscribe(5, ["a/b", "c#"]),
  },
  {
    name: "UNSUBSCRIBE v3",
    version: 3,
    bytes: frame(0xa2, u16(1), utf8("x")),
    packet: unsubscribe(1, ["x"]),
  },
  {
    name: "UNSUBSCRIBE v5 without properties",
    version: 5,
    bytes: frame(0xa2, u16(2), props(), utf8("$share/g/x"), utf8("y/+")),
    packet: unsubscribe(2, ["$share/g/x", "y/+"]),
  },
  {
    name: "UNSUBSCRIBE v5 with user property",
    version: 5,
    bytes: frame(0xa2, u16(3), props(P.userProperty("why", "done")), utf8("z")),
    packet: unsubscribe(3, ["z"], { userProperties: [["why", "done"]] }),
  },
  {
    name: "UNSUBSCRIBE v4 packet id 0",
    version: 4,
    bytes: frame(0xa2, u16(0), utf8("a")),
    error: PROTOCOL_ERROR,
  },
  {
    name: "UNSUBSCRIBE v5 packet id 0",
    version: 5,
    bytes: frame(0xa2, u16(0), props(), utf8("a")),
    error: PROTOCOL_ERROR,
  },
  {
    name: "UNSUBSCRIBE v4 without filters [MQTT-3.10.3-2]",
    version: 4,
    bytes: frame(0xa2, u16(1)),
    error: PROTOCOL_ERROR,
  },
  {
    name: "UNSUBSCRIBE v5 without filters [MQTT-3.10.3-2]",
    version: 5,
    bytes: frame(0xa2, u16(1), props()),
    error: PROTOCOL_ERROR,
  },
  {
    name: "UNSUBSCRIBE flags 0000 [MQTT-3.10.1-1]",
    version: 4,
    bytes: frame(0xa0, u16(1), utf8("a")),
    error: MALFORMED,
  },
  { name: "UNSUBSCRIBE flags 1010", version: 4, bytes: frame(0xaa, u16(1), utf8("a")), error: MALFORMED },
  {
    name: "UNSUBSCRIBE filter with a surrogate",
    version: 4,
    bytes: frame(0xa2, u16(1), bin(0xed, 0xb0, 0x80)),
    error: MALFORMED,
  },
  {
    name: "UNSUBSCRIBE truncated filter",
    version: 4,
    bytes: frame(0xa2, u16(1), 0, 4, 0x61),
    error: MALFORMED,
  },
  {
    name: "UNSUBSCRIBE v5 Subscription Identifier not allowed",
    version: 5,
    bytes: frame(0xa2, u16(1), props(P.subscriptionIdentifier(1)), utf8("a")),
    error: MALFORMED,
  },
];

const unsubackCases: GoldenCase[] = [
  {
    name: "UNSUBACK v4 has no codes",
    version: 4,
    bytes: [0xb0, 0x02, 0x00, 0x05],
    packet: { fixedHeader: { type: 11 }, packetId: 5 },
  },
  {
    name: "UNSUBACK v3",
    version: 3,
    bytes: [0xb0, 0x02, 0x01, 0x00],
    packet: { fixedHeader: { type: 11 }, packetId: 256 },
  },
  {
    name: "UNSUBACK v5 codes",
    version: 5,
    bytes: [0xb0, 0x05, 0x00, 0x05, 0x00, 0x00, 0x11],
    packet: codes(11, 5, [0x00, 0x11]),
  },
  {
    name: "UNSUBACK v5 with reason string",
    version: 5,
    bytes: frame(0xb0, u16(6), props(P.reasonString("nope")), 0x87),
    packet: codes(11, 6, [0x87], { reasonString: "nope" }),
  },
  {
    name: "UNSUBACK v4 encode drops v5 codes",
    version: 4,
    bytes: [0xb0, 0x02, 0x00, 0x05],
    packet: codes(11, 5, [0x00]),
    encodeOnly: true,
  },
  { name: "UNSUBACK v4 trailing byte", version: 4, bytes: [0xb0, 0x03, 0x00, 0x05, 0x00], error: MALFORMED },
  { name: "UNSUBACK v4 packet id 0", version: 4, bytes: [0xb0, 0x02, 0x00, 0x00], error: PROTOCOL_ERROR },
  {
    name: "UNSUBACK v5 without codes",
    version: 5,
    bytes: [0xb0, 0x03, 0x00, 0x05, 0x00],
    error: PROTOCOL_ERROR,
  },
  { name: "UNSUBACK flags 0010", version: 5, bytes: [0xb2, 0x04, 0x00, 0x05, 0x00, 0x00], error: MALFORMED },
  {
    name: "UNSUBACK v5 Subscription Identifier not allowed",
    version: 5,
    bytes: frame(0xb0, u16(1), props(P.subscriptionIdentifier(1)), 0),
    error: MALFORMED,
  },
];

// ---------------------------------------------------------------------------------------------
// PINGREQ, PINGRESP, DISCONNECT, AUTH, fixed header
// ---------------------------------------------------------------------------------------------

const controlCases: GoldenCase[] = [
  ...([3, 4, 5] as const).map((version): GoldenCase => ({
    name: `PINGREQ v${version}`,
    version,
    bytes: [0xc0, 0x00],
    packet: control(12),
  })),
  ...([3, 4, 5] as const).map((version): GoldenCase => ({
    name: `PINGRESP v${version}`,
    version,
    bytes: [0xd0, 0x00],
    packet: control(13),
  })),
  { name: "PINGREQ with a body", version: 4, bytes: [0xc0, 0x01, 0x00], error: MALFORMED },
  { name: "PINGRESP with a body", version: 5, bytes: [0xd0, 0x02, 0x00, 0x00], error: MALFORMED },
  { name: "PINGREQ flags 0001", version: 4, bytes: [0xc1, 0x00], error: MALFORMED },
  { name: "PINGRESP flags 0010", version: 5, bytes: [0xd2, 0x00], error: MALFORMED },

  { name: "DISCONNECT v4", version: 4, bytes: [0xe0, 0x00], packet: control(14) },
  { name: "DISCONNECT v3", version: 3, bytes: [0xe0, 0x00], packet: control(14) },
  {
    name: "DISCONNECT v5 normal (remaining length 0)",
    version: 5,
    bytes: [0xe0, 0x00],
    packet: control(14, 0),
  },
  {
    name: "DISCONNECT v5 with will (reason code only)",
    version: 5,
    bytes: [0xe0, 0x01, 0x04],
    packet: control(14, 0x04),
  },
  {
    name: "DISCONNECT v5 server shutting down with properties",
    version: 5,
    bytes: frame(
      0xe0,
      0x8b,
      props(
        P.sessionExpiryInterval(0),
        P.serverReference("b:1883"),
        P.reasonString("bye"),
        P.userProperty("n", "1"),
      ),
    ),
    packet: control(14, 0x8b, {
      sessionExpiryInterval: 0,
      serverReference: "b:1883",
      reasonString: "bye",
      userProperties: [["n", "1"]],
    }),
  },
  {
    name: "DISCONNECT v5 normal with a session expiry",
    version: 5,
    bytes: frame(0xe0, 0x00, props(P.sessionExpiryInterval(300))),
    packet: control(14, 0, { sessionExpiryInterval: 300 }),
  },
  {
    name: "DISCONNECT v5 code with an empty property block",
    version: 5,
    bytes: [0xe0, 0x02, 0x8e, 0x00],
    packet: control(14, 0x8e),
    decodeOnly: true,
  },
  {
    name: "DISCONNECT v5 success with an empty property block",
    version: 5,
    bytes: [0xe0, 0x02, 0x00, 0x00],
    packet: control(14, 0),
    decodeOnly: true,
  },
  {
    name: "DISCONNECT v4 encode drops the reason code",
    version: 4,
    bytes: [0xe0, 0x00],
    packet: control(14, 0x8b, { reasonString: "x" }),
    encodeOnly: true,
  },
  { name: "DISCONNECT v4 with a body", version: 4, bytes: [0xe0, 0x01, 0x00], error: MALFORMED },
  { name: "DISCONNECT v3 with a body", version: 3, bytes: [0xe0, 0x02, 0x00, 0x00], error: MALFORMED },
  { name: "DISCONNECT flags 0001", version: 4, bytes: [0xe1, 0x00], error: MALFORMED },
  { name: "DISCONNECT v5 flags 1000", version: 5, bytes: [0xe8, 0x00], error: MALFORMED },
  {
    name: "DISCONNECT v5 Topic Alias not allowed",
    version: 5,
    bytes: frame(0xe0, 0, props(P.topicAlias(1))),
    error: MALFORMED,
  },
  {
    name: "DISCONNECT v5 Will Delay Interval not allowed",
    version: 5,
    bytes: frame(0xe0, 0, props(P.willDelayInterval(1))),
    error: MALFORMED,
  },
  {
    name: "DISCONNECT v5 duplicate Session Expiry Interval",
    version: 5,
    bytes: frame(0xe0, 0, props(P.sessionExpiryInterval(1), P.sessionExpiryInterval(2))),
    error: PROTOCOL_ERROR,
  },
  {
    name: "DISCONNECT v5 bytes after the properties",
    version: 5,
    bytes: [0xe0, 0x03, 0x00, 0x00, 0x00],
    error: MALFORMED,
  },

  { name: "AUTH v5 success (remaining length 0)", version: 5, bytes: [0xf0, 0x00], packet: control(15, 0) },
  {
    name: "AUTH v5 continue authentication",
    version: 5,
    bytes: frame(0xf0, 0x18, props(P.authenticationMethod("SCRAM"), P.authenticationData("nonce"))),
    packet: control(15, 0x18, { authenticationMethod: "SCRAM", authenticationData: data("nonce") }),
  },
  {
    name: "AUTH v5 re-authenticate with reason string and user property",
    version: 5,
    bytes: frame(
      0xf0,
      0x19,
      props(P.authenticationMethod("K"), P.reasonString("again"), P.userProperty("a", "b")),
    ),
    packet: control(15, 0x19, {
      authenticationMethod: "K",
      reasonString: "again",
      userProperties: [["a", "b"]],
    }),
  },
  {
    name: "AUTH v5 code without properties keeps the Property Length",
    version: 5,
    bytes: [0xf0, 0x02, 0x18, 0x00],
    packet: control(15, 0x18),
  },
  {
    name: "AUTH v5 code alone decodes",
    version: 5,
    bytes: [0xf0, 0x01, 0x18],
    packet: control(15, 0x18),
    decodeOnly: true,
  },
  { name: "AUTH on v4 is reserved", version: 4, bytes: [0xf0, 0x00], error: MALFORMED },
  { name: "AUTH on v3 is reserved", version: 3, bytes: [0xf0, 0x02, 0x18, 0x00], error: MALFORMED },
  { name: "AUTH flags 0001", version: 5, bytes: [0xf1, 0x00], error: MALFORMED },
  {
    name: "AUTH v5 Session Expiry Interval not allowed",
    version: 5,
    bytes: frame(0xf0, 0x18, props(P.sessionExpiryInterval(1))),
    error: MALFORMED,
  },
  {
    name: "AUTH v5 duplicate Authentication Method",
    version: 5,
    bytes: frame(0xf0, 0x18, props(P.authenticationMethod("a"), P.authenticationMethod("a"))),
    error: PROTOCOL_ERROR,
  },

  { name: "reserved packet type 0", version: 4, bytes: [0x00, 0x00], error: MALFORMED },
  { name: "reserved packet type 0 on v5", version: 5, bytes: [0x00, 0x02, 0x00, 0x00], error: MALFORMED },
  {
    name: "Remaining Length of five bytes",
    version: 4,
    bytes: [0x30, 0xff, 0xff, 0xff, 0xff, 0x01],
    error: MALFORMED,
  },
  {
    name: "Remaining Length of five bytes (all continuation)",
    version: 5,
    bytes: [0xc0, 0x80, 0x80, 0x80, 0x80, 0x00],
    error: MALFORMED,
  },
];

// ---------------------------------------------------------------------------------------------
// Duplicate properties: every property but User Property may appear once per block (and
// Subscription Identifier may repeat in PUBLISH only).
// ---------------------------------------------------------------------------------------------

type Host = (block: number[]) => { version: ProtocolVersion; bytes: number[] };

const inConnect: Host = (block) => ({
  version: 5,
  bytes: frame(0x10, connectHead(5, 0x02), block, utf8("c")),
});
const inWill: Host = (block) => ({
  version: 5,
  bytes: frame(0x10, connectHead(5, 0x06), props(), utf8("c"), block, utf8("w"), bin()),
});
const inConnack: Host = (block) => ({ version: 5, bytes: frame(0x20, 0, 0, block) });
const inPublish: Host = (block) => ({ version: 5, bytes: frame(0x30, utf8("t"), block) });
const inSubscribe: Host = (block) => ({ version: 5, bytes: frame(0x82, u16(1), block, utf8("a"), 0) });
const inPuback: Host = (block) => ({ version: 5, bytes: frame(0x40, u16(1), 0x10, block) });
const inDisconnect: Host = (block) => ({ version: 5, bytes: frame(0xe0, 0x00, block) });
const inAuth: Host = (block) => ({ version: 5, bytes: frame(0xf0, 0x18, block) });

const duplicates: [name: string, property: number[], host: Host, where: string][] = [
  ["Payload Format Indicator", P.payloadFormatIndicator(1), inPublish, "PUBLISH"],
  ["Payload Format Indicator", P.payloadFormatIndicator(0), inWill, "will"],
  ["Message Expiry Interval", P.messageExpiryInterval(5), inPublish, "PUBLISH"],
  ["Content Type", P.contentType("a"), inPublish, "PUBLISH"],
  ["Response Topic", P.responseTopic("r"), inWill, "will"],
  ["Correlation Data", P.correlationData("c"), inPublish, "PUBLISH"],
  ["Subscription Identifier", P.subscriptionIdentifier(4), inSubscribe, "SUBSCRIBE"],
  ["Session Expiry Interval", P.sessionExpiryInterval(1), inConnect, "CONNECT"],
  ["Assigned Client Identifier", P.assignedClientIdentifier("id"), inConnack, "CONNACK"],
  ["Server Keep Alive", P.serverKeepAlive(10), inConnack, "CONNACK"],
  ["Authentication Method", P.authenticationMethod("m"), inConnect, "CONNECT"],
  ["Authentication Data", P.authenticationData("d"), inAuth, "AUTH"],
  ["Request Problem Information", P.requestProblemInformation(1), inConnect, "CONNECT"],
  ["Will Delay Interval", P.willDelayInterval(1), inWill, "will"],
  ["Request Response Information", P.requestResponseInformation(0), inConnect, "CONNECT"],
  ["Response Information", P.responseInformation("r"), inConnack, "CONNACK"],
  ["Server Reference", P.serverReference("s"), inDisconnect, "DISCONNECT"],
  ["Reason String", P.reasonString("r"), inPuback, "PUBACK"],
  ["Receive Maximum", P.receiveMaximum(1), inConnect, "CONNECT"],
  ["Topic Alias Maximum", P.topicAliasMaximum(1), inConnack, "CONNACK"],
  ["Topic Alias", P.topicAlias(1), inPublish, "PUBLISH"],
  ["Maximum QoS", P.maximumQoS(0), inConnack, "CONNACK"],
  ["Retain Available", P.retainAvailable(1), inConnack, "CONNACK"],
  ["Maximum Packet Size", P.maximumPacketSize(100), inConnect, "CONNECT"],
  ["Wildcard Subscription Available", P.wildcardSubscriptionAvailable(1), inConnack, "CONNACK"],
  ["Subscription Identifier Available", P.subscriptionIdentifierAvailable(1), inConnack, "CONNACK"],
  ["Shared Subscription Available", P.sharedSubscriptionAvailable(0), inConnack, "CONNACK"],
];

const duplicateCases: GoldenCase[] = duplicates.map(([name, property, host, where]): GoldenCase => ({
  name: `${where} duplicate ${name}`,
  ...host(props(property, property)),
  error: PROTOCOL_ERROR,
}));

/** Every golden case. */
// ---------------------------------------------------------------------------------------------
// Topic Name fields (Will Topic, Response Topic) and fixed header flags per protocol level
// ---------------------------------------------------------------------------------------------

const topicNameFieldCases: GoldenCase[] = [
  // [MQTT-4.7.3-1] the Will Topic is a Topic Name: at least one character, no wildcards.
  ...([3, 4] as const).map((version): GoldenCase => ({
    name: `CONNECT v${version} empty Will Topic [MQTT-4.7.3-1]`,
    version,
    bytes: frame(0x10, connectHead(version, 0x06), utf8("c"), utf8(""), bin()),
    error: PROTOCOL_ERROR,
  })),
  {
    name: "CONNECT v5 empty Will Topic [MQTT-4.7.3-1]",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x06), props(), utf8("c"), props(), utf8(""), bin()),
    error: PROTOCOL_ERROR,
  },
  {
    name: "CONNECT v5 empty Will Topic with a Will Delay Interval",
    version: 5,
    bytes: frame(
      0x10,
      connectHead(5, 0x06),
      props(),
      utf8("c"),
      props(P.willDelayInterval(5)),
      utf8(""),
      bin(),
    ),
    error: PROTOCOL_ERROR,
  },
  {
    name: "CONNECT v4 Will Topic with + [MQTT-4.7.0-1]",
    version: 4,
    bytes: frame(0x10, connectHead(4, 0x06), utf8("c"), utf8("a/+"), bin()),
    error: TOPIC_NAME_INVALID,
  },
  {
    name: "CONNECT v5 Will Topic with #",
    version: 5,
    bytes: frame(0x10, connectHead(5, 0x06), props(), utf8("c"), props(), utf8("#"), bin()),
    error: TOPIC_NAME_INVALID,
  },
  {
    name: "CONNECT v5 empty Response Topic in the Will Properties",
    version: 5,
    bytes: frame(
      0x10,
      connectHead(5, 0x06),
      props(),
      utf8("c"),
      props(P.responseTopic("")),
      utf8("w"),
      bin(),
    ),
    error: PROTOCOL_ERROR,
  },
  {
    name: "CONNECT v5 Response Topic with a wildcard in the Will Properties",
    version: 5,
    bytes: frame(
      0x10,
      connectHead(5, 0x06),
      props(),
      utf8("c"),
      props(P.responseTopic("r/+")),
      utf8("w"),
      bin(),
    ),
    error: TOPIC_NAME_INVALID,
  },
  {
    name: "PUBLISH v5 empty Response Topic",
    version: 5,
    bytes: frame(0x30, utf8("t"), props(P.responseTopic(""))),
    error: PROTOCOL_ERROR,
  },
  {
    name: "PUBLISH v5 Response Topic with a wildcard [MQTT-3.3.2-14]",
    version: 5,
    bytes: frame(0x30, utf8("t"), props(P.responseTopic("r/#"))),
    error: TOPIC_NAME_INVALID,
  },
];

const flagsPerLevelCases: GoldenCase[] = [
  {
    name: "CONNECT v3 reserved connect flag is not used",
    version: 3,
    bytes: frame(0x10, connectHead(3, 0x03), utf8("c")),
    packet: connectPacket(3, { clean: true, keepAlive: 60, clientId: "c", willFlag: false }),
    decodeOnly: true,
  },
  // MQTT 3.1 sets DUP when it re-sends PUBREL, SUBSCRIBE and UNSUBSCRIBE; 3.1.1 and 5 fix 0010.
  {
    name: "PUBREL v3 flags 1010 (DUP on a re-sent PUBREL)",
    version: 3,
    bytes: [0x6a, 0x02, 0x00, 0x07],
    packet: ack(6, 7),
    decodeOnly: true,
  },
  {
    name: "PUBREL v3 encode with DUP",
    version: 3,
    bytes: [0x6a, 0x02, 0x00, 0x07],
    packet: { fixedHeader: { type: 6, dup: true }, packetId: 7 },
    encodeOnly: true,
  },
  {
    name: "PUBREL v4 encode ignores DUP",
    version: 4,
    bytes: [0x62, 0x02, 0x00, 0x07],
    packet: { fixedHeader: { type: 6, dup: true }, packetId: 7 },
    encodeOnly: true,
  },
  { name: "PUBREL v4 flags 1010", version: 4, bytes: [0x6a, 0x02, 0x00, 0x07], error: MALFORMED },
  { name: "PUBREL v5 flags 1010", version: 5, bytes: [0x6a, 0x02, 0x00, 0x07], error: MALFORMED },
  {
    name: "SUBSCRIBE v3 flags 1010 (DUP on a re-sent SUBSCRIBE)",
    version: 3,
    bytes: frame(0x8a, u16(1), utf8("a"), 1),
    packet: subscribe(1, [sub("a", 1)]),
    decodeOnly: true,
  },
  { name: "SUBSCRIBE v4 flags 1010", version: 4, bytes: frame(0x8a, u16(1), utf8("a"), 1), error: MALFORMED },
  {
    name: "UNSUBSCRIBE v3 flags 1010 (DUP on a re-sent UNSUBSCRIBE)",
    version: 3,
    bytes: frame(0xaa, u16(1), utf8("a")),
    packet: unsubscribe(1, ["a"]),
    decodeOnly: true,
  },
  // MQTT 3.1: the flags of the other packets are "not used", so they are ignored.
  {
    name: "PUBACK v3 flags 0010 are not used",
    version: 3,
    bytes: [0x42, 0x02, 0x00, 0x01],
    packet: ack(4, 1),
    decodeOnly: true,
  },
  {
    name: "PINGREQ v3 flags 0001 are not used",
    version: 3,
    bytes: [0xc1, 0x00],
    packet: { fixedHeader: { type: 12 } },
    decodeOnly: true,
  },
  {
    name: "PUBLISH v3 DUP with QoS 0 is not an error",
    version: 3,
    bytes: frame(0x38, utf8("t"), data("p")),
    packet: publish(0, "t", "p", { dup: true }),
  },
  {
    name: "CONNECT v3 fixed header flags 0001 are not used",
    version: 3,
    bytes: frame(0x11, connectHead(3, 0x02), utf8("c")),
    packet: connectPacket(3, { clean: true, keepAlive: 60, clientId: "c", willFlag: false }),
    decodeOnly: true,
  },
  {
    name: "CONNECT v5 fixed header flags 1000",
    version: 5,
    bytes: frame(0x18, connectHead(5, 0x02), props(), utf8("c")),
    error: MALFORMED,
  },
];

export const GOLDEN: GoldenCase[] = [
  ...connectCases,
  ...connackCases,
  ...publishCases,
  ...ackCases,
  ...subscribeCases,
  ...subackCases,
  ...unsubscribeCases,
  ...unsubackCases,
  ...controlCases,
  ...duplicateCases,
  ...topicNameFieldCases,
  ...flagsPerLevelCases,
];

/**
 * The in-memory shape of MQTT packets, shared by the codec, the server and hooks.
 *
 * One {@linkcode Packet} interface serves all 15 packet types (as in Mochi): the
 * fixed header says which fields are meaningful.
 *
 * @module
 */

/** MQTT control packet types (the high nibble of the fixed header's first byte). */
export const PacketType = {
  Reserved: 0,
  Connect: 1,
  Connack: 2,
  Publish: 3,
  Puback: 4,
  Pubrec: 5,
  Pubrel: 6,
  Pubcomp: 7,
  Subscribe: 8,
  Suback: 9,
  Unsubscribe: 10,
  Unsuback: 11,
  Pingreq: 12,
  Pingresp: 13,
  Disconnect: 14,
  Auth: 15,
} as const;

/** One of the {@linkcode PacketType} values. */
export type PacketType = typeof PacketType[keyof typeof PacketType];

/** Printable names of packet types, indexed by type. */
export const PACKET_NAMES: readonly string[] = [
  "RESERVED",
  "CONNECT",
  "CONNACK",
  "PUBLISH",
  "PUBACK",
  "PUBREC",
  "PUBREL",
  "PUBCOMP",
  "SUBSCRIBE",
  "SUBACK",
  "UNSUBSCRIBE",
  "UNSUBACK",
  "PINGREQ",
  "PINGRESP",
  "DISCONNECT",
  "AUTH",
];

/** MQTT protocol levels: 3 is MQTT 3.1 ("MQIsdp"), 4 is 3.1.1, 5 is 5.0. */
export type ProtocolVersion = 3 | 4 | 5;

/** Quality of service levels. */
export type QoS = 0 | 1 | 2;

/** The fixed header of a packet. `dup`, `qos` and `retain` apply to PUBLISH only. */
export interface FixedHeader {
  /** The packet type. */
  type: PacketType;
  /** PUBLISH: this is a redelivery. */
  dup?: boolean;
  /** PUBLISH: quality of service. */
  qos?: QoS;
  /** PUBLISH: the retain flag. */
  retain?: boolean;
  /** Decoded packets: the remaining length read from the wire. */
  remaining?: number;
}

/** A v5 user property: a name and a value, both UTF-8 strings; names may repeat. */
export type UserProperty = [name: string, value: string];

/**
 * MQTT v5 properties. Byte and two-byte flags keep their wire values (0 or 1) so
 * that validation can reject anything else.
 */
export interface Properties {
  /** 0x01 PUBLISH, will: 0 bytes, 1 UTF-8. */
  payloadFormatIndicator?: number;
  /** 0x02 PUBLISH, will: seconds until the message expires. */
  messageExpiryInterval?: number;
  /** 0x03 PUBLISH, will: a MIME type. */
  contentType?: string;
  /** 0x08 PUBLISH, will: the topic for a response. */
  responseTopic?: string;
  /** 0x09 PUBLISH, will: correlation data for request/response. */
  correlationData?: Uint8Array;
  /** 0x0B PUBLISH (several), SUBSCRIBE (one): subscription identifiers, 1..268435455. */
  subscriptionIdentifier?: number[];
  /** 0x11 CONNECT, CONNACK, DISCONNECT: seconds the session outlives the connection. */
  sessionExpiryInterval?: number;
  /** 0x12 CONNACK: the client id the server assigned. */
  assignedClientIdentifier?: string;
  /** 0x13 CONNACK: the keep alive the server imposes. */
  serverKeepAlive?: number;
  /** 0x15 CONNECT, CONNACK, AUTH: the extended authentication method. */
  authenticationMethod?: string;
  /** 0x16 CONNECT, CONNACK, AUTH: extended authentication data. */
  authenticationData?: Uint8Array;
  /** 0x17 CONNECT: 0 or 1. */
  requestProblemInformation?: number;
  /** 0x18 will: seconds to wait before publishing the will. */
  willDelayInterval?: number;
  /** 0x19 CONNECT: 0 or 1. */
  requestResponseInformation?: number;
  /** 0x1A CONNACK: basis for response topics. */
  responseInformation?: string;
  /** 0x1C CONNACK, DISCONNECT: another server to use. */
  serverReference?: string;
  /** 0x1F every ack, CONNACK, DISCONNECT, AUTH: human-readable diagnostics. */
  reasonString?: string;
  /** 0x21 CONNECT, CONNACK: concurrent QoS 1/2 publishes accepted, 1..65535. */
  receiveMaximum?: number;
  /** 0x22 CONNECT, CONNACK: highest topic alias accepted. */
  topicAliasMaximum?: number;
  /** 0x23 PUBLISH: the topic alias, 1..65535. */
  topicAlias?: number;
  /** 0x24 CONNACK: 0 or 1 (absent means 2). */
  maximumQoS?: number;
  /** 0x25 CONNACK: 0 or 1. */
  retainAvailable?: number;
  /** 0x26 everywhere but PINGs: name/value pairs, order kept. */
  userProperties?: UserProperty[];
  /** 0x27 CONNECT, CONNACK: largest packet accepted, > 0. */
  maximumPacketSize?: number;
  /** 0x28 CONNACK: 0 or 1. */
  wildcardSubscriptionAvailable?: number;
  /** 0x29 CONNACK: 0 or 1. */
  subscriptionIdentifierAvailable?: number;
  /** 0x2A CONNACK: 0 or 1. */
  sharedSubscriptionAvailable?: number;
}

/** One entry of a SUBSCRIBE or UNSUBSCRIBE (UNSUBSCRIBE uses `filter` only). */
export interface Subscription {
  /** The topic filter, including any `$share/{group}/` prefix. */
  filter: string;
  /** The maximum QoS requested. */
  qos: QoS;
  /** v5: do not receive own publishes. */
  noLocal?: boolean;
  /** v5: keep the retain flag as published. */
  retainAsPublished?: boolean;
  /** v5: 0 send retained on subscribe, 1 only if new, 2 never. */
  retainHandling?: 0 | 1 | 2;
  /** v5: the subscription identifier from the SUBSCRIBE's properties. */
  identifier?: number;
}

/** The variable header and payload fields of a CONNECT packet. */
export interface ConnectParams {
  /** "MQTT" for levels 4 and 5, "MQIsdp" for level 3. */
  protocolName: string;
  /** The protocol level. */
  protocolVersion: ProtocolVersion;
  /** Clean Start (v5) or Clean Session (v3). */
  clean: boolean;
  /** Keep alive in seconds; 0 disables it. */
  keepAlive: number;
  /** The client identifier; may be empty. */
  clientId: string;
  /** The user name, when the flag is set. */
  username?: string;
  /** The password, when the flag is set. */
  password?: Uint8Array;
  /** The will flag. */
  willFlag: boolean;
  /** The will topic, when `willFlag`. */
  willTopic?: string;
  /** The will payload, when `willFlag`. */
  willPayload?: Uint8Array;
  /** The will QoS. */
  willQos?: QoS;
  /** The will retain flag. */
  willRetain?: boolean;
  /** v5 will properties. */
  willProperties?: Properties;
}

/**
 * Any MQTT control packet. Which fields are meaningful depends on `fixedHeader.type`:
 * - CONNECT: `connect`, `properties`
 * - CONNACK: `sessionPresent`, `reasonCode`, `properties`
 * - PUBLISH: `topicName`, `packetId` (QoS > 0), `properties`, `payload`
 * - PUBACK, PUBREC, PUBREL, PUBCOMP: `packetId`, `reasonCode`, `properties`
 * - SUBSCRIBE, UNSUBSCRIBE: `packetId`, `filters`, `properties`
 * - SUBACK, UNSUBACK: `packetId`, `reasonCodes`, `properties`
 * - DISCONNECT, AUTH: `reasonCode`, `properties`
 */
export interface Packet {
  /** The fixed header. */
  fixedHeader: FixedHeader;
  /** The protocol version the packet was decoded with or is to be encoded for. */
  protocolVersion?: ProtocolVersion;
  /** Packet identifier, 1..65535. */
  packetId?: number;
  /** Single reason code (v5; CONNACK return code for v3). */
  reasonCode?: number;
  /** SUBACK/UNSUBACK reason codes, one per filter. */
  reasonCodes?: number[];
  /** CONNACK: the server had a session for this client. */
  sessionPresent?: boolean;
  /** v5 properties. */
  properties?: Properties;
  /** CONNECT fields. */
  connect?: ConnectParams;
  /** PUBLISH topic (empty when a v5 topic alias stands for it). */
  topicName?: string;
  /** PUBLISH payload; decoded payloads are views into the read buffer, copy them to keep them. */
  payload?: Uint8Array;
  /** SUBSCRIBE/UNSUBSCRIBE filters. */
  filters?: Subscription[];
  /** Broker bookkeeping: when the message was received (ms since epoch). */
  created?: number;
  /** Broker bookkeeping: when the message expires (ms since epoch), 0 for never. */
  expiry?: number;
  /** Broker bookkeeping: the client id of the publisher. */
  origin?: string;
  /** Broker bookkeeping: orders a session's stored outbound messages (restored in this order). */
  sequence?: number;
  /**
   * Broker bookkeeping (cluster): the message's cluster-wide id, where a node needs it later (a message
   * delivered from a dead node's inbox). Stored with the message, so that a session moving to another
   * node is not given there a second copy of it.
   */
  clusterId?: string;
  /**
   * Broker bookkeeping: on a session's copy of a message that only shared subscriptions gave it, the
   * groups (`"{ShareName}/{filter}"`) that picked it, so that the message goes to another member if this
   * session ends before its client has it (MQTT 5.0 §4.8.2).
   */
  sharedGroups?: readonly string[];
}

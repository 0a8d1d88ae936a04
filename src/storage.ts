/**
 * The records of broker state that storage keeps: sessions, subscriptions, in-flight and queued
 * messages, retained messages. The core restores from them (`restore.ts`) and the `stored*` hook
 * events return them; storage hooks (in `hooks/storage/`) write and load them.
 *
 * @module
 */

import type { Packet, Properties, QoS, Subscription } from "./packets/types.ts";
import { PacketType } from "./packets/types.ts";
import type { ClientProperties } from "./client.ts";

/** A message as stored (retained, in flight, queued, or a will). */
export interface StoredMessage {
  /** Topic name. */
  topic: string;
  /** Payload bytes. */
  payload: Uint8Array;
  /** QoS. */
  qos: QoS;
  /** Retain flag. */
  retain: boolean;
  /** v5 properties (without topic alias and subscription identifiers). */
  properties?: Properties;
  /** When it was received (ms since epoch). */
  created: number;
  /** When it expires (ms since epoch), 0 for never. */
  expiry: number;
  /** The publisher's client id. */
  origin: string;
  /** Cluster: the message's cluster-wide id, when known (see `Packet.clusterId`). */
  clusterId?: string;
}

/** The {@linkcode ClientProperties} a session record keeps, under the same names. */
export const STORED_CLIENT_PROPERTIES = [
  "username",
  "protocolVersion",
  "clean",
  "keepAlive",
  "sessionExpiryInterval",
  "receiveMaximum",
  "maximumPacketSize",
  "topicAliasMaximum",
  "willDelayInterval",
] as const;

/** A client session: the kept client properties, and where, when and what else. */
export interface ClientRecord extends Pick<ClientProperties, typeof STORED_CLIENT_PROPERTIES[number]> {
  /** Client id. */
  id: string;
  /** Listener id it last connected through. */
  listener: string;
  /** Remote address it last connected from. */
  remote: string;
  /** CONNECT properties. */
  properties: Properties;
  /** The will, if one is pending. */
  will?: StoredMessage;
  /** When it connected (ms since epoch). */
  connectedAt: number;
  /** When it disconnected (ms since epoch), 0 while connected. */
  disconnectedAt: number;
}

/** One subscription of a client. */
export interface SubscriptionRecord {
  /** Client id. */
  clientId: string;
  /** The subscription with all its options. */
  subscription: Subscription;
}

/**
 * One QoS 1/2 message of a session: outbound PUBLISH (sent or queued) or PUBREL, or an inbound
 * QoS 2 packet id awaiting PUBREL (`direction: "in"`).
 */
export interface InflightRecord {
  /** Client id. */
  clientId: string;
  /** `out`: to the client; `in`: from the client (QoS 2 awaiting PUBREL). */
  direction: "out" | "in";
  /** Orders a session's outbound messages; restored in this order. */
  sequence: number;
  /** The packet id, 0 for a queued message not sent yet. */
  packetId: number;
  /** What is awaited: `publish` (PUBACK/PUBREC), `pubrel` (PUBCOMP), or `pubrec` (inbound PUBREL). */
  stage: "publish" | "pubrel" | "pubrec";
  /** The message, for the `publish` stage. */
  message?: StoredMessage;
  /** The shared groups that gave the session this message (`Packet.sharedGroups`), if any. */
  groups?: readonly string[];
}

/** The $SYS counters as saved, by Mochi's JSON names. */
export type SysInfoRecord = Record<string, string | number>;

/** Everything a backend holds, as loaded on start. */
export interface StoredState {
  /** Sessions. */
  clients: ClientRecord[];
  /** Subscriptions. */
  subscriptions: SubscriptionRecord[];
  /** In-flight and queued messages. */
  inflight: InflightRecord[];
  /** Retained messages. */
  retained: StoredMessage[];
  /** $SYS counters (Mochi's JSON names), if saved. */
  sysInfo?: SysInfoRecord;
}

/**
 * The stored form of a message.
 *
 * @param packet A PUBLISH (or will) packet.
 * @returns The record.
 */
export function storedMessage(packet: Packet): StoredMessage {
  const { topicAlias: _alias, subscriptionIdentifier: _ids, ...properties } = packet.properties ?? {};
  const message: StoredMessage = {
    topic: packet.topicName ?? "",
    payload: packet.payload ?? new Uint8Array(),
    qos: packet.fixedHeader.qos ?? 0,
    retain: packet.fixedHeader.retain ?? false,
    properties: Object.keys(properties).length > 0 ? properties : undefined,
    created: packet.created ?? 0,
    expiry: packet.expiry ?? 0,
    origin: packet.origin ?? "",
  };
  if (packet.clusterId !== undefined) message.clusterId = packet.clusterId;
  return message;
}

/**
 * A PUBLISH packet from its stored form.
 *
 * @param message The record.
 * @returns The packet.
 */
export function messagePacket(message: StoredMessage): Packet {
  const packet: Packet = {
    fixedHeader: { type: PacketType.Publish, qos: message.qos, retain: message.retain, dup: false },
    topicName: message.topic,
    payload: message.payload,
    properties: message.properties,
    created: message.created,
    expiry: message.expiry,
    origin: message.origin,
  };
  if (message.clusterId !== undefined) packet.clusterId = message.clusterId;
  return packet;
}

/**
 * Rebuilds a server's state from its storage hooks on start: sessions (offline client objects),
 * subscriptions, in-flight and queued messages in their original order, inbound QoS 2 ids awaiting
 * PUBREL, retained messages with their remaining expiry, and optionally the $SYS counters. What
 * happens next to the sessions (expiry, pending wills) is the server's business.
 *
 * @module
 */

import { PacketType } from "./packets/types.ts";
import type { Client } from "./client.ts";
import type { Clients } from "./clients.ts";
import type { Hooks } from "./hooks.ts";
import type { TopicsIndex } from "./topics.ts";
import { parseFilter } from "./topics.ts";
import type { Info } from "./system.ts";
import { NEVER_EXPIRES } from "./options.ts";
import { type ClientRecord, messagePacket, STORED_CLIENT_PROPERTIES } from "./storage.ts";
import { logger } from "./logger.ts";

const log = logger("server");

/** What restoring needs from the server. */
export interface RestoreTarget {
  /** The hooks to ask (`stored*` events). */
  hooks: Hooks;
  /** Where restored sessions go. */
  clients: Clients;
  /** Where subscriptions and retained messages go. */
  topics: TopicsIndex;
  /** Counters to update (and to restore with `restoreSysInfo`). */
  info: Info;
  /** Whether to restore the $SYS counters. */
  restoreSysInfo: boolean;
  /** Creates an offline client object. */
  newClient(listener: string, id: string): Client;
}

/** The sessions found in storage. */
export interface RestoredSessions {
  /** Sessions still alive (registered, offline). */
  live: Client[];
  /** Sessions that expired while the server was down (registered, for the server to end). */
  expired: Client[];
}

/**
 * Loads everything the storage hooks hold into the server.
 *
 * @param target The server's parts.
 * @returns The sessions found, live and expired.
 */
export async function restoreState(target: RestoreTarget): Promise<RestoredSessions> {
  const { hooks, clients, topics, info } = target;
  const now = Date.now();
  const restored = new Map<string, Client>();
  const expired: Client[] = [];
  for (const record of await hooks.stored("storedClients")) {
    const client = target.newClient(record.listener, record.id);
    restoreClient(client, record, now);
    if (client.state.expiresAt !== 0 && now >= client.state.expiresAt) expired.push(client);
    else restored.set(client.id, client);
    clients.set(client);
  }
  for (
    const { clientId, subscription } of await hooks.stored("storedSubscriptions")
  ) {
    const client = restored.get(clientId);
    if (!client || !parseFilter(subscription.filter)) continue;
    topics.subscribe(clientId, subscription);
    client.state.subscriptions.set(subscription.filter, subscription);
  }
  for (const record of await hooks.stored("storedInflightMessages")) {
    const client = restored.get(record.clientId);
    if (!client) continue;
    const inflight = client.state.inflight;
    if (record.direction === "in") {
      inflight.inboundQos2.add(record.packetId);
      continue;
    }
    inflight.restoreSequence(record.sequence);
    if (record.stage === "pubrel") {
      inflight.outbound.set(record.packetId, {
        fixedHeader: { type: PacketType.Pubrel, qos: 2 },
        packetId: record.packetId,
        reasonCode: 0,
        sequence: record.sequence,
      });
    } else if (record.message) {
      const packet = messagePacket(record.message);
      packet.sequence = record.sequence;
      if (record.groups !== undefined) packet.sharedGroups = record.groups;
      inflight.hold(packet);
      if (record.packetId > 0) {
        packet.packetId = record.packetId;
        inflight.outbound.set(record.packetId, packet);
      } else {
        inflight.pending.push(packet);
      }
    }
    if (record.packetId > 0) info.inflight++;
  }
  for (const message of await hooks.stored("storedRetainedMessages")) {
    if (message.expiry && now >= message.expiry && message.properties?.messageExpiryInterval !== undefined) {
      hooks.onRetainedExpired(message.topic);
      continue;
    }
    topics.retain(messagePacket(message));
  }
  if (target.restoreSysInfo) {
    const saved = await hooks.storedSysInfo();
    if (saved) info.restore(saved);
  }
  log.info("Restored {clients} sessions, {subscriptions} subscriptions, {retained} retained messages", {
    clients: restored.size,
    subscriptions: topics.subscriptionCount,
    retained: topics.retainedCount,
  });
  return { live: [...restored.values()], expired };
}

/**
 * Copies a stored session onto an offline client object (a connection live when it was stored counts
 * as ended now).
 *
 * @param client The offline client.
 * @param record The stored session.
 * @param now The current time in ms.
 */
export function restoreClient(client: Client, record: ClientRecord, now: number): void {
  const p = client.properties;
  Object.assign(p, Object.fromEntries(STORED_CLIENT_PROPERTIES.map((key) => [key, record[key]])));
  client.net.remote = record.remote;
  p.props = record.properties ?? {};
  p.will = record.will ? messagePacket(record.will) : undefined;
  client.state.connectedAt = record.connectedAt;
  // A session whose connection was live at the crash is treated as disconnected now.
  const disconnectedAt = record.disconnectedAt || now;
  client.state.disconnectedAt = disconnectedAt;
  client.state.expiresAt = record.sessionExpiryInterval === NEVER_EXPIRES
    ? 0
    : disconnectedAt + record.sessionExpiryInterval * 1000;
}

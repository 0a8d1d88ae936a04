/**
 * Sessions: which connection owns each client id, and what happens to a session's state when its
 * connection starts and ends. Admission (resume or start a session, take over a live connection),
 * the end of a connection (counters, will, expiry), delayed wills, session expiry and the restore of
 * stored sessions all live here, apart from the PUBLISH path in `server.ts`.
 *
 * This is the seam where session ownership could become cluster-wide: everything that decides
 * "whose session is this, and is it still alive" goes through {@linkcode Sessions}.
 *
 * @module
 */

import type { Packet, QoS } from "./packets/types.ts";
import { PacketType } from "./packets/types.ts";
import { ReasonCode } from "./packets/reason_codes.ts";
import type { Client } from "./client.ts";
import type { Clients } from "./clients.ts";
import type { Hooks } from "./hooks.ts";
import type { TopicsIndex } from "./topics.ts";
import type { Info } from "./system.ts";
import { NEVER_EXPIRES } from "./options.ts";
import { logConnection } from "./connection_log.ts";
import type { AdoptedSession, HeldId, SessionSnapshot } from "./cluster.ts";
import { restoreClient } from "./restore.ts";
import { messagePacket, storedMessage } from "./storage.ts";
import type { InflightRecord } from "./storage.ts";
import { returnedMessages, type SharedHandoff } from "./shared_handoff.ts";

/** setTimeout's longest delay, in whole seconds. */
const MAX_TIMER_SECONDS = Math.floor(0x7fffffff / 1000);

/** What sessions need from the server they belong to. */
export interface SessionHost {
  /** The registry of clients by id. */
  readonly clients: Clients;
  /** Subscriptions (removed when a session ends). */
  readonly topics: TopicsIndex;
  /** The hook dispatcher. */
  readonly hooks: Hooks;
  /** Counters. */
  readonly info: Info;
  /** Disconnects a client with a reason code (v5 gets a DISCONNECT first). */
  disconnectClient(client: Client, code: number): void;
  /**
   * Publishes an allowed will: stamps it, retains it if asked, routes it to subscribers, then calls `sent`
   * (which stores the session without it), all in one cluster write (see `Cluster.atomically`). A node that
   * learns it was claimed meanwhile publishes nothing (its claimer sent the will).
   */
  publishWill(client: Client, will: Packet, sent: () => void): void;
  /** Runs work whose stored-session changes and forwards go in one cluster write (see `Cluster.atomically`). */
  atomically?(work: () => void): void;
  /** Passes on what a shared group's member held when its session ends (see `shared_handoff.ts`). */
  readonly handoff?: SharedHandoff;
  /** Releases publishers paused by a client whose connection ended. */
  connectionEnded(client: Client): void;
  /** A session ended for good (its id is free cluster-wide); unset without a cluster. */
  sessionEnded?(clientId: string): void;
}

/**
 * The session lifecycle of one server.
 *
 * @example A server's sessions start empty
 * ```ts
 * import assert from "node:assert/strict";
 * import { Server } from "../mod.ts";
 * const server = new Server({ inlineClient: true });
 * assert.equal(server.clients.count, 0); // the inline client is not listed among the clients
 * ```
 */
export class Sessions {
  readonly #host: SessionHost;
  /** Clients whose CONNECT was accepted: only these are counted, have wills, and own sessions. */
  readonly #accepted = new WeakSet<Client>();
  readonly #pendingWills = new Map<string, { client: Client; timer: ReturnType<typeof setTimeout> }>();

  /**
   * Creates the session lifecycle for a server.
   *
   * @param host The server's parts that sessions use.
   */
  constructor(host: SessionHost) {
    this.#host = host;
  }

  /**
   * Registers a client whose CONNECT was accepted: resumes the session stored under its id (unless it
   * asked for a clean start or the session expired), or starts a new one; a live connection with the
   * same id is taken over (DISCONNECT 0x8E) [MQTT-3.1.4-3]. Counts the connection.
   *
   * @param client The client, with its id and CONNECT properties set.
   * @returns Whether a session was present.
   */
  admit(client: Client): boolean {
    const { clients, info } = this.#host;
    const existing = clients.get(client.id);
    let sessionPresent = false;
    if (existing && existing !== client) {
      const wasConnected = !existing.closed;
      if (!client.properties.clean && isResumable(existing)) {
        client.inheritSession(existing);
        sessionPresent = true;
      }
      clients.set(client);
      if (wasConnected) {
        this.#host.disconnectClient(existing, ReasonCode.SessionTakenOver); // [MQTT-3.1.4-3]
        this.ended(existing, new Error("Session taken over"));
      }
      const pending = this.#pendingWills.get(client.id);
      if (pending) {
        clearTimeout(pending.timer);
        this.#pendingWills.delete(client.id);
        // [MQTT-3.1.3-9] a resumed session cancels a delayed will; an ended session sends it now.
        if (!sessionPresent) this.#sendWill(pending.client);
      }
      if (!sessionPresent) this.#endSession(existing);
    } else {
      clients.set(client);
    }
    this.#accepted.add(client);
    info.clientsConnected++;
    if (info.clientsConnected > info.clientsMaximum) info.clientsMaximum = info.clientsConnected;
    return sessionPresent;
  }

  /**
   * Bookkeeping for a connection that ended: counters, will, session expiry. Runs once per accepted
   * connection; a refused CONNECT was never counted and has no will (v3.1.1 [MQTT-3.1.2-8]: stored
   * only if the CONNECT is accepted); a client taken over is no longer registered but has one.
   *
   * @param client The client whose connection ended.
   * @param cause Why it ended.
   */
  ended(client: Client, cause: Error | undefined): void {
    const { clients, info, hooks } = this.#host;
    this.#host.connectionEnded(client);
    if (!this.#accepted.delete(client)) return;
    const registered = clients.get(client.id) === client;
    info.clientsConnected--;
    let expire = false;
    if (registered) {
      const sei = client.properties.sessionExpiryInterval;
      if (sei === 0) expire = true;
      else if (sei !== NEVER_EXPIRES) client.state.expiresAt = Date.now() + sei * 1000;
    }
    if (client.properties.will && !client.state.cleanDisconnect) {
      if (expire || client.properties.willDelayInterval === 0) this.#sendWill(client);
      else this.#delayWill(client);
    }
    if (expire) {
      this.#endSession(client);
      clients.delete(client);
      this.#host.sessionEnded?.(client.id);
    }
    logConnection("disconnected", client, cause?.message ?? "connection closed");
    hooks.onDisconnect(client, cause, expire);
  }

  /**
   * Ends the session of a disconnected client if it has expired: its pending will goes out at the
   * latest now [MQTT-3.1.2-8], its state is dropped and `onClientExpired` fires.
   *
   * @param client A disconnected client.
   * @param now The current time in ms.
   * @returns True if the session expired and was ended.
   */
  expireIfDue(client: Client, now: number): boolean {
    if (client.state.expiresAt === 0 || now < client.state.expiresAt) return false;
    const pending = this.#pendingWills.get(client.id);
    if (pending?.client === client) {
      clearTimeout(pending.timer);
      this.#pendingWills.delete(client.id);
    }
    this.#expire(client);
    return true;
  }

  /**
   * Takes over the sessions rebuilt from storage: those that expired while the server was down end
   * now (sending a will still pending); those alive lost their connection at the crash, so their wills
   * are due after their delay.
   *
   * @param live Sessions still alive.
   * @param expired Sessions that expired while the server was down.
   */
  restored(live: Client[], expired: Client[]): void {
    for (const client of expired) this.#expire(client);
    for (const client of live) {
      if (client.properties.will) this.#delayWill(client);
    }
  }

  /** Cancels every delayed will (the server is closing). */
  close(): void {
    for (const { timer } of this.#pendingWills.values()) clearTimeout(timer);
    this.#pendingWills.clear();
  }

  #expire(client: Client): void {
    this.#sendWill(client); // [MQTT-3.1.2-8] a will still pending goes out when its session ends
    this.#endSession(client);
    this.#host.clients.delete(client);
    this.#host.sessionEnded?.(client.id);
    this.#host.hooks.onClientExpired(client);
  }

  /**
   * Hands a session to another node of the cluster that a connection with its id reached: a live
   * connection here gets DISCONNECT 0x8E [MQTT-3.1.4-3]; the will is handled as for a takeover on
   * one node (sent now unless the session goes on and has a will delay); the session ends here.
   *
   * @param clientId The client id.
   * @param clean Whether the new connection asked for a clean start.
   * @returns The session's state for the new owner, or undefined when there is none to keep.
   */
  release(clientId: string, clean: boolean): SessionSnapshot | undefined {
    const { clients } = this.#host;
    const client = clients.get(clientId);
    if (!client || client.net.inline) return undefined;
    const keep = !clean && isResumable(client);
    clients.delete(client);
    if (!client.closed) {
      this.#host.disconnectClient(client, ReasonCode.SessionTakenOver);
      this.ended(client, new Error("Session taken over by another node"));
    }
    const pending = this.#pendingWills.get(clientId);
    if (pending) {
      clearTimeout(pending.timer);
      this.#pendingWills.delete(clientId);
      if (!keep) this.#sendWill(pending.client); // [MQTT-3.1.3-9]
    }
    const snapshot = keep ? snapshotOf(client) : undefined;
    this.#endSession(client, !keep); // a session that goes on keeps its messages
    return snapshot;
  }

  /**
   * Drops every session of this server without a trace, for a cluster node that learnt it had been
   * declared dead and claimed (see `ClusterHost.dropSessions`): the node that claimed it sent their
   * wills and adopted them. Connections get DISCONNECT `code` (v5) and close; no will goes out, no
   * delayed will is left, and nothing is handed to `sessionEnded` (the ids are not this node's).
   *
   * @param code The DISCONNECT reason code.
   * @returns How many connections were closed.
   */
  dropAll(code: number): number {
    const { clients } = this.#host;
    for (const { timer } of this.#pendingWills.values()) clearTimeout(timer);
    this.#pendingWills.clear();
    let closed = 0;
    for (const client of clients.list()) {
      if (client.net.inline) continue;
      client.properties.will = undefined;
      clients.delete(client);
      if (!client.closed) {
        this.#host.disconnectClient(client, code);
        this.ended(client, new Error("Dropped: this node must join its cluster again"));
        closed++;
      }
      this.#endSession(client, false); // adopted by the claimer, messages and all
    }
    return closed;
  }

  /**
   * Resumes, in a newly admitted client, a session handed over by another node.
   *
   * @param client The client (admitted, not yet acknowledged).
   * @param snapshot What the previous owner handed over.
   */
  adopt(client: Client, snapshot: SessionSnapshot): void {
    const { topics, info, hooks } = this.#host;
    for (const subscription of snapshot.subscriptions) {
      topics.subscribe(client.id, subscription);
      client.state.subscriptions.set(subscription.filter, subscription);
    }
    if (snapshot.subscriptions.length > 0) {
      // Stored again by this node (storage hooks: the session now lives here).
      const filters = snapshot.subscriptions;
      hooks.onSubscribed(
        client,
        { fixedHeader: { type: PacketType.Subscribe }, filters },
        filters.map(() => 0),
      );
    }
    const inflight = client.state.inflight;
    for (const record of snapshot.inflight) {
      if (record.direction === "in") {
        inflight.inboundQos2.add(record.packetId);
        continue;
      }
      // The original sequence is kept: the stored records stay valid under the same keys.
      inflight.restoreSequence(record.sequence);
      const sequence = record.sequence;
      let packet: Packet | undefined;
      if (record.stage === "pubrel") {
        packet = {
          fixedHeader: { type: PacketType.Pubrel, qos: 2 },
          packetId: record.packetId,
          reasonCode: 0,
          sequence,
        };
        inflight.outbound.set(record.packetId, packet);
        info.inflight++;
      } else if (record.message) {
        packet = messagePacket(record.message);
        packet.sequence = sequence;
        if (record.groups !== undefined) packet.sharedGroups = record.groups;
        inflight.hold(packet);
        if (record.packetId > 0) {
          packet.packetId = record.packetId;
          inflight.outbound.set(record.packetId, packet);
          info.inflight++;
        } else inflight.pending.push(packet);
      }
      if (packet) hooks.onQosPublish(client, packet, 0, 0);
    }
  }

  /**
   * The cluster-wide ids (`Packet.clusterId`) of the messages a session here holds, queued or in flight
   * (see `ClusterHost.messageIds`).
   *
   * @param clientId The client id.
   * @returns The ids; none when the session is not here.
   */
  clusterIds(clientId: string): HeldId[] {
    const ids: HeldId[] = [];
    const inflight = this.#host.clients.get(clientId)?.state.inflight;
    if (inflight === undefined || inflight.size === 0) return ids;
    for (const packets of [inflight.outbound.values(), inflight.pending]) {
      for (const { clusterId: id, sharedGroups: groups } of packets) {
        if (id !== undefined) ids.push({ id, groups });
      }
    }
    return ids;
  }

  /**
   * Takes in sessions of a dead node of the cluster as disconnected sessions (see
   * `ClusterHost.adoptSessions`): expired ones end now with their will; the others keep their state
   * and their wills wait for their delay.
   *
   * @param sessions The stored sessions.
   * @param newClient Creates an offline client object.
   * @param diedAt When their node died (ms since epoch): a session connected then was disconnected
   *   then, and its expiry and will delay count from it. Default: now.
   */
  adoptStored(
    sessions: AdoptedSession[],
    newClient: (listener: string, id: string) => Client,
    diedAt: number = Date.now(),
  ): void {
    const now = Date.now();
    const live: Client[] = [];
    const expired: Client[] = [];
    for (const { record, snapshot } of sessions) {
      if (this.#host.clients.get(record.id)) continue; // never replace a session this node has
      const client = newClient(record.listener, record.id);
      restoreClient(client, record, Math.min(diedAt, now));
      this.#host.clients.set(client);
      if (client.state.expiresAt !== 0 && now >= client.state.expiresAt) expired.push(client);
      else {
        this.adopt(client, snapshot);
        live.push(client);
      }
    }
    this.restored(live, expired);
  }

  #delayWill(client: Client): void {
    const sei = client.properties.sessionExpiryInterval;
    const delay = Math.min(client.properties.willDelayInterval, sei, MAX_TIMER_SECONDS);
    // Counted from the disconnection (for a restored or adopted session, that was before now).
    const elapsed = client.state.disconnectedAt > 0
      ? Math.max(0, Date.now() - client.state.disconnectedAt)
      : 0;
    const timer = setTimeout(() => {
      this.#pendingWills.delete(client.id);
      this.#sendWill(client);
    }, Math.max(0, delay * 1000 - elapsed));
    this.#pendingWills.set(client.id, { client, timer });
  }

  #sendWill(client: Client): void {
    const will = client.properties.will;
    if (!will) return;
    client.properties.will = undefined;
    const hooks = this.#host.hooks;
    const result = hooks.onWill(client, will);
    const send = (w: Packet | number) => {
      // A client may not publish to $ topics: nor may its will (the PUBLISH path's rule).
      if (typeof w === "number" || w.topicName!.charCodeAt(0) === 0x24) return;
      const allowed = hooks.onACLCheck(client, w.topicName!, true);
      const deliver = (ok: boolean) => {
        if (ok) this.#host.publishWill(client, w, () => hooks.onWillSent(client, w));
      };
      if (allowed instanceof Promise) allowed.then(deliver);
      else deliver(allowed);
    };
    if (result instanceof Promise) result.then(send);
    else send(result);
  }

  /**
   * Ends a session: removes its subscriptions and drops its in-flight messages. Unless the session goes
   * on elsewhere (`handOff` false), what its shared groups gave it and its client does not have goes to
   * other members of the groups, once it is out of them [MQTT 5.0 §4.8.2].
   */
  #endSession(client: Client, handOff = true): void {
    const returned = handOff && this.#host.handoff ? returnedMessages(client.state.inflight) : undefined;
    if (returned === undefined || returned.length === 0) return this.#dropSession(client);
    // What the session loses and what its groups get, in one cluster write: a node dying in between
    // would lose the messages, or have them passed on again by its claimer.
    const work = () => {
      this.#dropSession(client);
      this.#host.handoff!.pass(returned);
    };
    if (this.#host.atomically) this.#host.atomically(work);
    else work();
  }

  /** Removes a session's subscriptions and drops its in-flight messages. */
  #dropSession(client: Client): void {
    const { topics, hooks, info } = this.#host;
    const subscriptions = client.state.subscriptions;
    if (subscriptions.size > 0) {
      for (const filter of subscriptions.keys()) topics.unsubscribe(client.id, filter);
      const filters = [...subscriptions.values()].map(({ filter }) => ({ filter, qos: 0 as QoS }));
      subscriptions.clear();
      hooks.onUnsubscribed(client, { fixedHeader: { type: PacketType.Unsubscribe }, filters });
    }
    const inflight = client.state.inflight;
    for (const packet of inflight.outbound.values()) {
      info.inflight--;
      hooks.onQosDropped(client, packet);
    }
    for (const packet of inflight.pending) hooks.onQosDropped(client, packet);
    for (const packetId of inflight.inboundQos2) {
      hooks.onQosDropped(client, { fixedHeader: { type: PacketType.Pubrec }, packetId });
    }
    inflight.clear();
  }
}

/** A session's subscriptions and in-flight state, in order, for another node. */
function snapshotOf(client: Client): SessionSnapshot {
  const inflight: InflightRecord[] = [];
  const state = client.state.inflight;
  const outbound = (packet: Packet, packetId: number) => {
    const pubrel = packet.fixedHeader.type === PacketType.Pubrel;
    const record: InflightRecord = {
      clientId: client.id,
      direction: "out",
      sequence: packet.sequence ?? 0,
      packetId,
      stage: pubrel ? "pubrel" : "publish",
      message: pubrel ? undefined : storedMessage(packet),
    };
    if (packet.sharedGroups !== undefined) record.groups = packet.sharedGroups;
    inflight.push(record);
  };
  for (const [packetId, packet] of state.outbound) outbound(packet, packetId);
  for (const packet of state.pending) outbound(packet, 0);
  inflight.sort((a, b) => a.sequence - b.sequence);
  for (const packetId of state.inboundQos2) {
    inflight.push({ clientId: client.id, direction: "in", sequence: 0, packetId, stage: "pubrec" });
  }
  return { subscriptions: [...client.state.subscriptions.values()], inflight };
}

/**
 * Whether a new connection may resume this session. A live connection's session outlives it only
 * with a Session Expiry Interval: a clean session (v3.1.1) or an expiry of 0 (v5) ends when its
 * connection does, which the takeover is about to close, so there is nothing to resume
 * [MQTT-3.1.2-6] [MQTT-3.2.2-2/3] (v5 3.1.2.11.2). A disconnected one is resumable until it expires.
 */
function isResumable(existing: Client): boolean {
  return existing.closed ? !isExpired(existing) : existing.properties.sessionExpiryInterval > 0;
}

function isExpired(client: Client): boolean {
  return client.state.expiresAt !== 0 && Date.now() >= client.state.expiresAt;
}

/**
 * The cluster contract: what a server calls when it is one node of many, and what it offers the
 * cluster in return. The engine (Redis today, see `hooks/cluster/`) implements {@linkcode Cluster};
 * the server implements {@linkcode ClusterHost}. Without a cluster the server never calls any of
 * this: each seam is one `undefined` check.
 *
 * The seams, and only these, know about other nodes:
 * - routing: `Server.publishToSubscribers(packet, from)` hands every message accepted on this node
 *   to {@linkcode Cluster.route} (which forwards it to the nodes whose routes match), and delivers a
 *   message from another node locally, restricted to what that node asked for ({@linkcode MessageOrigin});
 *   a message a shared group's member gave back when it left goes through {@linkcode Cluster.handOff};
 * - routes: the topic index reports each (client, filter) pair added or removed
 *   ({@linkcode FilterObserver}), so every node knows which filters the others have;
 * - retained messages: set or cleared through {@linkcode Cluster.retain}, mirrored from other nodes
 *   through {@linkcode ClusterHost.applyRetained};
 * - acknowledgements: a QoS 1/2 ack, SUBACK or UNSUBACK waits for {@linkcode Cluster.sync} (the same
 *   group commit as storage durability), so nothing acknowledged exists only in this process;
 *
 * - sessions: a CONNECT first claims its client id cluster-wide ({@linkcode Cluster.claimSession});
 *   the node that owned it hands the session over ({@linkcode ClusterHost.releaseSession}, DISCONNECT
 *   0x8E to a live connection) and the claiming node adopts it; a session that ends gives its id up
 *   ({@linkcode Cluster.sessionEnded}).
 *
 * - wills and hand-offs: what they forward and change in stored sessions is one write
 *   ({@linkcode Cluster.atomically}), so that a dead node's claimer neither repeats nor loses them;
 *
 * - dead nodes: the survivor that claims a dead node adopts its sessions from the engine
 *   ({@linkcode ClusterHost.adoptSessions}): wills go out (after their delay), persistent sessions go on
 *   collecting messages; an engine may store sessions through a storage hook ({@linkcode Cluster.sessionStore}).
 *
 * The codec and the client know nothing of any of this.
 *
 * @module
 */

import type { Packet, Subscription } from "./packets/types.ts";
import type { ClientRecord, InflightRecord } from "./storage.ts";
import type { Client } from "./client.ts";
import type { Hook } from "./hooks.ts";
import type { FilterObserver, Subscribers, TopicsIndex } from "./topics.ts";
import type { Hooks } from "./hooks.ts";
import type { Info } from "./system.ts";

/** Where a message delivered by {@linkcode ClusterHost.deliver} came from, and whom it is for here. */
export interface MessageOrigin {
  /** The node that accepted the message. */
  readonly node: string;
  /** Deliver to this node's non-shared subscriptions. */
  readonly plain: boolean;
  /** Shared groups (`"{group}/{topicFilter}"`) whose member for this message is to be picked on this node. */
  readonly groups: readonly string[];
  /** Deliver only to these client ids (messages left for a dead node, to the sessions adopted from it). */
  readonly only?: ReadonlySet<string>;
  /** Not to these client ids' non-shared subscriptions (they have this message already). */
  readonly except?: ReadonlySet<string>;
}

/** A message a session holds (see {@linkcode ClusterHost.messageIds}). */
export interface HeldId {
  /** Its cluster-wide id. */
  readonly id: string;
  /** The shared groups that gave it to the session (`Packet.sharedGroups`), if only they did. */
  readonly groups: readonly string[] | undefined;
}

/** One node of the cluster, as the cluster reports it (for `/api/info`, `$SYS`, the dashboard). */
export interface ClusterNodeInfo {
  /** The node id. */
  id: string;
  /** Whether its lease is current. */
  alive: boolean;
  /** Connected clients. */
  connections: number;
  /** Messages received per second (last few seconds). */
  messagesPerSecond: number;
  /** When it joined (ms since epoch). */
  started: number;
}

/** A session as handed from one node to another: what the new owner needs to resume it. */
export interface SessionSnapshot {
  /** The session's subscriptions. */
  subscriptions: Subscription[];
  /** Outbound messages (sent and awaiting an ack, or queued) in order, and inbound QoS 2 ids. */
  inflight: InflightRecord[];
}

/** A session adopted from a dead node: its stored record and state. */
export interface AdoptedSession {
  /** The session as stored (properties, will, connection times). */
  record: ClientRecord;
  /** Its subscriptions and messages. */
  snapshot: SessionSnapshot;
}

/** What the server offers its cluster. */
export interface ClusterHost {
  /**
   * Delivers a message accepted on another node to this node's subscribers (through the same
   * routing function as local messages, never forwarded again).
   *
   * @param packet The message, with `origin`, `created` and `expiry` set.
   * @param from Where it came from and which subscribers it is for.
   */
  deliver(packet: Packet, from: MessageOrigin): void;
  /**
   * Sets (or, with an empty payload, clears) a retained message in this node's mirror.
   *
   * @param packet The retained message.
   */
  applyRetained(packet: Packet): void;
  /** Resolves when this node's own storage (any storage hook) has everything delivered so far. */
  syncLocal(): Promise<void>;
  /**
   * Backpressure: `undefined` when no local subscriber is congested, else a promise that resolves once
   * they have caught up. A node stops reading its inbox meanwhile (local publishers are paused).
   */
  drained(): Promise<void> | undefined;
  /** Connected clients on this node. */
  connections(): number;
  /** Messages received by this node since start. */
  messagesReceived(): number;
  /**
   * Gives up a client id another node claimed: a live connection gets DISCONNECT 0x8E, the session
   * is ended here, and its state is returned for the new owner.
   *
   * @param clientId The client id.
   * @param clean Whether the new connection asked for a clean start (then nothing is returned, and a
   *   pending will is sent now, as on one node).
   * @returns The session to hand over, or undefined when there is none to keep.
   */
  releaseSession(clientId: string, clean: boolean): SessionSnapshot | undefined;
  /**
   * Takes in, as disconnected sessions, the sessions of a dead node this node claimed: a session that
   * has expired ends now (its will goes out), the others keep their subscriptions and queues, and their
   * wills go out after their will delay unless the client comes back first.
   *
   * @param sessions The sessions.
   * @param diedAt When the node died (ms since epoch; default now): will delays and expiry count from it.
   */
  adoptSessions(sessions: AdoptedSession[], diedAt?: number): void;
  /**
   * The cluster-wide ids (`Packet.clusterId`) of the messages a session on this node holds, queued or in
   * flight, with the shared groups that gave it each: a claimer delivers none of them to it again from a
   * dead node's inbox, nor to those groups.
   *
   * @param clientId The client id.
   * @returns The ids (none when the session is not here).
   */
  messageIds(clientId: string): HeldId[];
  /**
   * For each shared group with a member on this node whose client is not connected, how many of its members
   * here are connected (the other nodes give a group's new messages to connected members first).
   *
   * @returns Group (`"{ShareName}/{topicFilter}"`) to its connected members here; the others have all connected.
   */
  sharedOnline(): Map<string, number>;
  /**
   * Drops every session of this node without a trace: the node was declared dead (it stalled past its
   * lease) and a survivor claimed it meanwhile, sent its wills and adopted its sessions. Every
   * connection gets DISCONNECT `code` and closes; no will goes out; nothing is written back.
   *
   * @param code The DISCONNECT reason code (v5).
   * @returns How many connections were closed.
   */
  dropSessions(code: number): number;
}

/**
 * A cluster engine, added with `Server.addCluster`. One per server.
 */
export interface Cluster extends FilterObserver {
  /** This node's id, unique in the cluster. */
  readonly nodeId: string;
  /**
   * Joins the cluster: connects, registers this node, loads the route table and retained messages.
   *
   * @param host The server.
   * @throws {Error} When the engine cannot be reached (the message names its address).
   */
  start(host: ClusterHost): Promise<void>;
  /** Leaves the cluster cleanly: routes dropped, lease released. */
  stop(): Promise<void>;
  /**
   * Routes a message accepted on this node: queues it for every other node with a matching route, and
   * removes from `subscribers.shared` the groups whose member for this message is on another node.
   *
   * @param packet The message. When nothing on this node matched, its payload may still be a view of
   *   the publisher's read buffer, valid only during the call: copy it to keep it.
   * @param subscribers This node's matching subscribers (its `shared` map may be narrowed).
   */
  route(packet: Packet, subscribers: Subscribers): void;
  /**
   * Routes a message that a member of a shared group gave back when it left the group (its session
   * ended: see `shared_handoff.ts`) to the group's other members: picks where the group's member for it
   * is, as {@linkcode Cluster.route} does for that one group, and forwards it there (to that group only,
   * never to non-shared subscriptions) unless it is this node's turn.
   *
   * @param packet The message (a fresh PUBLISH).
   * @param group The group, `"{ShareName}/{topicFilter}"`.
   * @param localMembers How many members the group has on this node now.
   * @returns True when forwarded to another node; false when this node's members take it (or, with
   *   none here, when no node has a member left).
   */
  handOff?(packet: Packet, group: string, localMembers: number): boolean;
  /**
   * Runs `work`, synchronous, so that what it forwards to other nodes and what it changes in the sessions
   * this node stores are written together, atomically: a node that dies at any moment has done all of it
   * or none. The server runs a will's publish (with its removal from the session's record) and a shared
   * group member's hand-off (with the messages' removal from its session) so; everything else is written
   * as it comes.
   *
   * @param work The work.
   */
  atomically?(work: () => void): void;
  /**
   * Sets or clears (empty payload) a retained message cluster-wide.
   *
   * @param packet The retained message as stored.
   */
  retain(packet: Packet): void;
  /** Resolves when this node's retained mirror is as new as the cluster's was at the call. */
  retainedReady(): Promise<void>;
  /** Resolves when everything queued so far (forwards, routes, retained) is durable. */
  sync(): Promise<void>;
  /**
   * Claims a client id for a connection on this node (before its CONNACK). When another node owned
   * it, that node hands the session over first.
   *
   * The session (with its will) is recorded before the CONNACK, so that the node that claims this one
   * if it dies finds it.
   *
   * @param client The connecting client (id, clean start, properties and will set).
   * @returns The session handed over by the previous owner (or left by a dead one), if any.
   * @throws {Error} When the claim cannot be recorded (the connection is refused with 0x88).
   */
  claimSession(client: Client): Promise<SessionSnapshot | undefined>;
  /**
   * The session claimed for `client` was admitted here (what was handed over is adopted), or the
   * client went away meanwhile: messages that arrived for it during the handoff are delivered now.
   *
   * @param client The client whose claim resolved.
   */
  sessionAdmitted(client: Client): void;
  /**
   * Whether this node may still act for its sessions (send a will): undefined when its lease is known
   * current; otherwise a promise that resolves once that is known, false when the node was claimed
   * meanwhile (it stalled past its lease: its claimer sent the wills).
   */
  leaseHeld(): Promise<boolean> | undefined;
  /**
   * The client sent a clean DISCONNECT (its will is dropped): stores that, so that no node that claims
   * this one if it dies now sends the will. The server closes the socket once it resolves.
   *
   * @param client The client (its will already removed).
   * @returns Resolves when stored (or after a few seconds if the engine is unreachable); undefined when
   *   there is nothing to store.
   */
  endedCleanly?(client: Client): Promise<void> | undefined;
  /**
   * A session owned here ended (expired, or ended at disconnect): its id is free.
   *
   * @param clientId The client id.
   */
  sessionEnded(clientId: string): void;
  /** The cluster's nodes, this one included, as last seen. */
  nodes(): ClusterNodeInfo[];
  /** A hook that stores this node's sessions in the engine (added to the server with the cluster). */
  readonly sessionStore?: Hook;
}

/** The parts of a server a cluster is attached to. */
export interface ClusterServer {
  /** The topic index. */
  readonly topics: TopicsIndex;
  /** Whether a client is connected (see `Server.isOnline`). */
  isOnline(clientId: string): boolean;
  /** The hooks. */
  readonly hooks: Hooks;
  /** The counters. */
  readonly info: Info;
  /** The routing function. */
  publishToSubscribers: ClusterHost["deliver"];
  /** See {@linkcode ClusterHost.drained}. */
  drained(): Promise<void> | undefined;
  /** Creates a client object (offline when `conn` is null). */
  newClient(conn: null, listener: string, id: string, inline: boolean): Client;
}

/** What the server's sessions offer a cluster. */
export interface ClusterSessions {
  /** See {@linkcode ClusterHost.releaseSession}. */
  release(clientId: string, clean: boolean): SessionSnapshot | undefined;
  /** See {@linkcode ClusterHost.adoptSessions}. */
  adoptStored(
    sessions: AdoptedSession[],
    newClient: (listener: string, id: string) => Client,
    diedAt?: number,
  ): void;
  /** See {@linkcode ClusterHost.dropSessions}. */
  dropAll(code: number): number;
  /** See {@linkcode ClusterHost.messageIds}. */
  clusterIds(clientId: string): HeldId[];
}

/**
 * Starts a cluster for a server and wires the topic index to it: the glue behind `Server.addCluster`.
 *
 * @param cluster The cluster.
 * @param server The server (topic index: routes follow its subscriptions, retained mirror; hooks: local
 *   durability; counters; routing function).
 * @param sessions The server's sessions (released when another node claims one; adopted from dead nodes).
 */
export async function attachCluster(
  cluster: Cluster,
  server: ClusterServer,
  sessions: ClusterSessions,
): Promise<void> {
  const { topics, hooks, info } = server;
  if (cluster.sessionStore) await hooks.add(cluster.sessionStore);
  const newClient = (listener: string, id: string) => server.newClient(null, listener, id, false);
  await cluster.start({
    deliver: (packet, from) => server.publishToSubscribers(packet, from),
    releaseSession: (clientId, clean) => sessions.release(clientId, clean),
    adoptSessions: (adopted, diedAt) => sessions.adoptStored(adopted, newClient, diedAt),
    messageIds: (clientId) => sessions.clusterIds(clientId),
    sharedOnline: () => {
      const online = new Map<string, number>();
      for (const [key, { members }] of topics.sharedGroups) {
        let connected = 0;
        for (const id of members.keys()) if (server.isOnline(id)) connected++;
        if (connected < members.size) online.set(key, connected);
      }
      return online;
    },
    dropSessions: (code) => sessions.dropAll(code),
    applyRetained: (packet) => {
      topics.retain(packet);
    },
    syncLocal: () => hooks.has("sync") ? hooks.sync() : Promise.resolve(),
    drained: () => server.drained(),
    connections: () => info.clientsConnected,
    messagesReceived: () => info.messagesReceived,
  });
  topics.filterObserver = cluster;
  info.cluster = cluster;
  for (const sub of topics.allSubscriptions()) cluster.filterAdded(sub.filter);
}

/**
 * Closes a client's connection after its DISCONNECT, dropping its will if the DISCONNECT was clean
 * [MQTT-3.1.2-10]. In a cluster, a will dropped so is stored first, so that no node that claims this
 * one if it dies now sends it ({@linkcode Cluster.endedCleanly}).
 *
 * @param cluster The server's cluster, if any.
 * @param client The client that sent DISCONNECT (`state.cleanDisconnect` set).
 * @param reason Why the connection closes.
 * @returns Resolves once closed (undefined: closed at once).
 */
export function closeCleanly(
  cluster: Cluster | undefined,
  client: Client,
  reason: string,
): void | Promise<void> {
  const dropped = client.state.cleanDisconnect && client.properties.will !== undefined;
  if (client.state.cleanDisconnect) client.properties.will = undefined;
  const stored = dropped ? cluster?.endedCleanly?.(client) : undefined;
  if (stored === undefined) return client.close(new Error(reason));
  return stored.then(() => client.close(new Error(reason)));
}

/**
 * Narrows a message's subscribers on this node to what the node that forwarded it chose this node
 * for: non-shared subscriptions only if `plain`, and only the listed shared groups.
 *
 * @param subscribers What the topic index matched (changed in place).
 * @param from The message's origin.
 */
export function restrictToOrigin(subscribers: Subscribers, from: MessageOrigin): void {
  if (!from.plain) subscribers.subscriptions.clear();
  if (subscribers.shared.size > 0) {
    for (const key of subscribers.shared.keys()) {
      if (!from.groups.includes(key)) subscribers.shared.delete(key);
    }
  }
  const except = from.except;
  if (except !== undefined) {
    for (const clientId of except) subscribers.subscriptions.delete(clientId);
  }
  const only = from.only;
  if (only === undefined) return;
  for (const clientId of subscribers.subscriptions.keys()) {
    if (!only.has(clientId)) subscribers.subscriptions.delete(clientId);
  }
  for (const [key, members] of subscribers.shared) {
    const kept = new Map([...members].filter(([clientId]) => only.has(clientId)));
    if (kept.size === 0) subscribers.shared.delete(key);
    else subscribers.shared.set(key, kept);
  }
}

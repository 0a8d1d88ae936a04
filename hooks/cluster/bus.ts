/**
 * The cluster bus: the few primitives a cluster engine must offer. {@linkcode BusCluster} (in
 * `cluster.ts`) builds the whole cluster (membership, route table, forwarding, retained mirror) on
 * them; `redis_bus.ts` implements them on Redis 7. Another engine (NATS JetStream: KV buckets with
 * TTL for leases, a stream per node, subjects for announcements) would implement this interface and
 * nothing else.
 *
 * What an engine must guarantee:
 * - {@linkcode ClusterBus.commit} applies a batch atomically and in order, and resolves only when it
 *   is stored (it is what acknowledgements wait for); session writes in a batch are applied as
 *   {@linkcode ClusterBus.storeSessions} applies them, in the same atomic write as the batch's forwards
 *   (a will sent, or a shared group's messages given back, and what they change in stored sessions);
 * - a node's inbox keeps entries in append order until deleted, and survives the node;
 * - announcements reach every listening node in commit order (they may be lost across a
 *   disconnection: the cluster then resyncs, and sequence numbers reveal gaps);
 * - leases expire by the engine's clock; {@linkcode ClusterBus.claim} succeeds for exactly one caller;
 * - each {@linkcode ClusterBus.join} registers a new incarnation of the node; once a survivor claimed
 *   it, nothing of that incarnation is applied any more: its renewals report `"claimed"`, its session
 *   claims are refused, and its route changes and inbox deletions are skipped (a node
 *   that stalled past its lease cannot undo what its claimer did).
 *
 * @module
 */

/** One route change of this node (a filter's local subscription count; 0 removes it). */
export interface RouteChange {
  /** The filter (with any `$share/{group}/` prefix). */
  filter: string;
  /** Local subscriptions to it (for a shared filter, the group's members on this node); 0 to remove. */
  count: number;
  /** This node's route sequence number after the change. */
  seq: number;
}

/** One retained message change. */
export interface RetainedChange {
  /** The topic. */
  topic: string;
  /** The message record (see `wire.ts`), or undefined to clear. */
  record: Uint8Array | undefined;
  /** When the message expires (ms since epoch; 0 or absent: never). */
  expiry?: number;
}

/** Writes applied together by {@linkcode ClusterBus.commit}. */
export interface Batch {
  /** Records to append to each destination node's inbox (one entry per node). */
  forwards: Map<string, Uint8Array>;
  /** This node's route changes, in sequence order (each announced). */
  routes: RouteChange[];
  /** Retained changes, in order (each gets the next cluster-wide version and is announced). */
  retained: RetainedChange[];
  /** Entries of this node's inbox that were delivered and may be deleted (unused by `BusCluster`, which
   * deletes them with the session writes: {@linkcode ClusterBus.storeSessions}). */
  delivered: string[];
  /** Sessions that ended here: their ownership is removed if this node still holds it at that epoch. */
  endedSessions: { clientId: string; epoch: number }[];
  /**
   * Session writes made with this batch's forwards (usually empty: sessions are written by
   * {@linkcode ClusterBus.storeSessions}); each applied only if this node still owns the session at its epoch.
   */
  sessions: SessionWrite[];
}

/** What {@linkcode ClusterBus.claimSession} found. */
export interface SessionClaim {
  /** The node that owned the client id before, if any. */
  previous: string | undefined;
  /** Whether that node's lease is current. */
  previousAlive: boolean;
  /**
   * The previous owner is dead but not yet claimed by a survivor: nothing was changed; ask again
   * once it is (the survivor will have adopted the session, with every message left for it).
   */
  wait: boolean;
  /** The new ownership epoch (greater than every earlier one for this client id). */
  epoch: number;
  /** The stored session left by a dead previous owner (its hash's fields), when resuming it. */
  stored: Record<string, string> | undefined;
  /** The filters of the session a live previous owner is to hand over (as it stored them). */
  filters?: string[];
}

/**
 * One session's writes, applied only if this node still owns it at `epoch`, or owned it at `epoch` and is
 * handing it over (a claim waits for its handoff: until then the previous owner's writes still count). An
 * epoch counts as long as the node has owned the session without a break since (it claimed the id again
 * for a new connection of its client, without a clean start, while the writes were on their way).
 */
export interface SessionWrite {
  /** The client id. */
  clientId: string;
  /** The ownership epoch the writes were made under. */
  epoch: number;
  /**
   * `["S", field, value]` sets, `["H", field, ""]` removes a field, `["D", "", ""]` deletes the session,
   * `["R", prefix, ""]` deletes every field but those whose name starts with `prefix` (a session rewritten
   * whole, keeping the messages held for it during its move).
   */
  ops: ["S" | "H" | "D" | "R", string, string][];
  /** The node that handed the session over (it no longer counts among that node's sessions). */
  from?: string;
}

/** A session adopted from a dead node by {@linkcode ClusterBus.adoptSessions}. */
export interface AdoptedEntry {
  /** The client id. */
  clientId: string;
  /** The adopter's ownership epoch. */
  epoch: number;
  /** The stored session's fields. */
  fields: Record<string, string>;
}

/** An entry of a node's inbox. */
export interface InboxEntry {
  /** Its id (increasing). */
  id: string;
  /** The node that appended it. */
  from: string;
  /** The records (see `wire.ts`). */
  records: Uint8Array;
}

/** A node as registered: its lease value while alive. */
export interface NodeEntry {
  /** The node id. */
  id: string;
  /** The lease's value (what the node last reported), or undefined when the lease expired. */
  lease: string | undefined;
  /** Which join of the node this is (another value: it was claimed and joined again), if the engine tells. */
  incarnation?: string;
}

/** A node's routes as stored. */
export interface StoredRoutes {
  /** The node's route sequence number. */
  seq: number;
  /** Filter to count. */
  filters: Map<string, number>;
}

/** Announcements, as {@linkcode ClusterBus.listen} delivers them. */
export interface BusListener {
  /** A node changed a route. */
  route(node: string, change: RouteChange): void;
  /** A node's routes were all dropped (it left, died, or restarted). */
  routesDropped(node: string): void;
  /** A retained message changed; `version` increases by one per change, cluster-wide. */
  retained(version: number, topic: string, record: Uint8Array | undefined): void;
  /** The announcement channel was re-established: announcements may have been missed. */
  reconnected(): void;
}

/**
 * What a lease renewal found: `"renewed"`; `"lapsed"` (it had expired but nobody claimed the node,
 * e.g. after an engine outage: taken again); `"claimed"` (a survivor claimed this incarnation: nothing
 * was renewed, the node must drop its state and join again); `"lost"` (the engine lost the cluster's
 * data, e.g. Redis restarted without persistence or was flushed: the node must drop its state and join
 * again).
 */
export type Renewal = "renewed" | "lapsed" | "claimed" | "lost";

/** The primitives of a cluster engine. */
export interface ClusterBus {
  /** Where the engine is, for messages (no credentials). */
  readonly address: string;
  /**
   * Connects, and starts delivering announcements to `listener`.
   *
   * @throws {Error} When the engine cannot be reached or refuses the credentials.
   */
  connect(listener: BusListener): Promise<void>;
  /** Disconnects. */
  close(): Promise<void>;
  /** Whether the last command failed for lack of a connection. */
  readonly down: boolean;

  /**
   * Takes the lease of a node id for `ttlMs` and registers a new incarnation of the node, unless a
   * live node holds it or a survivor's claim of an earlier incarnation is not released yet.
   *
   * @returns True when taken.
   */
  join(node: string, value: string, ttlMs: number): Promise<boolean>;
  /**
   * Renews the lease of the incarnation this bus joined.
   *
   * @returns What it found (see {@linkcode Renewal}).
   */
  renew(node: string, value: string, ttlMs: number): Promise<Renewal>;
  /**
   * A claimed dead node leaves (its claimer calls this once it adopted its sessions): lease, registration
   * and routes removed, `routesDropped` announced. The inbox is kept for {@linkcode ClusterBus.orphans},
   * and the claim stays until {@linkcode ClusterBus.claimDone}.
   */
  leave(node: string): Promise<void>;
  /**
   * A graceful stop. While another node is alive, only the node's lease goes: it counts as dead at once,
   * and a survivor claims it as it would a dead node, adopting its sessions (which keep collecting their
   * messages) and delivering what is left in its inbox. The last live node leaves instead (its lease,
   * registration, routes, inbox and claim removed, `routesDropped` announced), and so do the nodes that
   * retired before it with nobody left to claim them; their sessions stay in the engine for their
   * clients to resume. Atomic: of nodes stopping together, exactly one is the last.
   *
   * @returns True when a survivor adopts the node's sessions.
   */
  retire(node: string): Promise<boolean>;
  /** Releases the claim of a dead node once its claimer is done with it: the node id may join again. */
  claimDone(dead: string): Promise<void>;
  /** Every registered node, with its lease value if alive. */
  members(): Promise<NodeEntry[]>;
  /**
   * Claims a registered node whose lease expired: exactly one caller wins, and the node is
   * unregistered. Its routes and inbox stay until {@linkcode ClusterBus.leave} is called for it.
   *
   * @returns True for the one caller that won.
   */
  claim(dead: string, by: string): Promise<boolean>;

  /**
   * Makes `node` the owner of a client id, atomically, with the next epoch, and stores the session's
   * client record (with its will). A clean start discards the stored session first; a dead previous
   * owner's is returned (a live one hands it over itself, and the claimer then rewrites it). Nothing changes while
   * the previous owner is dead but unclaimed (`wait`). Until a live previous owner hands the session
   * over, the stored record stays its own and the session counts among its sessions (adopted with them
   * if it dies first: the claim is then made again, from the adopter).
   *
   * @returns The previous owner and the new epoch.
   */
  claimSession(clientId: string, node: string, clean: boolean, record: string): Promise<SessionClaim>;
  /**
   * The ownership epoch of a session, if `node` owns it.
   *
   * @returns The epoch, or undefined when another node (or none) owns it.
   */
  sessionEpoch(clientId: string, node: string): Promise<number | undefined>;
  /**
   * A session as stored (its hash's fields), whoever owns it: taken as it is when its previous owner
   * never hands it over.
   *
   * @returns The fields, or undefined when nothing is stored.
   */
  storedSession(clientId: string): Promise<Record<string, string> | undefined>;
  /**
   * Applies session writes, each only if `node` still owns the session at its epoch, and (atomically with
   * them) deletes entries of the node's inbox that were delivered (unless the node's incarnation was
   * claimed: then its claimer delivers them).
   */
  storeSessions(node: string, writes: SessionWrite[], delivered?: string[]): Promise<void>;
  /**
   * Takes every session still owned by a dead node (claimed by `by`), and every session claimed from
   * it that it never handed over: each gets `by` as owner with the next epoch, atomically.
   */
  adoptSessions(dead: string, by: string): Promise<AdoptedEntry[]>;
  /**
   * Moves what is in a dead node's inbox aside (to be delivered by its claimer) and returns it,
   * oldest first; {@linkcode ClusterBus.dropOrphans} deletes it once delivered.
   */
  orphans(dead: string): Promise<InboxEntry[]>;
  /** Deletes the entries returned by {@linkcode ClusterBus.orphans}. */
  dropOrphans(dead: string): Promise<void>;

  /** Applies a batch atomically; resolves when stored. */
  commit(node: string, batch: Batch): Promise<void>;
  /** Reads a node's stored routes. */
  routes(node: string): Promise<StoredRoutes>;
  /**
   * Reads a node's inbox after `after` (`"0"` from the start), waiting up to `blockMs` for entries.
   * Uses its own connection: other commands are not held up.
   */
  read(node: string, after: string, count: number, blockMs: number): Promise<InboxEntry[]>;
  /**
   * Clears every retained message whose expiry has passed (each announced as a change), so that none
   * outlives its expiry in the engine.
   *
   * @returns How many were cleared.
   */
  expireRetained(now: number): Promise<number>;
  /** The current retained version. */
  retainedVersion(): Promise<number>;
  /** Every retained message record, with the version they make up. */
  retainedAll(): Promise<{ version: number; records: Map<string, Uint8Array> }>;
}

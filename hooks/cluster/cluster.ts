/**
 * {@linkcode BusCluster}: one node of a cluster, built on a {@linkcode ClusterBus} (the engine). It
 * implements the core's `Cluster` contract (`src/cluster.ts`):
 *
 * - **Membership.** A lease per node in the engine, renewed every `leaseMs / 5` (default lease 2.5 s,
 *   renewed every 0.5 s, so a node that stops is noticed within 3 s while a stall of a second or so
 *   costs nothing). Every node checks the registered nodes on each renewal; a registered node
 *   without a lease is claimed by exactly one survivor (atomically in the engine), which drops its
 *   routes and inbox. Acks wait until this node's lease is known current ({@linkcode LeaseGate}); a
 *   node that learns on renewal that it was claimed while it stalled drops every client (0x8B) and
 *   session without a write, and joins again as a new incarnation (the old one is fenced in the engine).
 *   A node that stops gracefully gives up its lease once what it holds is stored, so that a survivor claims
 *   it at once and adopts its sessions; the last live node leaves instead ({@linkcode ClusterBus.retire}).
 * - **Routes.** Each node counts its local subscriptions per filter (told by the topic index) and
 *   stores a change when a filter appears or goes (for shared filters, every change of the count,
 *   which weighs the node in the group) together with its announcement and a sequence number, before
 *   the SUBACK goes out. Every node keeps every other node's routes in a {@linkcode RouteTable};
 *   a sequence gap, a reconnection, or a lease reporting a newer sequence reloads that node's routes
 *   (`route_loads.ts`). Announcements carry no acknowledgement: where a route must be known everywhere
 *   (a session moving here asks its old owner for it only then), a route barrier goes through every
 *   other node's inbox and back ({@linkcode RouteBarriers}, `route_barrier.ts`).
 * - **Forwarding.** A message accepted here goes to the nodes whose routes match (a per-topic answer
 *   cached until the routes change), as records encoded once into a per-node buffer and written as one
 *   inbox entry per destination per commit, all in one atomic commit. Commits are group commits,
 *   pipelined in 64 KiB batches under load, applied in order (see `commits.ts`). Acks wait for
 *   {@linkcode BusCluster.sync}, which resolves when the commit holding everything queued so far
 *   and every earlier one succeeded: a QoS 1/2 publisher is acknowledged only when the message is in
 *   the inbox of every node that must deliver it. Same-node traffic never touches the engine. Each
 *   node reads its inbox in order (per-publisher order is kept) and delivers through the server's
 *   routing function; the entries are deleted in the same commit that stores their messages in the
 *   persistent sessions (`SessionStore.inboxDelivered`), and those sessions' connections get the
 *   messages only once that commit is done (their writes are held meanwhile: `holdWritesOf`), so that
 *   a node dying at any moment leaves each message either in its inbox or in the stored session,
 *   never both and never neither.
 * - **Exactly once.** Every forwarded message carries an id unique cluster-wide (this process's random
 *   epoch and a counter: `wire.ts`), the same for every destination. A batch written twice (a commit
 *   retried after its reply was lost) is read once, and the copies that meet at a dead node's claimer
 *   (its own inbox, and the dead node's) reach each adopted session once (`delivered_once.ts`).
 * - **Shared subscriptions.** For each matching group the publishing node picks where its member is,
 *   round robin weighted by each node's member count (so the load spreads over members, not nodes),
 *   counting connected members only while the group has any (each node reports with its lease the groups
 *   whose members there are not all connected); that node picks the member among its own.
 * - **Wills and hand-offs, all or nothing.** What a will sent here, or a shared group's member giving its
 *   messages back, forwards and changes in stored sessions is one commit ({@linkcode BusCluster.atomically}).
 * - **Retained messages.** A change is one engine script: the next cluster-wide version, the stored
 *   record, and its announcement. Every node applies announcements in version order to its mirror
 *   (the server's topic index), its own included, so concurrent writes end the same everywhere; a gap
 *   reloads the whole mirror. A SUBSCRIBE first reads the current version and waits until the mirror
 *   has it, so a retained message acknowledged anywhere before is delivered.
 * - **Engine trouble.** A commit that fails is retried with backoff and its acks stay withheld;
 *   QoS 0 messages for other nodes are dropped meanwhile (local delivery goes on). One warning per
 *   outage, one line when it ends.
 *
 * `$SYS` topics are each node's own: neither forwarded nor retained cluster-wide.
 *
 * @module
 */

import type { Packet } from "../../src/packets/types.ts";
import type { Cluster, ClusterHost, ClusterNodeInfo, SessionSnapshot } from "../../src/cluster.ts";
import { type Client, holdWritesOf } from "../../src/client.ts";
import { SessionStore } from "./session_store.ts";
import { SessionClaims } from "./session_claims.ts";
import type { Subscribers } from "../../src/topics.ts";
import { logger } from "../../src/logger.ts";
import type { BusListener, ClusterBus, InboxEntry } from "./bus.ts";
import { RouteTable } from "./route_table.ts";
import { RouteLoads } from "./route_loads.ts";
import { Commits } from "./commits.ts";
import { RetainedMirror } from "./retained_mirror.ts";
import { Reaper } from "./dead_nodes.ts";
import { EngineOutage, LeaseGate } from "./health.ts";
import { defaultNodeId, previousLifeClaimed } from "./node_id.ts";
import { encodeMessage, type MessageId, messageRecord, writeControl, writeRecord } from "./wire.ts";
import { ClaimWindows, idKey, OriginSequences } from "./delivered_once.ts";
import { deliverEntry, type InboxNode } from "./inbox.ts";
import { RouteBarriers } from "./route_barrier.ts";
import { delay, settlesWithin } from "./timing.ts";

const log = logger("cluster");

/** Inbox entries read at a time (each up to about 64 KiB: see `commits.ts`); 16 cost less than 128. */
const INBOX_READ_COUNT = 16;

/** Options of a cluster node. */
export interface ClusterOptions {
  /** This node's id, unique in the cluster (default: `{hostname}-{pid}-{random}`). */
  nodeId?: string;
  /** How long a node's lease lasts without renewal, in ms (default 2500; renewed every fifth of it). */
  leaseMs?: number;
}

/** What a node reports in its lease. */
interface Report {
  connections: number;
  rate: number;
  started: number;
  seq: number;
  /** Shared groups with members here that are not connected: how many are (see `RouteTable.online`). */
  online?: Record<string, number>;
}

/**
 * One node of a cluster on any {@linkcode ClusterBus}. Use `RedisCluster` for Redis.
 */
export class BusCluster implements Cluster {
  /** This node's id. */
  readonly nodeId: string;
  readonly #bus: ClusterBus;
  readonly #leaseMs: number;
  #host: ClusterHost | undefined;
  readonly #routes: RouteTable;
  /** Local subscriptions per filter. */
  readonly #local = new Map<string, number>();
  #routeSeq = 0;
  #committedSeq = 0;
  /** Other nodes' route announcements and reloads (into `#routes`). */
  readonly #routeLoads: RouteLoads;
  /** This node's routes confirmed on every other node (see `route_barrier.ts`); answers to theirs. */
  readonly #barriers: RouteBarriers;

  /** The batches of writes, gathered and committed in order. */
  readonly #commits: Commits;
  readonly #trouble: EngineOutage;

  readonly #retained: RetainedMirror;

  #nodes: ClusterNodeInfo[] = [];
  readonly #seqBehind = new Map<string, number>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #ticking = false;
  /** When each other node was last seen alive (its death is dated from it). */
  readonly #lastSeen = new Map<string, number>();
  #tickStarted = 0;
  #stopped = false;
  /** Whether this node's lease is known to be current (acknowledgements wait for it). */
  readonly #lease = new LeaseGate();
  /** Claimed while it stalled: dropping everything and joining again. */
  #fenced = false;
  /** Counts the joins (the inbox is read from its start after each). */
  #joins = 0;
  #reading: Promise<void> = Promise.resolve();
  readonly #started = Date.now();
  #rate = 0;
  #rateAt = Date.now();
  #rateCount = 0;
  /** Client ids owned here, with their ownership epoch. */
  readonly #owned = new Map<string, number>();
  /** Session claims, handoffs, and the messages held for sessions moving here. */
  readonly #claims: SessionClaims;
  /** QoS 0 messages for other nodes dropped while the engine was unreachable. */
  dropped = 0;
  /** Forwarded messages read twice and delivered once (see `delivered_once.ts`). */
  duplicates = 0;
  /** The id of the last message forwarded (the epoch is this process's, random; see `wire.ts`). */
  readonly #forwardId: MessageId = { epoch: crypto.getRandomValues(new Uint32Array(1))[0] || 1, seq: 0 };
  /** The last id read from each origin in this node's inbox. */
  readonly #inboxSequences = new OriginSequences();
  /** The dead nodes' claims worked through here (copies of a message that meet here are delivered once). */
  readonly #windows = new ClaimWindows();
  /** What delivering this node's inbox entries needs (see `inbox.ts`). */
  readonly #inboxNode: InboxNode;
  /** The storage hook keeping this node's sessions in the engine (added to the server with the cluster). */
  readonly sessionStore: SessionStore;
  readonly #reaper: Reaper;
  /** The cleanup of a dead node in progress (the inbox waits for it: a release sees adopted sessions whole). */
  #reaping: Promise<void> = Promise.resolve();

  /**
   * Creates a node; nothing connects before the server's `addCluster`.
   *
   * @param bus The engine.
   * @param options Node id and lease.
   */
  constructor(bus: ClusterBus, options: ClusterOptions = {}) {
    this.#bus = bus;
    this.nodeId = options.nodeId ?? defaultNodeId();
    this.#leaseMs = options.leaseMs ?? 2500;
    if (this.nodeId === "" || /\s/.test(this.nodeId) || this.nodeId.includes("\u0000")) {
      throw new TypeError(`Node id "${this.nodeId}" is not valid (empty, or with spaces)`);
    }
    this.#routes = new RouteTable(this.nodeId);
    this.sessionStore = new SessionStore(bus, this);
    this.#trouble = new EngineOutage(bus.address, () => this.#stopped);
    this.#commits = new Commits(bus, this.nodeId, this.#trouble, {
      stopped: () => this.#stopped,
      committed: (batch) => {
        for (const change of batch.routes) this.#committedSeq = Math.max(this.#committedSeq, change.seq);
      },
    });
    this.#retained = new RetainedMirror(bus, (packet) => this.#host!.applyRetained(packet));
    const owned = this.#owned;
    this.#routeLoads = new RouteLoads(bus, this.#routes, this.nodeId);
    this.#barriers = new RouteBarriers({
      nodeId: this.nodeId,
      leaseMs: this.#leaseMs,
      members: () => this.#bus.members(),
      control: (node, control) => this.#control(node, control),
      sync: () => this.sync(),
      routeSeq: () => this.#routeSeq,
      appliedSeq: (node) => this.#routes.seq(node),
      loadRoutes: (node) => this.#routeLoads.load(node),
      gone: () => this.#stopped || this.#fenced,
    });
    this.#claims = new SessionClaims(bus, {
      nodeId: this.nodeId,
      leaseMs: this.#leaseMs,
      address: bus.address,
      host: () => this.#host!,
      owned,
      troubled: () => this.#trouble.active,
      failed: (error) => {
        if (this.#bus.down) this.#trouble.began(error);
      },
      fenced: () => this.#fenced,
      control: (node, control) => this.#control(node, control),
      addRoute: (filter) => this.filterAdded(filter),
      removeRoute: (filter) => {
        if (this.#local.has(filter)) this.filterRemoved(filter);
      },
      routesKnown: (filters) => this.#barriers.known(filters),
      storeSync: () => this.sessionStore.sync(),
      stored: () => Promise.all([this.#commits.tail, this.sessionStore.sync()]).then(() => {}),
      writeFields: (clientId, fields) => this.sessionStore.writeFields(clientId, fields),
      deliveredFromDead: (clientId) => this.#reaper.deliveredTo(clientId),
      joins: () => this.#joins,
    });
    const host = () => this.#host!;
    this.#inboxNode = {
      get host() {
        return host();
      },
      claims: this.#claims,
      barriers: this.#barriers,
      sequences: this.#inboxSequences,
      windows: this.#windows,
      duplicate: () => this.duplicates++,
    };
    this.#reaper = new Reaper(bus, {
      nodeId: this.nodeId,
      leaseMs: this.#leaseMs,
      host: () => this.#host!,
      own: (clientId, epoch) => this.#owned.set(clientId, epoch),
      sessionEnded: (clientId) => this.sessionEnded(clientId),
      writeFields: (clientId, fields) => this.sessionStore.writeFields(clientId, fields),
      // Not the lease gate: the reaper runs inside the renewal tick, which alone lets the gate go.
      sync: () => this.#commits.tail,
      dropRoutes: (node) => this.#routes.drop(node),
      stopped: () => this.#stopped,
      windows: this.#windows,
      duplicate: () => this.duplicates++,
    });
  }

  /** How often the lease is renewed (ms). */
  get #renewalPeriod(): number {
    return Math.max(50, Math.floor(this.#leaseMs / 5));
  }

  /**
   * The ownership epoch of a session this node owns.
   *
   * @param clientId The client id.
   * @returns The epoch, or undefined when this node does not own it.
   */
  epochOf(clientId: string): number | undefined {
    return this.#owned.get(clientId);
  }

  /** The engine's address (no credentials). */
  get address(): string {
    return this.#bus.address;
  }

  readonly #listener: BusListener = {
    route: (node, change) => this.#routeLoads.announced(node, change),
    routesDropped: (node) => {
      if (node !== this.nodeId) this.#routes.drop(node);
    },
    retained: (version, topic, record) => this.#retained.announced(version, topic, record),
    reconnected: () => {
      log.debug("Cluster announcements reconnected: reloading routes and retained messages");
      for (const node of [...this.#routes.nodes()]) this.#routeLoads.load(node);
      this.#retained.reload();
    },
  };

  async start(host: ClusterHost): Promise<void> {
    this.#host = host;
    await this.#bus.connect(this.#listener);
    try {
      await previousLifeClaimed(this.#bus, this.nodeId, this.#leaseMs);
      const deadline = Date.now() + this.#leaseMs + 1500;
      while (!(await this.#join())) {
        if (Date.now() > deadline) {
          throw new Error(
            `Node id "${this.nodeId}" is in use by a live node of the cluster at ${this.address}`,
          );
        }
        await delay(200);
      }
      // Routes left by an earlier life of this node id are removed (announced in sequence).
      const stale = await this.#bus.routes(this.nodeId);
      this.#routeSeq = this.#committedSeq = stale.seq;
      for (const filter of stale.filters.keys()) {
        this.#commits.batch().routes.push({ filter, count: 0, seq: ++this.#routeSeq });
      }
      await this.sync();
      for (const member of await this.#bus.members()) {
        if (member.id !== this.nodeId && member.lease !== undefined) await this.#routeLoads.load(member.id);
      }
      await this.#retained.reload();
    } catch (error) {
      await this.#bus.close();
      throw error;
    }
    log.info("Node {node} joined the cluster at {address}", { node: this.nodeId, address: this.address });
    this.#reading = this.#readInbox();
    const period = this.#renewalPeriod;
    this.#lease.beat(Date.now(), this.#leaseMs);
    this.#timer = setInterval(() => {
      // A renewal that hangs (the engine stalled, or the network dropped) for over half a lease is an
      // outage too; a shorter stall goes unremarked, and so does one of this process (a late beat).
      const now = Date.now();
      const late = this.#lease.beat(now, this.#leaseMs) > 2 * period;
      if (this.#ticking && !late && !this.#fenced && now - this.#tickStarted > this.#leaseMs * 0.6) {
        this.#trouble.began(new Error(`no answer for ${now - this.#tickStarted} ms`));
      }
      this.#tick();
    }, period);
    await this.#tick();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#lease.stop();
    clearInterval(this.#timer);
    await this.#reaper.close();
    // The inbox reader ends once its current read returns; what it read is delivered and its commit
    // sent while the engine is still there (after the close, a commit waited on could never end).
    if (!(await settlesWithin(this.#reading, this.#leaseMs))) {
      log.warn("The inbox reader did not finish within {ms} ms of the stop", { ms: this.#leaseMs });
    }
    await settlesWithin(this.#commits.tail, 2000);
    let adopted = false;
    try {
      adopted = await this.#bus.retire(this.nodeId); // another node adopts its sessions, or it was the last
    } catch (error) {
      log.warn("Could not leave the cluster cleanly: {error}", { error: String(error) });
    }
    await this.#bus.close();
    this.#retained.close();
    log.info("Node {node} left the cluster{adopted}", {
      node: this.nodeId,
      adopted: adopted ? ": another node adopts its sessions" : "",
    });
  }

  // -------------------------------------------------------------------------------------------
  // Routes

  filterAdded(filter: string): void {
    const count = (this.#local.get(filter) ?? 0) + 1;
    this.#local.set(filter, count);
    if (count === 1 || filter.startsWith("$share/")) this.#routeChanged(filter, count);
    if (count === 1) this.#barriers.created(filter, this.#routeSeq);
  }

  filterRemoved(filter: string): void {
    const count = (this.#local.get(filter) ?? 0) - 1;
    if (count <= 0) this.#local.delete(filter);
    else this.#local.set(filter, count);
    if (count <= 0 || filter.startsWith("$share/")) this.#routeChanged(filter, Math.max(0, count));
    if (count <= 0) this.#barriers.removed(filter);
  }

  #routeChanged(filter: string, count: number): void {
    if (this.#stopped || this.#fenced) return;
    this.#commits.batch().routes.push({ filter, count, seq: ++this.#routeSeq });
  }

  route(packet: Packet, subscribers: Subscribers): void {
    this.#lease.holdWritesIfStalled(this.#leaseMs); // woken from a stall: claimed meanwhile?
    this.#reaper.hold(packet, subscribers); // sessions being adopted get their messages in order
    const id = this.#forwardId;
    const seq = id.seq;
    this.#toNodes(packet, subscribers);
    // A QoS 1/2 message forwarded keeps its id in the sessions here that store it: another node that
    // gets a copy too (a dead node's claimer, a session's new owner) can tell it is the same message.
    if (id.seq !== seq && packet.fixedHeader.qos) packet.clusterId = idKey(this.nodeId, id.epoch, id.seq);
    if (this.#claims.holding && !packet.topicName!.startsWith("$SYS")) {
      this.#claims.hold(packet, this.nodeId, true, packet.clusterId);
    }
  }

  /** Forwards a message accepted here to the nodes whose routes match (see `route`). */
  #toNodes(packet: Packet, subscribers: Subscribers): void {
    const topic = packet.topicName!;
    if (this.#routes.empty || this.#stopped || this.#fenced) return;
    if (topic.startsWith("$SYS")) return;
    if (this.#trouble.active && (packet.fixedHeader.qos ?? 0) === 0) {
      this.dropped++;
      return;
    }
    const nodes = this.#routes.plainNodes(topic);
    if (nodes !== undefined) {
      // No shared route matches (the usual case): to each node, encoded once.
      if (nodes.length > 0) this.#commits.forward(packet, nodes, this.#forwardId);
      return;
    }
    const remote = this.#routes.match(topic);
    let destinations: Map<string, { plain: boolean; groups: string[] }> | undefined;
    for (const node of remote.subscriptions.keys()) {
      (destinations ??= new Map()).set(node, { plain: true, groups: [] });
    }
    for (const [key, members] of remote.shared) {
      const node = this.#routes.sharedNode(key, members, subscribers.shared.get(key)?.size ?? 0);
      if (node === undefined) continue; // this node's turn: its own members take it
      subscribers.shared.delete(key);
      let destination = destinations?.get(node);
      if (!destination) (destinations ??= new Map()).set(node, destination = { plain: false, groups: [] });
      destination.groups.push(key);
    }
    if (destinations === undefined) return;
    const encoded = encodeMessage(packet);
    this.#commits.batch();
    const id = this.#forwardId;
    id.seq++; // one id for every destination's copy
    for (const [node, { plain, groups }] of destinations) {
      writeRecord(this.#commits.writer(node, encoded.length), packet, encoded, plain, groups, id);
    }
  }

  handOff(packet: Packet, group: string, localMembers: number): boolean {
    if (this.#routes.empty || this.#stopped || this.#fenced) return false;
    const members = this.#routes.match(packet.topicName!).shared.get(group);
    const node = members === undefined ? undefined : this.#routes.sharedNode(group, members, localMembers);
    if (node === undefined) return false;
    this.#commits.batch();
    const writer = this.#commits.writer(node, packet.payload?.length ?? 0);
    this.#forwardId.seq++;
    writeRecord(writer, packet, undefined, false, [group], this.#forwardId);
    return true;
  }

  atomically(work: () => void): void {
    const seq = this.#forwardId.seq;
    if (this.#stopped || this.#fenced) return work();
    // What it sends to persistent sessions' connections here (a will) goes out once it is all stored: were
    // this node to die before, its claimer would send it again to those sessions.
    const held = new Set<Client>();
    let stored: Promise<void> | undefined;
    this.sessionStore.atomically(() => {
      const outer = holdWritesOf(held);
      try {
        this.#commits.unsplit(work);
      } finally {
        holdWritesOf(outer);
      }
    }, (writes, before) =>
      // Nothing forwarded: the session writes go through the store as usual.
      this.#forwardId.seq === seq ? undefined : stored = this.#commits.withSessions(writes, before));
    const release = () => held.forEach((client) => client.releaseWrites());
    if (held.size > 0) (stored ?? this.sessionStore.sync()).then(release, release);
  }

  // -------------------------------------------------------------------------------------------
  // Commits

  /** Resolves when everything queued so far is stored and this node's lease is known to be current. */
  sync(): Promise<void> {
    const committed = this.#commits.tail.then(this.#lease.held);
    // While a dead node's sessions are adopted here, also once this node's messages held for them are in them.
    const released = this.#reaper.released;
    if (released === undefined) return committed;
    return Promise.all([committed, released.then(() => this.#host!.syncLocal())]).then(() => {});
  }

  /** Joins (a new incarnation of this node id); the lease counts from before the request. */
  async #join(): Promise<boolean> {
    const started = Date.now();
    if (!(await this.#bus.join(this.nodeId, this.#report(), this.#leaseMs))) return false;
    this.#lease.renewed(started, this.#leaseMs);
    this.#joins++;
    return true;
  }

  /**
   * The session store's writes started failing (see `SessionOwner`).
   *
   * @param error The first failure.
   */
  storeFailed(error: unknown): void {
    this.#trouble.began(error);
  }

  /** The session store's writes work again. */
  storeRecovered(): void {
    this.#trouble.ended();
  }

  // -------------------------------------------------------------------------------------------
  // Inbox

  async #readInbox(): Promise<void> {
    let after = "0";
    let failures = 0;
    let joins = this.#joins;
    /** The next read, sent while the entries before it are delivered (for `ahead.after` in `ahead.joins`). */
    let ahead: { after: string; joins: number; read: Promise<InboxEntry[] | Error> } | undefined;
    while (!this.#stopped) {
      if (this.#fenced) {
        await delay(100);
        continue;
      }
      if (joins !== this.#joins) [after, joins] = ["0", this.#joins]; // a new incarnation's inbox
      const read = ahead !== undefined && ahead.after === after && ahead.joins === joins
        ? ahead.read
        : this.#readAfter(after);
      ahead = undefined;
      const entries = await read;
      if (entries instanceof Error) {
        if (this.#stopped) return;
        if (failures++ === 0) log.debug("Inbox read failed: {error}", { error: String(entries) });
        await delay(Math.min(100 * failures, 1000));
        continue;
      }
      failures = 0;
      if (entries.length === 0 || this.#fenced) continue;
      if (this.#stopped) return; // leaving: nothing more is delivered or written
      // Read ahead (the reader has its own connection) while these are delivered and their deletion committed.
      const last = entries[entries.length - 1].id;
      ahead = { after: last, joins, read: this.#readAfter(last) };
      await this.#reaping;
      const host = this.#host!;
      const held = new Set<Client>();
      for (const entry of entries) {
        after = entry.id;
        await deliverEntry(this.#inboxNode, entry, held);
      }
      // The entries go in the commit that stores the messages in their sessions (see `SessionStore`), and
      // the messages go out to persistent sessions' connections only after it, while this node's lease
      // is known current: if this node dies before, the claimer delivers them, once.
      if (this.#stopped) { // leaving (the engine may be gone): nothing more is written
        for (const client of held) client.releaseWrites();
        return;
      }
      if (!this.#fenced) this.sessionStore.inboxDelivered(entries.map((entry) => entry.id));
      await host.syncLocal();
      const lease = this.#stopped ? undefined : this.#lease.held();
      if (lease) await lease; // a node claimed meanwhile closed those connections before this resolves
      for (const client of held) client.releaseWrites();
      if (this.#stopped) return;
    }
  }

  /** Reads the inbox entries after `after` (an error as a value: a read sent ahead may go unawaited). */
  #readAfter(after: string): Promise<InboxEntry[] | Error> {
    return this.#bus.read(this.nodeId, after, INBOX_READ_COUNT, 1000).catch((error: unknown) =>
      error instanceof Error ? error : new Error(String(error))
    );
  }

  // -------------------------------------------------------------------------------------------
  // Sessions

  claimSession(client: Client): Promise<SessionSnapshot | undefined> {
    return this.#claims.claim(client);
  }

  sessionAdmitted(client: Client): void {
    this.#claims.admitted(client);
  }

  leaseHeld(): Promise<boolean> | undefined {
    if (!this.#fenced && this.#lease.held() === undefined) return undefined;
    const joins = this.#joins;
    return (async () => {
      while (this.#lease.held() !== undefined && !this.#stopped) await this.#lease.held();
      return joins === this.#joins && !this.#fenced && !this.#stopped;
    })();
  }

  endedCleanly(client: Client): Promise<void> | undefined {
    if (this.#owned.get(client.id) === undefined || this.#stopped || this.#fenced) return undefined;
    // Stored under this node's epoch while its lease is current; a node claimed meanwhile (it stalled)
    // has its writes fenced and drops the connection itself. Never held for more than a few seconds.
    const stored = this.sessionStore.storeCleanEnd(client).then(this.#lease.held);
    return settlesWithin(stored, 2 * this.#leaseMs).then(() => undefined);
  }

  sessionEnded(clientId: string): void {
    const epoch = this.#owned.get(clientId);
    if (epoch === undefined || this.#stopped) return;
    this.#owned.delete(clientId);
    this.#commits.batch().endedSessions.push({ clientId, epoch });
  }

  /** Queues a control record for another node's inbox. */
  #control(node: string, control: Record<string, unknown>): void {
    writeControl(this.#commits.writer(node, 0), control);
  }

  // -------------------------------------------------------------------------------------------
  // Retained messages

  retain(packet: Packet): void {
    const topic = packet.topicName!;
    if (topic.startsWith("$SYS") || this.#stopped || this.#fenced) return;
    const record = (packet.payload?.length ?? 0) > 0 ? messageRecord(packet) : undefined;
    this.#commits.batch().retained.push({ topic, record, expiry: record ? packet.expiry ?? 0 : 0 });
  }

  retainedReady(): Promise<void> {
    return this.#retained.ready();
  }

  // -------------------------------------------------------------------------------------------
  // Membership

  #report(): string {
    const host = this.#host;
    const report: Report = {
      connections: host?.connections() ?? 0,
      rate: this.#rate,
      started: this.#started,
      seq: this.#committedSeq,
    };
    const online = host?.sharedOnline();
    if (online?.size) this.#routes.online(this.nodeId, report.online = Object.fromEntries(online));
    else if (online !== undefined) this.#routes.online(this.nodeId, undefined);
    return JSON.stringify(report);
  }

  async #tick(): Promise<void> {
    if (this.#ticking || this.#stopped) return;
    this.#ticking = true;
    this.#tickStarted = Date.now();
    try {
      const now = Date.now();
      const received = this.#host!.messagesReceived();
      if (now - this.#rateAt >= 1000) {
        this.#rate = Math.round(((received - this.#rateCount) * 1000) / (now - this.#rateAt));
        this.#rateAt = now;
        this.#rateCount = received;
      }
      const renewal = await this.#bus.renew(this.nodeId, this.#report(), this.#leaseMs);
      // Just back from an engine outage (noticed by this renewal, or by a command moments before).
      const recovering = this.#trouble.active || Date.now() - this.#trouble.healthySince < this.#leaseMs;
      this.#trouble.ended();
      if (renewal === "claimed" || renewal === "lost") {
        await this.#rejoin(renewal === "lost");
        return;
      }
      this.#lease.renewed(this.#tickStarted, this.#leaseMs);
      if (renewal === "lapsed") {
        // After an engine outage every lease has lapsed (nobody could renew): expected, not an error.
        const message =
          "Node {node}'s lease had expired (stalled too long?) but nobody claimed it: taken again, routes sent again";
        if (recovering) log.debug(message, { node: this.nodeId });
        else log.error(message, { node: this.nodeId });
        for (const [filter, count] of this.#local) this.#routeChanged(filter, count);
      }
      // After an outage, other nodes' leases lapsed too: claim nobody until each had a lease's time to renew.
      const mayClaim = Date.now() - this.#trouble.healthySince >= this.#leaseMs;
      const members = await this.#bus.members();
      const nodes: ClusterNodeInfo[] = [];
      const registered = new Set<string>();
      for (const member of members) {
        registered.add(member.id);
        if (member.id === this.nodeId) {
          nodes.push({
            id: member.id,
            alive: true,
            connections: this.#host!.connections(),
            messagesPerSecond: this.#rate,
            started: this.#started,
          });
          continue;
        }
        if (member.lease === undefined) {
          nodes.push({ id: member.id, alive: false, connections: 0, messagesPerSecond: 0, started: 0 });
          if (mayClaim && await this.#bus.claim(member.id, this.nodeId)) {
            // Its last renewal was a lease ago at least, and no later than it was last seen alive; it died
            // before its next renewal was due. Dated then, its wills never go out before their delay.
            const lastRenewal = Math.min(
              this.#lastSeen.get(member.id) ?? Infinity,
              Date.now() - this.#leaseMs,
            );
            const diedAt = lastRenewal + this.#renewalPeriod;
            this.#lastSeen.delete(member.id);
            await (this.#reaping = this.#reaper.reap(member.id, diedAt).catch((error) => {
              log.error("Cleanup after {dead} failed: {error}", { dead: member.id, error: String(error) });
            }));
          }
          continue;
        }
        this.#lastSeen.set(member.id, Date.now());
        const report = JSON.parse(member.lease) as Report;
        this.#routes.online(member.id, report.online);
        nodes.push({
          id: member.id,
          alive: true,
          connections: report.connections,
          messagesPerSecond: report.rate,
          started: report.started,
        });
        const seq = this.#routes.seq(member.id);
        if (seq === undefined || report.seq > seq) {
          // Behind on two reports in a row (not just racing an announcement): reload.
          const behind = (this.#seqBehind.get(member.id) ?? 0) + 1;
          this.#seqBehind.set(member.id, behind);
          if (seq === undefined || behind >= 2) this.#routeLoads.load(member.id);
        } else this.#seqBehind.delete(member.id);
      }
      for (const node of [...this.#routes.nodes()]) {
        if (!registered.has(node)) this.#routes.drop(node);
      }
      this.#nodes = nodes.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
      await this.#retained.check();
      await this.#bus.expireRetained(Date.now());
    } catch (error) {
      if (this.#bus.down) this.#trouble.began(error);
      log.debug("Cluster membership check failed: {error}", { error: String(error) });
    } finally {
      this.#ticking = false;
    }
  }

  /**
   * This node stalled past its lease and a survivor claimed it meanwhile (sent its wills, adopted its
   * sessions): nothing here is this node's any more, and its writes are refused (session epochs and
   * its incarnation fence them). Acknowledgements stay withheld, every connection gets DISCONNECT
   * 0x8B (server shutting down: reconnect, to any node) and its session is dropped without a write or
   * a will, and the node joins again as a new member with no routes once its claimer is done.
   */
  async #rejoin(lost: boolean): Promise<void> {
    this.#fenced = this.#lease.closed = true;
    const stalled = Date.now() - this.#lease.since;
    this.#owned.clear();
    const pending = this.#commits.pending;
    if (pending) pending.routes = pending.delivered = [];
    const closed = this.#host!.dropSessions(0x8b);
    this.#local.clear();
    this.#barriers.reset();
    if (lost) {
      // Nothing here can be trusted to match Redis any more (ownership, epochs, routes, versions).
      log.error(
        "The cluster's Redis at {address} lost the cluster's data (restarted without persistence, or " +
          "flushed): stored sessions and retained messages are gone; node {node} closed {closed} connections " +
          "(0x8B), dropped its sessions, resets its retained messages and joins again",
        { address: this.address, node: this.nodeId, closed },
      );
      this.#routeSeq = this.#committedSeq = 0;
      await this.#retained.reset();
    } else {
      log.error(
        "Node {node} was declared dead and claimed while it stalled ({stalled} ms without a renewal): " +
          "{closed} connections closed (0x8B), its sessions dropped here (its claimer has them); joining again",
        { node: this.nodeId, stalled, closed },
      );
    }
    let waited = false;
    while (!this.#stopped) {
      try {
        if (await this.#join()) break;
      } catch (error) {
        if (this.#bus.down) this.#trouble.began(error);
      }
      if (!waited) log.info("Node {node} waits for its claimer to finish", { node: this.nodeId });
      waited = true;
      await delay(200);
    }
    if (this.#stopped) return;
    try {
      // Announced with a gap in sequence: every node reloads this node's routes (none, or stale ones removed).
      const stale = await this.#bus.routes(this.nodeId);
      this.#routeSeq = this.#committedSeq = Math.max(this.#routeSeq, stale.seq) + 1;
      // Every node's routes as stored now, before anything is routed again: a route barrier sent while
      // this node was claimed did not wait for it (see `route_barrier.ts`).
      const others = new Set(this.#routes.nodes());
      for (const { id, lease } of await this.#bus.members()) if (id !== this.nodeId && lease) others.add(id);
      await Promise.all([...others].map((node) => this.#routeLoads.load(node)));
      this.#fenced = this.#lease.closed = false;
      for (const filter of stale.filters.keys()) this.#routeChanged(filter, 0);
      this.#retained.reload();
    } catch (error) {
      log.debug("Could not reload after joining again: {error}", { error: String(error) });
    }
    this.#fenced = this.#lease.closed = false;
    this.#lease.release();
    log.info("Node {node} joined the cluster again as a new member", { node: this.nodeId });
  }

  nodes(): ClusterNodeInfo[] {
    return this.#nodes;
  }
}

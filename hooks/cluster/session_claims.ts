/**
 * {@linkcode SessionClaims}: how a client id moves to this node. A CONNECT claims the id in the
 * engine (a compare-and-set with the next epoch); a live previous owner is asked, through its inbox,
 * to release the session, and hands it back through this node's inbox.
 *
 * **No message is lost in the handoff window.** Before asking for the release, this node reserves a
 * route for each of the session's filters (read from the stored session by the claim), and when one
 * is not yet known to be on every other node (new here, or created since the last confirmation), it
 * sends a route barrier and waits for every other registered node's answer (`route_barrier.ts`): each
 * answers once its route table has the route, through its ordinary commits, so whatever it routed to
 * the old owner alone before it knew the route is in the old owner's inbox before its answer. (Until
 * 2026-12-07 this was a fixed 100 ms after the route was stored; a node slow to apply the announcement
 * lost messages for the moving session.) A control record (the marker) goes into this node's own
 * inbox in the same commit as the release request. Then, for a message committed anywhere:
 * - before that commit: it is in the old owner's inbox before the release, so it is in the session
 *   handed over (and it reached this node's inbox before the marker, where it is not held);
 * - after it: the old owner drops it (the session left), but its publisher's node had answered the
 *   barrier, so it had this node's route when it routed the message (or was claimed, and never
 *   acknowledges it), and the message is in this node's inbox after the marker, where it is held for
 *   the session.
 * The old owner's own messages are the exception: it delivers them to the session at once, until it
 *   reads the release, so from it only what follows its handoff record is held. (It answers the barrier
 *   like every other node, before the release is sent: what its publishers send after the release
 *   needs this node's route.)
 * Messages published on this node after the release request are held too (the old owner gets them
 * after the release). One path breaks that rule: a copy that went to a dead node's inbox reaches the old
 * owner before the release when the old owner is that node's claimer (it delivers what was left for the
 * sessions it adopted before it reads anything else). Such a copy carries its cluster-wide id into the
 * session (`Packet.clusterId`), and the held copy of an id the session was handed over with is skipped,
 * as is one of an id the handoff names as delivered to it from a dead node's inbox lately (its client
 * may have had it and acknowledged it already: the session no longer holds it).
 * Once the session is admitted here ({@linkcode SessionClaims.admitted}) the
 * held messages are delivered to it alone, after what was handed over; the reservations go a lease
 * after the claim ends.
 *
 * **A client that moves on meanwhile.** A client that gives up waiting for its CONNACK here and connects to
 * a third node gets its session claimed from this one before it has arrived: this node then waits for the
 * handoff all the same and passes it on, with what it held for the session (the third node holds only
 * what came after, and stores what it is passed under its own claim, removing this node's copies). A previous owner that never hands the session over (it hung past the deadline) leaves
 * it as it stored it, not empty.
 *
 * **A clean start where the session is.** A client that connects with a clean start to the node that holds
 * its session has that session ended here before the claim (which discards the stored session): what its
 * shared groups get back goes on in the commit that removes it from the stored session, stored first.
 *
 * **Held messages outlive this node.** A held QoS 1/2 message that matches one of a persistent session's
 * filters is also written into the stored session (an `h` field under this claim's epoch, see
 * `session_store.ts`), in the commit that its publisher's acknowledgement, or its inbox entry's deletion,
 * waits for; the session's rewrite after the handoff keeps those fields, and the delivery into the
 * session at admission removes them in its own commit. If this node dies first, whoever gets the session
 * next (the dead node's claimer, which adopts it, or a claim that finds it left by a dead node) delivers
 * them into it after what it held, skipping the ids it has.
 *
 * @module
 */

import type { Packet } from "../../src/packets/types.ts";
import type { ClusterHost, SessionSnapshot } from "../../src/cluster.ts";
import type { Client } from "../../src/client.ts";
import { clientRecord } from "../storage/storage.ts";
import { logger } from "../../src/logger.ts";
import type { ClusterBus, SessionClaim, SessionWrite } from "./bus.ts";
import {
  CLIENT_FIELD,
  decodeHeld,
  encodeHeld,
  type FieldOp,
  type HeldMessage,
  heldOp,
  heldPrefix,
  sessionFromFields,
  snapshotOps,
} from "./session_store.ts";
import { matchTopic } from "../../src/topics.ts";
import { encodeJson } from "./wire.ts";
import { delay } from "./timing.ts";

const log = logger("cluster");

/** What the claims need from their node. */
export interface ClaimsNode {
  /** This node's id. */
  readonly nodeId: string;
  /** The lease (ms). */
  readonly leaseMs: number;
  /** The engine's address (for messages). */
  readonly address: string;
  /** The server. */
  host(): ClusterHost;
  /** Client ids owned here, with their epoch (shared with the node). */
  readonly owned: Map<string, number>;
  /** Whether the engine is known to be unreachable. */
  troubled(): boolean;
  /** A command failed: the engine may be unreachable. */
  failed(error: unknown): void;
  /** Whether this node was claimed while it stalled (joining again). */
  fenced(): boolean;
  /** How many times this node has joined the cluster (once more after each time it was claimed). */
  joins(): number;
  /** Queues a control record for a node's inbox (this node's own included). */
  control(node: string, control: Record<string, unknown>): void;
  /** Counts one more local subscription to a filter (its route). */
  addRoute(filter: string): void;
  /** Counts one local subscription to a filter less. */
  removeRoute(filter: string): void;
  /** Resolves once this node's routes for `filters` are stored and known on every other node (`route_barrier.ts`). */
  routesKnown(filters: readonly string[]): Promise<void>;
  /** Resolves when every session write queued so far is stored. */
  storeSync(): Promise<void>;
  /** Resolves when everything queued so far is stored: commits and session writes. */
  stored(): Promise<void>;
  /** Queues writes to the stored session of a client id this node owns (see `SessionStore.writeFields`). */
  writeFields(clientId: string, fields: FieldOp[]): void;
  /** The ids of the messages delivered into a session this node adopted from a dead node's inbox, lately. */
  deliveredFromDead(clientId: string): string[];
}

/** A claim in progress on this node, and the messages held for its session. */
interface Claim {
  epoch: number;
  /** The previous owner. */
  from: string;
  /** Its handoff was read (its messages after it are held: it no longer delivers them to the session). */
  handed: boolean;
  /** Holding local messages (from the release request on). */
  local: boolean;
  /** Holding inbox messages (from the marker on). */
  inbox: boolean;
  /** The messages held, with their cluster-wide ids when forwarded, and their fields when stored. */
  held: Held[];
  /** The ids of the messages the session was handed over with (their held copies are not delivered). */
  had: Set<string> | undefined;
  /** A persistent session's non-shared filters (read by the claim): its QoS 1/2 messages held are stored. */
  filters: readonly string[];
  /** The client id. */
  clientId: string;
  /** Claimed from this node meanwhile (its client went elsewhere): where the handoff goes on to. */
  passOn?: { to: string; epoch: number; clean: boolean };
}

/** A message held for a session moving here (`field`: where it is stored in the session, if it is). */
type Held = Omit<HeldMessage, "field"> & { field?: string };

/** Session claims and handoffs of one node. */
export class SessionClaims {
  readonly #bus: ClusterBus;
  readonly #node: ClaimsNode;
  /** Claims waiting for the previous owner's handoff, by `clientId \0 epoch`. */
  readonly #handoffs = new Map<string, (snapshot: SessionSnapshot | undefined, had: string[]) => void>();
  /** Claims of live handoffs, by client id, until the session is admitted. */
  readonly #claims = new Map<string, Claim>();
  /** The claim in progress here for each client id (a second CONNECT for the id waits for it). */
  readonly #claiming = new Map<string, Promise<unknown>>();
  /** Counts the messages held and stored (their field names). */
  #stored = 0;

  /**
   * Creates the claims of a node.
   *
   * @param bus The engine.
   * @param node The node.
   */
  constructor(bus: ClusterBus, node: ClaimsNode) {
    this.#bus = bus;
    this.#node = node;
  }

  /** Whether any claim is holding messages (a cheap check for the hot path). */
  get holding(): boolean {
    return this.#claims.size > 0;
  }

  /**
   * A message accepted on this node, or read from this node's inbox (for its non-shared subscriptions):
   * held for every session in a handoff window.
   *
   * @param packet The message.
   * @param node Its origin node.
   * @param local Whether it was accepted on this node.
   * @param id Its cluster-wide id, if it was forwarded.
   */
  hold(packet: Packet, node: string, local: boolean, id: string | undefined): void {
    // A local message's payload may be a view of its publisher's read buffer (see `Cluster.route`):
    // copied once, if a claim keeps it.
    let kept = !local;
    const owned = this.#node.owned;
    for (const claim of this.#claims.values()) {
      // Not for a claim overtaken (the session was adopted, or claimed again): it is given up.
      if (owned.get(claim.clientId) !== claim.epoch) continue;
      // The previous owner's own messages before its handoff reached the session there (and are in it).
      if (local ? claim.local : claim.inbox && (node !== claim.from || claim.handed)) {
        if (!kept && packet.payload !== undefined) packet.payload = packet.payload.slice();
        kept = true;
        claim.held.push(this.#keep(claim, { packet, node, id }));
      }
    }
  }

  /**
   * Claims a client id (see `Cluster.claimSession`).
   *
   * @param client The connecting client.
   * @returns The session handed over or left by a dead owner, if any.
   */
  claim(client: Client): Promise<SessionSnapshot | undefined> {
    // One claim of an id at a time on this node: a client that gave up waiting for its CONNACK and
    // connects again here must not race its first attempt (the handoff would reach neither). The second
    // claim finds the first one's session here and takes it over as on one node.
    const id = client.id;
    const before = this.#claiming.get(id);
    const node = this.#node;
    const joins = node.joins();
    const claim = () =>
      this.#claim(client, 0).then((snapshot) => {
        // Claimed itself meanwhile (it stalled past its lease): the session is its claimer's now.
        if (node.fenced() || node.joins() !== joins) {
          throw new Error(`Node "${node.nodeId}" was claimed while it claimed ${id}`);
        }
        return snapshot;
      });
    const claimed = before === undefined ? claim() : before.then(claim, claim);
    const settled = claimed.then(() => {}, () => {});
    this.#claiming.set(id, settled);
    settled.then(() => {
      if (this.#claiming.get(id) === settled) this.#claiming.delete(id);
    });
    return claimed;
  }

  /**
   * The session claimed for `client` is admitted (or the client went away): the messages held for it
   * are delivered to it alone.
   *
   * @param client The client.
   */
  admitted(client: Client): void {
    const claim = this.#claims.get(client.id);
    if (claim === undefined) return;
    if (this.#node.owned.get(client.id) !== claim.epoch) return this.#giveUp(claim);
    this.#claims.delete(client.id);
    // Into the session even if its client went away meanwhile (then kept here disconnected, if persistent).
    const only = new Set([client.id]);
    const host = this.#node.host();
    const delivered: FieldOp[] = [];
    for (const { packet, node, id, field } of claim.held) {
      if (field !== undefined) delivered.push(["H", field, ""]);
      // A copy that reached the previous owner all the same (through a dead node's inbox, which its
      // claimer delivers before it reads the release) came in the handoff.
      if (id !== undefined && claim.had?.has(id)) continue;
      host.deliver(packet, { node, plain: true, groups: [], only });
    }
    // Stored in the session by the deliveries just queued: no longer kept aside (in the same commit).
    if (delivered.length > 0) this.#node.writeFields(client.id, delivered);
  }

  /** A message held for a claim's session: stored in it too if it matters, so that it outlives this node. */
  #keep(claim: Claim, held: Held): Held {
    const { packet, node, id } = held;
    if (packet.fixedHeader.qos && matchesAny(claim.filters, packet.topicName!)) {
      // Acknowledged (or deleted from the inbox) only once stored.
      const op = heldOp(claim.epoch, ++this.#stored, node, packet, id);
      held.field = op[1];
      this.#node.writeFields(claim.clientId, [op]);
    }
    return held;
  }

  /**
   * Passes a session handed to this node on to the node that claimed it from here meanwhile, with what
   * this node held for it (published here, or forwarded to its inbox, while the session was on its way:
   * the next node holds only what came after, from here). This node's claim is given up.
   */
  #passOn(claim: Claim, handoff: Record<string, unknown>): void {
    const { to, epoch, clean } = claim.passOn!;
    const snapshot = clean ? undefined : handoff.snapshot as SessionSnapshot | undefined;
    const had = handedIds(snapshot, handoff.had as string[] | undefined);
    // Each with the field that stores it here, if any (the next node stores it under its own claim).
    const passed = clean ? [] : claim.held.filter(({ id }) => id === undefined || !had?.has(id))
      .map(({ node, packet, id, field }) => [field ?? "", encodeHeld(node, packet, id)]);
    log.debug("Passed {id} on to {node} with {held} messages held here", {
      id: claim.clientId,
      node: to,
      held: passed.length,
    });
    this.#node.control(to, {
      kind: "handoff",
      clientId: claim.clientId,
      epoch,
      snapshot,
      had: clean ? [] : handoff.had,
      held: passed,
    });
    this.#giveUp(claim);
  }

  /**
   * What the previous owner held for the session while it was on its way there (see `#passOn`): before
   * what this node holds, which has the later copies of some of it.
   */
  #passed(claim: Claim, passed: [string, string][]): void {
    // Stored again under this claim, in the commit that removes them as the previous node stored them.
    const moved: FieldOp[] = passed.filter(([field]) => field !== "").map(([field]) => ["H", field, ""]);
    if (moved.length > 0) this.#node.writeFields(claim.clientId, moved);
    const held = passed.map(([, value]) => this.#keep(claim, decodeHeld(value)));
    const ids = new Set(held.map(({ id }) => id).filter((id) => id !== undefined));
    const own = claim.held.filter(({ id }) => id === undefined || !ids.has(id));
    const dropped: FieldOp[] = [];
    for (const { id, field } of claim.held) {
      if (id !== undefined && ids.has(id) && field !== undefined) dropped.push(["H", field, ""]);
    }
    if (dropped.length > 0) this.#node.writeFields(claim.clientId, dropped);
    claim.held = [...held, ...own];
  }

  /**
   * A claim overtaken (its session adopted or claimed again meanwhile) or failed: it holds nothing more,
   * and what it stored is removed if the session is still this node's (under another epoch). What it
   * held reaches the session otherwise: routed to it where it is now, or delivered by whoever adopted it
   * from the stored session (before this removal, which is then refused).
   */
  #giveUp(claim: Claim): void {
    if (this.#claims.get(claim.clientId) === claim) this.#claims.delete(claim.clientId);
    const stored: FieldOp[] = [];
    for (const { field } of claim.held) if (field !== undefined) stored.push(["H", field, ""]);
    if (stored.length > 0 && this.#node.owned.has(claim.clientId)) {
      this.#node.writeFields(claim.clientId, stored);
    }
  }

  async #claim(client: Client, attempt: number): Promise<SessionSnapshot | undefined> {
    const node = this.#node;
    const clientId = client.id;
    const clean = client.properties.clean;
    if (node.troubled()) throw new Error(`The cluster's Redis at ${node.address} is unreachable`);
    if (node.fenced()) throw new Error(`Node "${node.nodeId}" is joining the cluster again`);
    if (clean && node.owned.has(clientId)) {
      // A clean start where the session is: it ends here first, and what its shared groups get back goes
      // on in the commit that removes it from the stored session, stored before the claim discards that.
      node.host().releaseSession(clientId, true);
      await node.stored();
    }
    const record = encodeJson(clientRecord(client));
    const claimed = () =>
      this.#bus.claimSession(clientId, node.nodeId, clean, record).catch((error) => {
        node.failed(error);
        throw error;
      });
    let claim = await claimed();
    // The owner died and no survivor has claimed it yet: wait for the claim (within about a lease),
    // after which the claimer hands the session over with every message left for it.
    const deadline = Date.now() + 4 * node.leaseMs;
    while (claim.wait) {
      if (Date.now() > deadline || client.closed) {
        log.warn("Refusing {id}: its node {node} died and has not been claimed yet", {
          id: clientId,
          node: claim.previous,
        });
        throw new Error(`Node "${claim.previous}" died and has not been claimed yet`);
      }
      await delay(100);
      claim = await claimed();
    }
    node.owned.set(clientId, claim.epoch);
    log.debug("Claimed {id} at epoch {epoch} (previous owner: {previous}, alive: {alive})", {
      id: clientId,
      epoch: claim.epoch,
      previous: claim.previous ?? "none",
      alive: claim.previousAlive,
    });
    if (claim.previous === undefined || claim.previous === node.nodeId) return undefined;
    if (!claim.previousAlive) {
      // Left by a dead node that nobody adopted it from: resumed from what it stored.
      if (claim.stored === undefined) return undefined;
      const { snapshot, held } = sessionFromFields(claim.stored);
      if (held.length > 0) {
        // Messages held for it by a node it was moving to when that node died: delivered after the rest.
        this.#claims.set(clientId, {
          epoch: claim.epoch,
          from: claim.previous,
          handed: true,
          local: false,
          inbox: false,
          held,
          had: handedIds(snapshot),
          filters: [],
          clientId,
        });
      }
      return snapshot;
    }
    // Routes for the session's filters first, known everywhere before the release is asked for (a route
    // barrier, when one is new here or not yet confirmed by one). They are reserved until a lease after
    // the claim ends (the admitted session has its own subscriptions by then).
    const reserved = (claim.filters ?? []).filter((filter) => !filter.startsWith("$share/"));
    for (const filter of reserved) node.addRoute(filter);
    // The claim is known here from now on (nothing is held before the release request): a node that claims
    // the session from here meanwhile (its client gave up waiting and went there) gets the handoff passed on.
    const held: Claim = {
      epoch: claim.epoch,
      from: claim.previous,
      handed: false,
      local: false,
      inbox: false,
      held: [],
      had: undefined,
      filters: client.properties.sessionExpiryInterval === 0 ? [] : reserved,
      clientId,
    };
    this.#claims.set(clientId, held);
    try {
      await node.routesKnown(reserved).catch((error) => {
        node.failed(error);
        this.#giveUp(held);
        throw error;
      });
      return await this.#handOver(client, claim, record, held, attempt);
    } finally {
      setTimeout(() => {
        for (const filter of reserved) node.removeRoute(filter);
      }, node.leaseMs);
    }
  }

  /** Asks the live previous owner for the session and waits for its handoff (see the module). */
  async #handOver(
    client: Client,
    claim: SessionClaim,
    record: string,
    held: Claim,
    attempt: number,
  ): Promise<SessionSnapshot | undefined> {
    const node = this.#node;
    const clientId = client.id;
    const clean = client.properties.clean;
    const previous = claim.previous!;
    // The previous owner reads the request in order after every message it was sent before, hands
    // the session back through this node's inbox, and has dropped its routes by then.
    const key = `${clientId}\u0000${claim.epoch}`;
    let handed: { snapshot: SessionSnapshot | undefined; had?: string[] } | undefined;
    const arrived = Promise.withResolvers<void>();
    this.#handoffs.set(key, (snapshot, had) => {
      handed = { snapshot, had };
      arrived.resolve();
    });
    held.local = true;
    node.control(previous, { kind: "release", clientId, epoch: claim.epoch, clean, to: node.nodeId });
    node.control(node.nodeId, { kind: "marker", clientId, epoch: claim.epoch });
    // A previous owner that died before it could hand over (its lease not yet expired at the claim) is
    // claimed by a survivor, which adopts this session with it and every message left for it: ownership
    // moves there, and the claim is made again, from that survivor (within about a lease of the death).
    const handoffDeadline = Date.now() + 4 * node.leaseMs;
    try {
      while (handed === undefined) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([arrived.promise, new Promise((resolve) => timer = setTimeout(resolve, 250))]);
        clearTimeout(timer);
        if (handed !== undefined) break;
        // A client that went away meanwhile still gets its session here (disconnected): the previous
        // owner lets it go when it reads the release.
        if (node.fenced()) throw new Error(`Node "${node.nodeId}" was claimed during the handoff`);
        // Claimed from here meanwhile: the handoff is still awaited, to be passed on.
        const epoch = held.passOn !== undefined
          ? claim.epoch
          : await this.#bus.sessionEpoch(clientId, node.nodeId).catch((error) => {
            node.failed(error);
            throw error;
          });
        if (epoch !== claim.epoch) {
          if (node.owned.get(clientId) === claim.epoch) node.owned.delete(clientId);
          this.#giveUp(held);
          if (client.closed) throw new Error(`${clientId} went away while its session was claimed elsewhere`);
          if (attempt >= 2) throw new Error(`The session of ${clientId} was claimed elsewhere meanwhile`);
          return this.#claim(client, attempt + 1);
        }
        if (Date.now() > handoffDeadline) {
          log.warn("Node {node} did not hand over the session of {id} in time: taken as it is stored", {
            node: previous,
            id: clientId,
          });
          const stored = await this.#bus.storedSession(clientId);
          handed = { snapshot: stored === undefined ? undefined : sessionFromFields(stored).snapshot };
        }
      }
      if (held.passOn !== undefined) {
        // Passed on to the node that claimed it from here (when it came), or now (what was stored).
        if (this.#claims.get(clientId) === held) this.#passOn(held, { ...handed });
        throw new Error(`The session of ${clientId} went on to ${held.passOn.to} meanwhile`);
      }
      // The stored session is rewritten from what was handed over (the old owner's last writes were
      // fenced off), whole in one write: a node that dies right after leaves its claimer the session
      // with its subscriptions and messages, not the bare record. (A session that ends with its
      // connection keeps only its record, as the store does.) The messages held here are kept.
      const state = handed.snapshot && client.properties.sessionExpiryInterval !== 0
        ? snapshotOps(handed.snapshot)
        : [];
      held.had = handedIds(handed.snapshot, handed.had);
      log.debug("{id} handed over by {node}: {subscriptions} subscriptions, {messages} messages", {
        id: clientId,
        node: previous,
        subscriptions: handed.snapshot?.subscriptions.length ?? "no session",
        messages: handed.snapshot?.inflight.length ?? 0,
      });
      const write: SessionWrite = {
        clientId,
        epoch: claim.epoch,
        ops: [["R", heldPrefix(claim.epoch), ""], ["S", CLIENT_FIELD, record], ...state],
        from: previous,
      };
      await this.#bus.storeSessions(node.nodeId, [write]);
    } catch (error) {
      this.#giveUp(held);
      throw error;
    } finally {
      this.#handoffs.delete(key);
    }
    return handed.snapshot;
  }

  /**
   * A control record read from this node's inbox.
   *
   * @param control The record.
   * @returns Resolves when it is dealt with (a release, once what this node did with the session is stored).
   */
  async controlled(control: Record<string, unknown>): Promise<void> {
    const node = this.#node;
    const clientId = control.clientId as string;
    const epoch = control.epoch as number;
    if (control.kind === "release") {
      const claiming = this.#claims.get(clientId);
      if (
        claiming !== undefined && claiming.epoch < epoch && !claiming.handed && claiming.passOn === undefined
      ) {
        // Claimed from here while this node still waits for the session from its own previous owner (its
        // client gave up and went to another node): what comes is passed on, with what was held for it.
        claiming.passOn = { to: control.to as string, epoch, clean: control.clean === true };
        if (node.owned.get(clientId) === claiming.epoch) node.owned.delete(clientId);
        log.debug("{id} claimed by {node} while it moves here: its handoff is passed on", {
          id: clientId,
          node: control.to as string,
        });
        return;
      }
      // Stored first, still under this node's epoch (the engine lets the previous owner write until the
      // handoff): if the claiming node dies before it reads the handoff, its claimer adopts the session
      // whole from the store. (Messages delivered to it during this wait are in the handoff only.)
      if (node.owned.has(clientId)) await node.storeSync();
      const owned = node.owned.get(clientId);
      let snapshot: SessionSnapshot | undefined;
      if (owned === undefined || owned < epoch) { // not if this node claimed it again since
        // Still owned during the release: a will it sends and messages its session gives back to a shared
        // group are removed from the stored session (under this node's epoch, which counts until the
        // handoff) in the commit that forwards them. Other writes it queues are dropped (made later).
        snapshot = node.host().releaseSession(clientId, control.clean === true);
        node.owned.delete(clientId);
      }
      log.debug(
        "Released {id} to {node} (epoch {epoch}, owned here at {owned}): {subscriptions} subscriptions",
        {
          id: clientId,
          node: control.to as string,
          epoch,
          owned: owned ?? "none",
          subscriptions: snapshot?.subscriptions.length ?? "no session",
        },
      );
      // With the ids of what a dead node's inbox gave it lately: its client may have had them meanwhile,
      // and the claimer may hold its own copies (published to that node and to the claimer).
      const had = snapshot === undefined ? [] : node.deliveredFromDead(clientId);
      node.control(control.to as string, { kind: "handoff", clientId, epoch, snapshot, had });
    } else if (control.kind === "handoff") {
      const claim = this.#claims.get(clientId);
      if (claim?.epoch === epoch && claim.passOn !== undefined) this.#passOn(claim, control);
      else if (claim?.epoch === epoch) {
        claim.handed = true;
        const passed = control.held as [string, string][] | undefined;
        if (passed !== undefined && passed.length > 0) this.#passed(claim, passed);
      }
      this.#handoffs.get(`${clientId}\u0000${epoch}`)?.(
        control.snapshot as SessionSnapshot | undefined,
        (control.had as string[] | undefined) ?? [],
      );
    } else if (control.kind === "marker") {
      const claim = this.#claims.get(clientId);
      if (claim?.epoch === epoch) claim.inbox = true;
    }
  }
}

/** Whether a topic matches one of the filters. */
function matchesAny(filters: readonly string[], topic: string): boolean {
  for (const filter of filters) if (matchTopic(filter, topic)) return true;
  return false;
}

/** The cluster-wide ids of the messages a session was handed over with, or had lately (`had`). */
function handedIds(
  snapshot: SessionSnapshot | undefined,
  had: readonly string[] = [],
): Set<string> | undefined {
  let ids: Set<string> | undefined = had.length > 0 ? new Set(had) : undefined;
  for (const record of snapshot?.inflight ?? []) {
    const id = record.message?.clusterId;
    if (id !== undefined) (ids ??= new Set()).add(id);
  }
  return ids;
}

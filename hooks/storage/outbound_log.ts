/**
 * The outbound log of the Deno KV and Redis backends: how the QoS 1/2 messages queued or in flight
 * to each session are laid out so that a delivery costs a fraction of a write, not two writes and
 * a copy of the payload (Deno KV applies mutations one after another, so their number is the cost;
 * for Redis, the commands and bytes of each transaction). Keys are written as KV keys; the Redis
 * backend maps them to hash fields.
 *
 * - A message is stored once per commit, in a **message group** `["m", groupId]` holding the
 *   messages of that commit (as many as fit in one value); deliveries refer to it by
 *   `[groupId, index]`. One delivery to N sessions is not N copies of the payload.
 * - Each session gets one **log chunk** `["q", clientId, chunkId]` per commit that delivered to it,
 *   holding compact entries `[sequence, packetId, stage, groupId, index]`. An entry for a sequence
 *   already stored (the packet id given to a queued message, the PUBREL stage) goes into the new
 *   chunk too: on restore, the entry in the latest chunk wins.
 * - Acknowledgements are not one delete each: a chunk is deleted once none of its entries is still
 *   awaited, and the sessions' **acknowledgement maps** `["a", clientId]` (chunk id -> completed
 *   sequences, written at most once per session per commit) mark what is done in chunks still kept.
 * - A message group is deleted when no awaited entry refers to it any more (counted in memory,
 *   rebuilt on open; a group nothing refers to after a crash is removed on load).
 *
 * One commit writes its mutations in this order: message groups, chunks, acknowledgement maps,
 * chunk deletes, group deletes. When KV's limits split a commit into several atomic operations and
 * the process dies between them, each record restores as it was before the commit or after it
 * (tests/storage/outbound_log_test.ts cuts commits anywhere): an entry never refers to a group not
 * yet written, a chunk goes only after the marks that make the older entries it superseded done,
 * and a group only after what refers to it.
 *
 * @module
 */

import type { InflightRecord, StoredMessage } from "../../src/storage.ts";
import type { QoS } from "../../src/packets/types.ts";
import { sameMessage } from "./storage.ts";
import { LiveEntries } from "./live_entries.ts";
import { OUTBOUND_DONE, OUTBOUND_PUBREL, type OutboundEvents } from "./outbound_events.ts";

/** A log chunk's value: entries of five numbers each (see the module docs). */
export interface ChunkValue {
  /** The client id (the key may hold its hash). */
  c: string;
  /** `[sequence, packetId, stage (0 publish, 1 pubrel), groupId, index]` per entry. */
  e: number[];
  /** Sequence -> the shared groups that gave the session its message (`InflightRecord.groups`), if any. */
  g?: Record<number, readonly string[]>;
}

/** An acknowledgement map's value: `[chunkId, count, ...sequences]` per chunk. */
export interface AckValue {
  /** The flattened map. */
  a: number[];
}

/** A message group's value. */
export interface GroupValue {
  /** The messages. */
  m: StoredMessage[];
}

/** One KV write of the log: a value, or a delete when `value` is undefined. */
export interface LogWrite {
  /** The key. */
  key: Deno.KvKey;
  /** The value to set, or undefined to delete. */
  value?: ChunkValue | AckValue | GroupValue;
  /** An upper bound of the value's encoded size. */
  bytes?: number;
}

const FIELDS = 5;
/** The stage field: PUBREL awaited; or PUBLISH at `STAGE_QOS + qos` (0: at the stored message's QoS). */
const STAGE_PUBREL = 1;
const STAGE_QOS = 2;
/** Entries per chunk: about 40 KB by the backend's size estimate, under KV's 64 KiB per value. */
const CHUNK_ENTRIES = 500;
/** Payload and topic bytes per message group before a new group starts. */
const GROUP_BYTES = 32 * 1024;

/** A message group: stored, or made by the commit being built. */
interface Group {
  id: number;
  /** Awaited entries that refer to it. */
  refs: number;
  /** The value, while it is not written yet. */
  value: GroupValue | undefined;
  bytes: number;
}

/** A log chunk: stored, or made by the commit being built. */
interface Chunk {
  id: number;
  /** The chunk's entries. */
  e: number[];
  /** The shared groups of its entries that have some (see {@linkcode ChunkValue}). */
  g?: Record<number, readonly string[]>;
  /** Awaited sequences whose latest entry is in this chunk. */
  open: number;
  written: boolean;
  /** Deleted by the commit being built: its marks stay in the acknowledgement map written before the delete. */
  dying: boolean;
  bytes: number;
}

/** One session's part of the log. */
interface Session {
  /** The client id's key part. */
  part: string;
  /** The client id (undefined for a session only loaded, until its next put). */
  clientId: string | undefined;
  chunks: Map<number, Chunk>;
  /** Chunks made by the commit being built (the last one is filled). */
  fresh: Chunk[];
  /** Sequence -> its latest, awaited entry: the chunk it is in, its stage, group and index. */
  live: LiveEntries<Chunk, Group>;
  /** Sequence -> other kept chunks with an earlier entry of it (rare). */
  older: Map<number, Chunk[]> | undefined;
  /** Chunk id -> sequences completed but still in the (kept) chunk: the acknowledgement map. */
  acked: Map<number, number[]>;
  ackStored: boolean;
  /** Marks of this commit that must be written: on kept chunks (by id), on dying chunks' older entries. */
  markedKept: Set<number>;
  olderMark: boolean;
  /** Old-layout keys (`["i", clientId, "out", sequence]`) by sequence, removed when done. */
  legacy?: Map<number, Deno.KvKey>;
}

/**
 * The in-memory index of the outbound log, and the writes of one commit. Build it from what is
 * stored ({@linkcode OutboundLog.addChunk} and the other `add*` methods, then
 * {@linkcode OutboundLog.settle}); then for each commit call {@linkcode OutboundLog.put},
 * {@linkcode OutboundLog.complete} and {@linkcode OutboundLog.drop} in the order of the batch, and
 * {@linkcode OutboundLog.flush} to get its writes.
 */
export class OutboundLog {
  readonly #sessions = new Map<string, Session>();
  #nextId: number;
  /** Stored groups by id, while the index is built. */
  #stored: Map<number, Group> | undefined = new Map();
  /** Of the commit being built: sessions with fresh chunks, and with a changed acknowledgement map. */
  #touched = new Set<Session>();
  #ackChanged = new Set<Session>();
  #newGroups: Group[] = [];
  /** Messages placed in this commit, by payload (see `sameMessage`). */
  #placed = new Map<Uint8Array, [StoredMessage, Group, number][]>();
  /** The last message placed, its group and index (the deliveries of one message come together). */
  #lastPlaced: StoredMessage | undefined;
  #lastGroup: Group | undefined;
  #lastIndex = 0;
  #deletes: LogWrite[] = [];
  #groupDeletes: LogWrite[] = [];
  #dying: [Session, Chunk][] = [];

  /**
   * Creates an empty index.
   *
   * @param firstId The first chunk and group id to use (above every stored one).
   */
  constructor(firstId: number) {
    this.#nextId = firstId;
  }

  #raiseId(id: number): void {
    if (id >= this.#nextId) this.#nextId = id + 1;
  }

  #session(part: string): Session {
    let session = this.#sessions.get(part);
    if (!session) {
      session = {
        part,
        clientId: undefined,
        chunks: new Map(),
        fresh: [],
        live: new LiveEntries(),
        older: undefined,
        acked: new Map(),
        ackStored: false,
        markedKept: new Set(),
        olderMark: false,
      };
      this.#sessions.set(part, session);
    }
    return session;
  }

  // Building from what is stored ---------------------------------------------------------------

  /**
   * Indexes a stored acknowledgement map (before the session's chunks).
   *
   * @param part The client id's key part.
   * @param value The map.
   */
  addAcks(part: string, value: AckValue): void {
    const session = this.#session(part);
    session.ackStored = true;
    const a = value.a;
    for (let i = 0; i < a.length;) {
      this.#raiseId(a[i]); // a map may name chunks deleted since: their ids are never used again
      session.acked.set(a[i], a.slice(i + 2, i + 2 + a[i + 1]));
      i += 2 + a[i + 1];
    }
  }

  /**
   * Indexes a stored chunk (in chunk order per session, after its acknowledgement map).
   *
   * @param part The client id's key part.
   * @param id The chunk id.
   * @param value The chunk.
   */
  addChunk(part: string, id: number, value: ChunkValue): void {
    this.#raiseId(id);
    const session = this.#session(part);
    session.clientId = value.c;
    const done = new Set(session.acked.get(id));
    const e = value.e;
    const chunk: Chunk = { id, e, open: 0, written: true, dying: false, bytes: 0 };
    session.chunks.set(id, chunk);
    for (let i = 0; i < e.length; i += FIELDS) {
      const sequence = e[i];
      if (done.has(sequence)) continue;
      const live = session.live;
      if (live.find(sequence)) this.#supersede(session, sequence, live.chunk!, live.group, chunk);
      chunk.open++;
      let group: Group | undefined;
      if (e[i + 2] !== STAGE_PUBREL) {
        group = this.#stored!.get(e[i + 3]);
        if (!group) {
          this.#stored!.set(e[i + 3], group = { id: e[i + 3], refs: 0, value: undefined, bytes: 0 });
        }
        group.refs++;
      }
      session.live.set(sequence, chunk, e[i + 2], group, e[i + 4]);
    }
    if (chunk.open === 0) this.#deleteChunk(session, chunk);
  }

  /**
   * Indexes an old-layout outbound record's key, so that it is deleted once done.
   *
   * @param part The client id's key part.
   * @param sequence Its sequence.
   * @param key Its key.
   */
  addLegacy(part: string, sequence: number, key: Deno.KvKey): void {
    const session = this.#session(part);
    (session.legacy ??= new Map()).set(sequence, key);
  }

  /**
   * Ends building: acknowledgement entries of chunks that are gone are dropped (rewritten with the
   * next commit), and groups no entry refers to are deleted with it.
   *
   * @param groups Every stored group id.
   */
  settle(groups: Iterable<number>): void {
    // Chunks found all done are deleted with the first commit, and keep their marks until then.
    const dying = new Set(this.#dying.map(([, chunk]) => chunk.id));
    for (const session of this.#sessions.values()) {
      for (const chunk of session.acked.keys()) {
        if (!session.chunks.has(chunk) && !dying.has(chunk)) {
          session.acked.delete(chunk);
          this.#ackChanged.add(session);
        }
      }
    }
    for (const id of groups) {
      this.#raiseId(id);
      if (!this.#stored!.get(id)?.refs) this.#groupDeletes.push({ key: ["m", id] });
    }
    this.#stored = undefined;
  }

  // One commit ---------------------------------------------------------------------------------

  /**
   * Adds an outbound record (a message queued or sent, or its PUBREL stage).
   *
   * @param part The client id's key part.
   * @param record The record.
   * @param estimate The backend's size estimate of a message.
   */
  put(part: string, record: InflightRecord, estimate: (message: StoredMessage) => number): void {
    this.putEntry(
      part,
      record.clientId,
      record.sequence,
      record.packetId,
      record.stage !== "publish",
      record.message,
      estimate,
      record.groups,
    );
  }

  /**
   * Applies one outbound event of a batch: an entry added ({@linkcode OutboundLog.putEntry}) or completed
   * ({@linkcode OutboundLog.complete}).
   *
   * @param events The batch's events.
   * @param i The event's index.
   * @param part Its client id's key part.
   * @param estimate The backend's size estimate of a message.
   */
  apply(events: OutboundEvents, i: number, part: string, estimate: (message: StoredMessage) => number): void {
    const kind = events.kindOf(i);
    if (kind === OUTBOUND_DONE) {
      this.complete(part, events.sequenceOf(i));
      return;
    }
    this.putEntry(
      part,
      events.clientOf(i),
      events.sequenceOf(i),
      events.packetIdOf(i),
      kind === OUTBOUND_PUBREL,
      events.messageOf(i),
      estimate,
      events.groupsOf(i),
    );
  }

  /**
   * Adds an outbound record given by its fields (what {@linkcode OutboundLog.put} does with a record).
   *
   * @param part The client id's key part.
   * @param clientId The client id.
   * @param sequence The record's sequence.
   * @param packetId Its packet id (0 while queued).
   * @param pubrel True for the PUBREL stage, false for the message.
   * @param message The message (undefined for a later entry of a message already stored).
   * @param estimate The backend's size estimate of a message.
   * @param groups The shared groups that gave the session the message (`InflightRecord.groups`), if any.
   */
  putEntry(
    part: string,
    clientId: string,
    sequence: number,
    packetId: number,
    pubrel: boolean,
    message: StoredMessage | undefined,
    estimate: (message: StoredMessage) => number,
    groups?: readonly string[],
  ): void {
    const session = this.#session(part);
    session.clientId = clientId;
    let chunk = session.fresh[session.fresh.length - 1];
    if (chunk === undefined || chunk.e.length >= CHUNK_ENTRIES * FIELDS || !session.chunks.has(chunk.id)) {
      chunk = {
        id: this.#nextId++,
        e: [],
        open: 0,
        written: false,
        dying: false,
        bytes: 64 + clientId.length * 3,
      };
      session.chunks.set(chunk.id, chunk);
      if (session.fresh.length === 0) this.#touched.add(session);
      session.fresh.push(chunk);
    }
    const live = session.live;
    const found = live.find(sequence);
    const previousChunk = found ? live.chunk : undefined;
    const previousGroup = found ? live.group : undefined;
    let stage = STAGE_PUBREL;
    let group: Group | undefined;
    let index = 0;
    if (!pubrel) {
      stage = message ? STAGE_QOS + message.qos : (found ? live.stage : STAGE_QOS);
      if (previousGroup) {
        // A later entry of a sequence is the same message: it keeps its group.
        group = previousGroup;
        index = live.index;
      } else if (message) {
        group = this.#place(message, estimate);
        index = this.#lastIndex;
      }
      if (group) group.refs++;
    }
    if (previousChunk) this.#supersede(session, sequence, previousChunk, previousGroup, chunk);
    if (session.legacy) this.#deleteLegacy(session, sequence);
    chunk.e.push(sequence, packetId, stage, group?.id ?? 0, index);
    chunk.bytes += FIELDS * 9;
    if (groups !== undefined && stage !== STAGE_PUBREL) {
      (chunk.g ??= {})[sequence] = groups;
      for (const name of groups) chunk.bytes += 16 + name.length * 3;
    }
    chunk.open++;
    live.set(sequence, chunk, stage, group, index);
  }

  /**
   * Marks an outbound record done (acknowledged, or dropped).
   *
   * @param part The client id's key part.
   * @param sequence Its sequence.
   */
  complete(part: string, sequence: number): void {
    const session = this.#sessions.get(part);
    if (!session) return;
    if (session.legacy) this.#deleteLegacy(session, sequence);
    const live = session.live;
    if (!live.find(sequence)) return;
    const chunk = live.chunk!;
    const group = live.group;
    live.delete(sequence);
    if (group) this.#unref(group);
    if (--chunk.open === 0) this.#deleteChunk(session, chunk);
    else this.#markDone(session, chunk, sequence, false);
    const older = session.older?.get(sequence);
    if (older) {
      session.older!.delete(sequence);
      for (const other of older) this.#markDone(session, other, sequence, true);
    }
  }

  /**
   * Forgets a session whose records are all deleted (the backend deletes its keys).
   *
   * @param part The client id's key part.
   */
  drop(part: string): void {
    const session = this.#sessions.get(part);
    if (!session) return;
    session.live.forEachGroup((group) => this.#unref(group));
    this.#sessions.delete(part);
    this.#touched.delete(session);
    this.#ackChanged.delete(session);
  }

  /**
   * The writes of the commit, in their safe order (see the module docs); the index then holds
   * the state they leave.
   *
   * @returns The writes.
   */
  flush(): LogWrite[] {
    const writes: LogWrite[] = [];
    for (const group of this.#newGroups) {
      if (group.refs > 0) writes.push({ key: ["m", group.id], value: group.value, bytes: group.bytes });
      group.value = undefined;
    }
    for (const session of this.#touched) {
      for (const chunk of session.fresh) {
        if (!session.chunks.has(chunk.id)) continue; // every entry done already
        const done = session.acked.get(chunk.id);
        if (done) {
          // Entries done within the commit are left out rather than marked.
          const skip = new Set(done);
          const e = chunk.e;
          const kept: number[] = [];
          for (let i = 0; i < e.length; i += FIELDS) {
            if (!skip.has(e[i])) kept.push(e[i], e[i + 1], e[i + 2], e[i + 3], e[i + 4]);
            else if (chunk.g) delete chunk.g[e[i]];
          }
          chunk.e = kept;
          session.acked.delete(chunk.id);
        }
        chunk.written = true;
        writes.push({
          key: ["q", session.part, chunk.id],
          value: chunk.g
            ? { c: session.clientId!, e: chunk.e, g: chunk.g }
            : { c: session.clientId!, e: chunk.e },
          bytes: chunk.bytes,
        });
      }
      session.fresh = [];
    }
    // The acknowledgement maps go before the chunk deletes: a chunk deleted by this commit keeps
    // its marks until it is gone (a commit cut between them restores each record as before or after).
    const late: LogWrite[] = [];
    for (const session of this.#ackChanged) {
      if (this.#sessions.get(session.part) !== session) continue;
      let needed = session.olderMark;
      for (const id of session.markedKept) if (session.chunks.has(id)) needed = true;
      session.olderMark = false;
      session.markedKept.clear();
      let empty = true;
      for (const id of session.acked.keys()) if (session.chunks.has(id)) empty = false;
      if (needed) {
        const a: number[] = [];
        for (const [chunk, done] of session.acked) a.push(chunk, done.length, ...done);
        writes.push({ key: ["a", session.part], value: { a }, bytes: 64 + a.length * 9 });
        session.ackStored = true;
      }
      // When only marks of chunks deleted now are left, the map goes after them; otherwise a stored
      // map may keep marks of deleted chunks (harmless: chunk ids are never reused, and `settle`
      // drops them) until it is written again.
      if (empty && session.ackStored) {
        late.push({ key: ["a", session.part] });
        session.ackStored = false;
      }
    }
    writes.push(...this.#deletes, ...late, ...this.#groupDeletes);
    for (const [session, chunk] of this.#dying) {
      session.acked.delete(chunk.id); // the next map written leaves it out
      chunk.dying = false;
    }
    this.#dying = [];
    this.#touched = new Set();
    this.#ackChanged = new Set();
    this.#newGroups = [];
    this.#placed = new Map();
    this.#lastPlaced = this.#lastGroup = undefined;
    this.#deletes = [];
    this.#groupDeletes = [];
    return writes;
  }

  // Internals ----------------------------------------------------------------------------------

  /**
   * The group of a message in this commit (each message once; a new group when one is full); its
   * index in the group is left in `#lastIndex`.
   */
  #place(message: StoredMessage, estimate: (message: StoredMessage) => number): Group {
    if (message === this.#lastPlaced) return this.#lastGroup!;
    this.#lastPlaced = message;
    let variants = this.#placed.get(message.payload);
    if (variants) {
      for (const [other, group, index] of variants) {
        if (sameMessage(other, message)) {
          this.#lastIndex = index;
          return this.#lastGroup = group;
        }
      }
    } else this.#placed.set(message.payload, variants = []);
    let group = this.#newGroups[this.#newGroups.length - 1];
    const size = estimate(message);
    if (group === undefined || group.bytes + size > GROUP_BYTES) {
      group = { id: this.#nextId++, refs: 0, value: { m: [] }, bytes: 64 };
      this.#newGroups.push(group);
    }
    const index = group.value!.m.length;
    variants.push([message, group, index]);
    group.value!.m.push(message);
    group.bytes += size;
    this.#lastIndex = index;
    return this.#lastGroup = group;
  }

  /**
   * A new entry of a sequence is coming (into `into`): the previous one (in `chunk`, referring to
   * `group`) stops being its latest. The kept chunks that still hold an earlier entry of it go to
   * `session.older`.
   */
  #supersede(session: Session, sequence: number, chunk: Chunk, group: Group | undefined, into: Chunk): void {
    if (group) this.#unref(group);
    if (chunk === into) {
      chunk.open--; // a later entry in the same chunk wins on restore
      return;
    }
    if (--chunk.open === 0) this.#deleteChunk(session, chunk);
    // Still stored (kept, or deleted by this commit): the entry there must be marked when done.
    const stored = (other: Chunk) => other.dying || session.chunks.get(other.id) === other;
    const older = session.older?.get(sequence);
    let kept: Chunk[] | undefined;
    if (!older) kept = stored(chunk) ? [chunk] : undefined;
    else {
      kept = older.filter(stored);
      if (stored(chunk)) kept.push(chunk);
      if (kept.length === 0) kept = undefined;
    }
    if (kept) (session.older ??= new Map()).set(sequence, kept);
    else session.older?.delete(sequence);
  }

  /**
   * Marks a sequence done in a chunk: a kept one, one not written yet (its entry is then left out,
   * see `flush`), or one deleted by this commit (needed only for an `older` entry: until the delete
   * lands, that entry must not come back).
   */
  #markDone(session: Session, chunk: Chunk, sequence: number, older: boolean): void {
    if (!chunk.dying && session.chunks.get(chunk.id) !== chunk) return;
    let done = session.acked.get(chunk.id);
    if (!done) session.acked.set(chunk.id, done = []);
    done.push(sequence);
    if (!chunk.written) return;
    // A mark of an older entry is needed until its chunk is gone; a mark of a latest entry only
    // while its chunk is kept (deleted, the record restores as before the commit if it is cut).
    if (older) session.olderMark = true;
    else if (!chunk.dying) session.markedKept.add(chunk.id);
    this.#ackChanged.add(session);
  }

  #deleteChunk(session: Session, chunk: Chunk): void {
    if (session.chunks.get(chunk.id) !== chunk) return;
    session.chunks.delete(chunk.id);
    if (chunk.written) {
      this.#deletes.push({ key: ["q", session.part, chunk.id] });
      chunk.dying = true;
      this.#dying.push([session, chunk]);
      if (session.ackStored) this.#ackChanged.add(session);
    } else session.acked.delete(chunk.id);
    // `older` lists may still name it: marks on it are ignored once its delete is written.
  }

  #deleteLegacy(session: Session, sequence: number): void {
    const key = session.legacy!.get(sequence);
    if (!key) return;
    this.#deletes.push({ key });
    session.legacy!.delete(sequence);
  }

  #unref(group: Group): void {
    if (--group.refs > 0) return;
    // A stored group (a new one is just not written); while building, `settle` decides.
    if (group.value === undefined && this.#stored === undefined) {
      this.#groupDeletes.push({ key: ["m", group.id] });
    }
  }
}

/**
 * The outbound records a session's stored log restores to: per sequence the entry in the latest
 * chunk that the acknowledgement map does not mark done, with its message from its group.
 *
 * @param chunks The session's chunks, with their ids.
 * @param acks The session's acknowledgement map, if any.
 * @param groups The stored message groups, by id.
 * @returns The records, by sequence.
 */
export function restoreLog(
  chunks: [number, ChunkValue][],
  acks: AckValue | undefined,
  groups: Map<number, GroupValue>,
): Map<number, InflightRecord> {
  const done = new Map<number, Set<number>>();
  const a = acks?.a ?? [];
  for (let i = 0; i < a.length;) {
    done.set(a[i], new Set(a.slice(i + 2, i + 2 + a[i + 1])));
    i += 2 + a[i + 1];
  }
  const out = new Map<number, InflightRecord>();
  chunks.sort((x, y) => x[0] - y[0]);
  for (const [id, { c: clientId, e, g }] of chunks) {
    const completed = done.get(id);
    for (let i = 0; i < e.length; i += FIELDS) {
      const sequence = e[i];
      if (completed?.has(sequence)) continue;
      const packetId = e[i + 1];
      if (e[i + 2] === STAGE_PUBREL) {
        out.set(sequence, { clientId, direction: "out", sequence, packetId, stage: "pubrel" });
        continue;
      }
      let message = groups.get(e[i + 3])?.m[e[i + 4]];
      const qos = e[i + 2] - STAGE_QOS;
      if (message && qos > 0 && message.qos !== qos) message = { ...message, qos: qos as QoS };
      // A message whose group is gone was done (a commit split by KV's limits, cut by a crash).
      if (message) {
        const record: InflightRecord = {
          clientId,
          direction: "out",
          sequence,
          packetId,
          stage: "publish",
          message,
        };
        const shared = g?.[sequence];
        if (shared !== undefined) record.groups = shared;
        out.set(sequence, record);
      } else out.delete(sequence);
    }
  }
  return out;
}

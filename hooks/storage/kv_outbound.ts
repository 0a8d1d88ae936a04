/**
 * The outbound log of {@linkcode KVBackend}: how the QoS 1/2 messages queued or in flight to each
 * session are laid out in Deno KV so that a delivery costs a fraction of a mutation, not two (Deno
 * KV applies mutations one after another, so their number is the cost).
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
 * One commit writes its mutations in this order: message groups, chunks, chunk deletes,
 * acknowledgement maps, group deletes. When KV's limits split a commit into several atomic
 * operations and the process dies between them, what is stored still restores correctly: an entry
 * never refers to a group not yet written, and a group is deleted only after what refers to it.
 *
 * @module
 */

import type { InflightRecord, StoredMessage } from "../../src/storage.ts";

/** A log chunk's value: entries of five numbers each (see the module docs). */
export interface ChunkValue {
  /** The client id (the key may hold its hash). */
  c: string;
  /** `[sequence, packetId, stage (0 publish, 1 pubrel), groupId, index]` per entry. */
  e: number[];
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
const STAGE_PUBLISH = 0;
const STAGE_PUBREL = 1;
/** Entries per chunk: about 40 KB by the backend's size estimate, under KV's 64 KiB per value. */
const CHUNK_ENTRIES = 500;
/** Payload and topic bytes per message group before a new group starts. */
const GROUP_BYTES = 32 * 1024;

/** Where a session's awaited entry for a sequence is. */
interface Live {
  /** The chunk of its latest entry. */
  chunk: number;
  stage: number;
  group: number;
  index: number;
  /** Other kept chunks with an earlier entry of the sequence (rare). */
  older: number[] | undefined;
}

interface Chunk {
  /** The chunk's entries (as stored). */
  e: number[];
  /** Awaited sequences whose latest entry is in this chunk. */
  open: number;
}

/** One session's part of the log. */
interface Session {
  /** The client id's key part. */
  part: string;
  chunks: Map<number, Chunk>;
  /** Whether an awaited entry may have `older` chunks (else deleting a chunk has nothing to fix). */
  superseded: boolean;
  /** Sequence -> its latest, awaited entry. */
  live: Map<number, Live>;
  /** Chunk id -> sequences completed but still in the (kept) chunk: the acknowledgement map. */
  acked: Map<number, number[]>;
  ackChanged: boolean;
  ackStored: boolean;
  /** Old-layout keys (`["i", clientId, "out", sequence]`) by sequence, removed when done. */
  legacy?: Map<number, Deno.KvKey>;
}

/** The puts of one session queued in the commit being built. */
interface Queued {
  clientId: string;
  records: Map<number, InflightRecord>;
}

/**
 * The in-memory index of the outbound log, and the writes of one commit. Build it from what is
 * stored ({@linkcode OutboundLog.addChunk} and the other `add*` methods), then for each commit call
 * {@linkcode OutboundLog.put}, {@linkcode OutboundLog.complete} and {@linkcode OutboundLog.drop} in
 * the order of the batch, and {@linkcode OutboundLog.flush} to get the writes.
 */
export class OutboundLog {
  readonly #sessions = new Map<string, Session>();
  /** Group id -> awaited entries that refer to it. */
  readonly #groups = new Map<number, number>();
  #nextId: number;
  /** Puts of this commit, per client key part then sequence (the last put of a sequence wins). */
  #queued = new Map<string, Queued>();
  #deletes: LogWrite[] = [];
  #groupDeletes: LogWrite[] = [];

  /**
   * Creates an empty index.
   *
   * @param firstId The first chunk and group id to use (above every stored one).
   */
  constructor(firstId: number) {
    this.#nextId = firstId;
  }

  /** Ids for new chunks and groups start above this one (from what was found stored). */
  raiseId(id: number): void {
    if (id >= this.#nextId) this.#nextId = id + 1;
  }

  #session(part: string): Session {
    let session = this.#sessions.get(part);
    if (!session) {
      session = {
        part,
        chunks: new Map(),
        superseded: false,
        live: new Map(),
        acked: new Map(),
        ackChanged: false,
        ackStored: false,
      };
      this.#sessions.set(part, session);
    }
    return session;
  }

  // Building from what is stored ---------------------------------------------------------------

  /**
   * Indexes a stored chunk (call in chunk order per session, after its acknowledgement map).
   *
   * @param part The client id's key part.
   * @param id The chunk id.
   * @param value The chunk.
   */
  addChunk(part: string, id: number, value: ChunkValue): void {
    this.raiseId(id);
    const session = this.#session(part);
    const done = new Set(session.acked.get(id));
    const e = value.e;
    const chunk: Chunk = { e, open: 0 };
    session.chunks.set(id, chunk);
    for (let i = 0; i < e.length; i += FIELDS) {
      const sequence = e[i];
      if (done.has(sequence)) continue;
      const older = this.#supersede(session, sequence);
      chunk.open++;
      const entry: Live = { chunk: id, stage: e[i + 2], group: e[i + 3], index: e[i + 4], older };
      session.live.set(sequence, entry);
      if (entry.stage === STAGE_PUBLISH) this.#ref(entry.group, 1);
    }
    if (chunk.open === 0) this.#deleteChunk(session, id);
  }

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
      const chunk = a[i];
      const count = a[i + 1];
      session.acked.set(chunk, a.slice(i + 2, i + 2 + count));
      i += 2 + count;
    }
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
   * After the index is built: acknowledgement entries of chunks that are gone are dropped (they are
   * rewritten with the next commit of the session), and groups no entry refers to are deleted.
   *
   * @param groups Every stored group id.
   */
  settle(groups: Iterable<number>): void {
    for (const session of this.#sessions.values()) {
      for (const chunk of session.acked.keys()) {
        if (!session.chunks.has(chunk)) {
          session.acked.delete(chunk);
          session.ackChanged = true;
        }
      }
    }
    for (const group of groups) {
      this.raiseId(group);
      if (!this.#groups.has(group)) this.#groupDeletes.push({ key: ["m", group] });
    }
  }

  // One commit ---------------------------------------------------------------------------------

  /**
   * Queues an outbound record (a message queued or sent, or its PUBREL stage).
   *
   * @param part The client id's key part.
   * @param record The record.
   */
  put(part: string, record: InflightRecord): void {
    let queued = this.#queued.get(part);
    if (!queued) this.#queued.set(part, queued = { clientId: record.clientId, records: new Map() });
    this.#session(part);
    queued.records.delete(record.sequence); // a later put goes last, in order
    queued.records.set(record.sequence, record);
  }

  /**
   * Marks an outbound record done (acknowledged, or dropped).
   *
   * @param part The client id's key part.
   * @param sequence Its sequence.
   */
  complete(part: string, sequence: number): void {
    this.#queued.get(part)?.records.delete(sequence);
    const session = this.#sessions.get(part);
    if (!session) return;
    const legacy = session.legacy?.get(sequence);
    if (legacy) {
      this.#deletes.push({ key: legacy });
      session.legacy!.delete(sequence);
    }
    const live = session.live.get(sequence);
    if (!live) return;
    session.live.delete(sequence);
    if (live.stage === STAGE_PUBLISH) this.#ref(live.group, -1);
    const chunk = session.chunks.get(live.chunk);
    if (chunk && --chunk.open === 0) this.#deleteChunk(session, live.chunk);
    else this.#markDone(session, live.chunk, sequence);
    for (const id of live.older ?? []) this.#markDone(session, id, sequence);
    if (session.live.size === 0) session.superseded = false;
  }

  /** Marks a sequence done in a kept chunk that holds an entry of it. */
  #markDone(session: Session, id: number, sequence: number): void {
    if (!session.chunks.has(id)) return;
    let done = session.acked.get(id);
    if (!done) session.acked.set(id, done = []);
    done.push(sequence);
    session.ackChanged = true;
  }

  /**
   * Forgets a session whose records are all deleted (the backend deletes its keys).
   *
   * @param part The client id's key part.
   */
  drop(part: string): void {
    this.#queued.delete(part);
    const session = this.#sessions.get(part);
    if (!session) return;
    for (const live of session.live.values()) {
      if (live.stage === STAGE_PUBLISH) this.#ref(live.group, -1);
    }
    this.#sessions.delete(part);
  }

  /**
   * The writes of the commit, in their safe order (see the module docs); the index then holds
   * the state they leave.
   *
   * @param estimate The backend's size estimate of a message.
   * @returns The writes.
   */
  flush(estimate: (message: StoredMessage) => number): LogWrite[] {
    const groupPuts: LogWrite[] = [];
    const chunkPuts: LogWrite[] = [];
    let group: GroupValue | undefined;
    let groupId = 0;
    let groupBytes = 0;
    const placed = new Map<StoredMessage, [number, number]>();
    const place = (message: StoredMessage): [number, number] => {
      let at = placed.get(message);
      if (at) return at;
      const size = estimate(message);
      if (!group || groupBytes + size > GROUP_BYTES) {
        groupId = this.#nextId++;
        group = { m: [] };
        groupBytes = 0;
        groupPuts.push({ key: ["m", groupId], value: group, bytes: 64 });
      }
      at = [groupId, group.m.length];
      group.m.push(message);
      groupBytes += size;
      groupPuts[groupPuts.length - 1].bytes! += size;
      placed.set(message, at);
      return at;
    };
    for (const [part, { clientId, records }] of this.#queued) {
      const session = this.#sessions.get(part)!;
      let e: number[] = [];
      let id = 0;
      let chunk: Chunk | undefined;
      for (const record of records.values()) {
        if (!chunk || e.length >= CHUNK_ENTRIES * FIELDS) {
          id = this.#nextId++;
          chunk = { e: e = [], open: 0 };
          session.chunks.set(id, chunk);
          chunkPuts.push({
            key: ["q", part, id],
            value: { c: clientId, e },
            bytes: 64 + clientId.length * 3,
          });
        }
        const sequence = record.sequence;
        const previous = session.live.get(sequence);
        const stage = record.stage === "pubrel" ? STAGE_PUBREL : STAGE_PUBLISH;
        let at: [number, number] = [0, 0];
        if (stage === STAGE_PUBLISH) {
          // A later entry of a sequence is the same message: it keeps its group.
          if (previous?.stage === STAGE_PUBLISH) at = [previous.group, previous.index];
          else if (record.message) at = place(record.message);
          this.#ref(at[0], 1);
        }
        const older = this.#supersede(session, sequence);
        const legacy = session.legacy?.get(sequence);
        if (legacy) {
          this.#deletes.push({ key: legacy });
          session.legacy!.delete(sequence);
        }
        e.push(sequence, record.packetId, stage, at[0], at[1]);
        chunkPuts[chunkPuts.length - 1].bytes! += FIELDS * 9;
        chunk.open++;
        session.live.set(sequence, { chunk: id, stage, group: at[0], index: at[1], older });
      }
    }
    const ackWrites: LogWrite[] = [];
    for (const session of this.#sessions.values()) {
      if (!session.ackChanged) continue;
      session.ackChanged = false;
      if (session.acked.size === 0) {
        if (session.ackStored) ackWrites.push({ key: ["a", session.part] });
        session.ackStored = false;
        continue;
      }
      const a: number[] = [];
      for (const [chunk, done] of session.acked) a.push(chunk, done.length, ...done);
      ackWrites.push({ key: ["a", session.part], value: { a }, bytes: 64 + a.length * 9 });
      session.ackStored = true;
    }
    const writes = [...groupPuts, ...chunkPuts, ...this.#deletes, ...ackWrites, ...this.#groupDeletes];
    this.#queued = new Map();
    this.#deletes = [];
    this.#groupDeletes = [];
    return writes;
  }

  /** Sessions in the index (for tests and metrics). */
  get sessions(): number {
    return this.#sessions.size;
  }

  // Internals ----------------------------------------------------------------------------------

  /**
   * A new entry of `sequence` is coming: the previous one stops being its latest.
   *
   * @returns The kept chunks that still hold an earlier entry of it.
   */
  #supersede(session: Session, sequence: number): number[] | undefined {
    const previous = session.live.get(sequence);
    if (!previous) return undefined;
    session.live.delete(sequence);
    if (previous.stage === STAGE_PUBLISH) this.#ref(previous.group, -1);
    const older = previous.older;
    const chunk = session.chunks.get(previous.chunk);
    if (!chunk) return older;
    if (--chunk.open === 0) {
      this.#deleteChunk(session, previous.chunk);
      return older;
    }
    session.superseded = true;
    return older ? [...older, previous.chunk] : [previous.chunk];
  }

  #deleteChunk(session: Session, id: number): void {
    const chunk = session.chunks.get(id);
    if (!chunk) return;
    session.chunks.delete(id);
    this.#deletes.push({ key: ["q", session.part, id] });
    if (session.acked.delete(id)) session.ackChanged = true;
    if (!session.superseded) return;
    const e = chunk.e;
    for (let i = 0; i < e.length; i += FIELDS) {
      const live = session.live.get(e[i]);
      if (!live?.older) continue;
      const older = live.older.filter((other) => other !== id);
      live.older = older.length > 0 ? older : undefined;
    }
  }

  #ref(group: number, delta: number): void {
    if (group === 0) return;
    const refs = (this.#groups.get(group) ?? 0) + delta;
    if (refs > 0) this.#groups.set(group, refs);
    else {
      this.#groups.delete(group);
      this.#groupDeletes.push({ key: ["m", group] });
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
  for (const [id, { c: clientId, e }] of chunks) {
    const completed = done.get(id);
    for (let i = 0; i < e.length; i += FIELDS) {
      const sequence = e[i];
      if (completed?.has(sequence)) continue;
      const packetId = e[i + 1];
      if (e[i + 2] === STAGE_PUBREL) {
        out.set(sequence, { clientId, direction: "out", sequence, packetId, stage: "pubrel" });
        continue;
      }
      const message = groups.get(e[i + 3])?.m[e[i + 4]];
      // A message whose group is gone was done (a commit split by KV's limits, cut by a crash).
      if (message) {
        out.set(sequence, { clientId, direction: "out", sequence, packetId, stage: "publish", message });
      } else out.delete(sequence);
    }
  }
  return out;
}

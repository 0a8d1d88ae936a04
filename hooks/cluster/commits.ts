/**
 * {@linkcode Commits}: a node's writes to the engine (forwards, route changes, retained changes,
 * delivered inbox entries, ended sessions), gathered into batches and committed in order.
 *
 * - **Group commit.** Writes gather in one batch; with no commit in flight it is sent at the end of
 *   the turn of the event loop (a microtask), else it waits for the commits in flight.
 * - **Pipelining.** A batch whose forwards reach {@linkcode PIPELINE_BYTES} is sent at once, even with
 *   commits in flight. A flooded node reads and routes for long turns of its event loop, and the
 *   engine's replies are only read between them: waiting for each reply before sending the next batch
 *   would send a turn's forwards (megabytes) in a few huge entries, late, while the receiving nodes
 *   idle. Bounded entries also spare the engine and the receivers from parsing huge replies.
 * - **Order.** Commits go over one connection and are applied in the order sent. A failure marks the
 *   pipeline broken before anything else is sent: later batches gather until every commit in flight
 *   has settled, the failed ones retried in order (with backoff) first.
 * - **Waiters.** {@linkcode Commits.tail} resolves when the latest batch and every earlier one are
 *   stored: what acknowledgements wait for.
 * - **Session writes.** A will sent or a shared group's messages given back change stored sessions and
 *   forward messages: {@linkcode Commits.withSessions} puts those session writes into the batch holding
 *   the forwards, which is not split meanwhile ({@linkcode Commits.unsplit}), and which is sent once the
 *   session store's earlier writes are stored (nothing is sent after it before it settles). The forwards
 *   stay in this one ordered stream of commits, so each destination reads them in order with this node's
 *   other forwards (per-publisher order is kept); the price, a round trip of the store before the batch
 *   goes, is paid only by those rare batches.
 *
 * @module
 */

import { ByteWriter } from "../../src/packets/writer.ts";
import type { Batch, ClusterBus, SessionWrite } from "./bus.ts";
import type { EngineOutage } from "./health.ts";
import { delay } from "./timing.ts";
import { diesBefore } from "./test_fault.ts";
import type { Packet } from "../../src/packets/types.ts";
import { type MessageId, NO_GROUPS, writeRecord } from "./wire.ts";

/**
 * A batch gathering while commits are in flight is sent once its forwards reach this many bytes. Measured
 * against 64 KiB, interleaved: 16 KiB cost 1.2–1.6x the CPU per delivery; 256 KiB raised cross-node fan-in
 * QoS 1 rates 1.3–1.4x but cut fan-out QoS 0 to 0.58x (coarser overlap of the two nodes); 128 KiB was no
 * better anywhere.
 */
export const PIPELINE_BYTES = 64 * 1024;
/** At most this many commits are in flight (16 MiB of forwards); past it, the next batch gathers. */
const MAX_IN_FLIGHT = 256;
/** At most this many batch writers are kept for reuse (a fresh 64 KiB buffer costs more than its bytes). */
const SPARE_WRITERS = 16;

/** What {@linkcode Commits} tells its node. */
export interface CommitsHost {
  /** Whether the node is stopping (a failing commit is then given up after a few attempts). */
  stopped(): boolean;
  /** A batch is stored (or given up while stopping), after every earlier one. */
  committed(batch: Batch): void;
}

/** The result of a commit that succeeded (no error). */
function succeeded(): undefined {
  return undefined;
}

/**
 * A node's batches of writes to the engine.
 */
export class Commits {
  readonly #bus: ClusterBus;
  readonly #nodeId: string;
  readonly #trouble: EngineOutage;
  readonly #host: CommitsHost;
  #pending: Batch | undefined;
  #pendingDone: PromiseWithResolvers<void> | undefined;
  /** What the gathering batch waits for before it is sent (it holds session writes). */
  #pendingAfter: Promise<void> | undefined;
  /** A batch that waited for its session store's writes, in flight: nothing is sent until it settles. */
  #waiting: Batch | undefined;
  /** Writers are not flushed when full (the work in progress must land in one batch). */
  #unsplit = false;
  /** Forwards of the gathering batch, per destination node. */
  readonly #writers = new Map<string, ByteWriter>();
  readonly #spareWriters: ByteWriter[] = [];
  #tail: Promise<void> = Promise.resolve();
  /** Settles when every commit sent so far has (in order). */
  #settled: Promise<void> = Promise.resolve();
  /** Commits sent and not settled. */
  #inFlight = 0;
  /** A commit in flight failed: nothing more is sent until it is retried. */
  #broken = false;
  #scheduled = false;

  /**
   * Creates the batches of a node.
   *
   * @param bus The engine.
   * @param nodeId The node.
   * @param trouble Told when commits fail and work again.
   * @param host The node.
   */
  constructor(bus: ClusterBus, nodeId: string, trouble: EngineOutage, host: CommitsHost) {
    this.#bus = bus;
    this.#nodeId = nodeId;
    this.#trouble = trouble;
    this.#host = host;
  }

  /** Resolves when everything gathered so far is stored. */
  get tail(): Promise<void> {
    return this.#tail;
  }

  /** The batch gathering, if any. */
  get pending(): Batch | undefined {
    return this.#pending;
  }

  /**
   * The batch gathering for the next commit (one is started and its commit scheduled if needed).
   *
   * @returns The batch.
   */
  batch(): Batch {
    if (this.#pending === undefined) {
      this.#pending = {
        forwards: new Map(),
        routes: [],
        retained: [],
        delivered: [],
        endedSessions: [],
        sessions: [],
      };
      this.#pendingDone = Promise.withResolvers<void>();
      this.#tail = this.#pendingDone.promise;
      if (this.#inFlight === 0) this.#scheduleFlush();
    }
    return this.#pending;
  }

  /**
   * Where the gathering batch's records for a node go. A writer that would pass
   * {@linkcode PIPELINE_BYTES} gets its batch sent first, at once: not at the end of the turn, which
   * for a flooded node can hold megabytes.
   *
   * @param node The destination node.
   * @param size About how many bytes are about to be written.
   * @returns The writer (of the batch gathering after the call).
   */
  writer(node: string, size: number): ByteWriter {
    this.batch();
    let writer = this.#writers.get(node);
    if (writer !== undefined && writer.length + size >= PIPELINE_BYTES && !this.#unsplit) {
      this.#flush();
      this.batch();
      writer = this.#writers.get(node);
    }
    if (writer === undefined) {
      writer = this.#spareWriters.pop() ?? new ByteWriter(PIPELINE_BYTES + 1024);
      this.#writers.set(node, writer);
    }
    return writer;
  }

  /**
   * Runs `work` so that everything it queues lands in the batch gathering (no writer that fills up sends
   * it meanwhile: the batch may pass {@linkcode PIPELINE_BYTES}).
   *
   * @param work The work (synchronous).
   */
  unsplit(work: () => void): void {
    if (this.#unsplit) return work();
    this.#unsplit = true;
    try {
      work();
    } finally {
      this.#unsplit = false;
    }
  }

  /**
   * Adds session writes to the gathering batch (see the module docs): it is sent only once `after` resolves
   * (the session store's earlier writes are stored), and no later batch before it settles.
   *
   * @param writes The session writes.
   * @param after What the batch waits for (a batch that waits already keeps waiting for its first).
   * @returns Resolves when the batch is stored.
   */
  withSessions(writes: readonly SessionWrite[], after: Promise<void>): Promise<void> {
    this.batch().sessions.push(...writes);
    this.#pendingAfter ??= after;
    return this.#tail;
  }

  /**
   * Queues a message for the non-shared subscriptions of `nodes`, encoded once (into the first one's writer).
   *
   * @param packet The message.
   * @param nodes The destination nodes (at least one).
   * @param id The node's last message id: the next one is taken, the same for every destination's copy.
   */
  forward(packet: Packet, nodes: readonly string[], id: MessageId): void {
    this.batch();
    id.seq++;
    const first = this.writer(nodes[0], packet.payload?.length ?? 0);
    const start = writeRecord(first, packet, undefined, true, NO_GROUPS, id);
    if (nodes.length === 1) return;
    // A view of the first writer's bytes: valid while the others are written (it is not written to).
    const encoded = first.buffer.subarray(start, first.length);
    for (let i = 1; i < nodes.length; i++) {
      writeRecord(this.writer(nodes[i], encoded.length), packet, encoded, true, NO_GROUPS, id);
    }
  }

  #scheduleFlush(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(this.#flush);
  }

  /**
   * Sends the gathering batch: at once when no commit is in flight; while some are, only once its
   * forwards are about {@linkcode PIPELINE_BYTES} (else it waits for them: group commit).
   */
  readonly #flush = (): void => {
    this.#scheduled = false;
    if (this.#pending === undefined) return;
    if (this.#inFlight > 0) {
      if (this.#broken || this.#waiting !== undefined || this.#inFlight >= MAX_IN_FLIGHT) return;
      let bytes = 0;
      for (const writer of this.#writers.values()) bytes += writer.length;
      if (bytes < PIPELINE_BYTES - 1024) return;
    }
    const batch = this.#pending;
    const done = this.#pendingDone!;
    const writers = [...this.#writers.values()];
    for (const [node, writer] of this.#writers) batch.forwards.set(node, writer.toBytes());
    this.#writers.clear();
    const after = this.#pendingAfter;
    this.#pending = this.#pendingDone = this.#pendingAfter = undefined;
    this.#inFlight++;
    if (after !== undefined) this.#waiting = batch;
    const send = () =>
      diesBefore(batch) ? new Promise<void>(() => {}) : this.#bus.commit(this.#nodeId, batch);
    const commit = after === undefined ? send() : after.then(send);
    const sent = commit.then(succeeded, (error) => {
      this.#broken = true; // seen before anything else is sent: nothing overtakes the retry
      return error instanceof Error ? error : new Error(String(error));
    });
    const previous = this.#settled;
    this.#settled = this.#settle(batch, writers, sent, previous, done);
  };

  /** Waits for a commit and every earlier one, retries it if it failed, then releases its waiters. */
  async #settle(
    batch: Batch,
    writers: ByteWriter[],
    sent: Promise<Error | undefined>,
    previous: Promise<void>,
    done: PromiseWithResolvers<void>,
  ): Promise<void> {
    let error = await sent;
    await previous;
    for (let attempt = 0; error !== undefined; attempt++) {
      if (this.#host.stopped() && attempt >= 3) break;
      this.#trouble.began(error);
      await delay(Math.min(50 * 2 ** attempt, 500));
      try {
        await this.#bus.commit(this.#nodeId, batch);
        error = undefined;
      } catch (failure) {
        error = failure instanceof Error ? failure : new Error(String(failure));
      }
    }
    if (error === undefined) this.#trouble.ended();
    this.#host.committed(batch);
    if (this.#waiting === batch) this.#waiting = undefined;
    if (--this.#inFlight === 0) this.#broken = false;
    // The engine has the bytes (or they were given up): their writers serve the next batches.
    for (const writer of writers) {
      const capacity = writer.buffer.length;
      if (capacity < PIPELINE_BYTES || capacity > 4 * PIPELINE_BYTES) continue;
      if (this.#spareWriters.length >= SPARE_WRITERS) break;
      writer.reset();
      this.#spareWriters.push(writer);
    }
    done.resolve();
    if (this.#pending !== undefined) this.#scheduleFlush();
  }
}

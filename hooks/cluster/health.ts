/**
 * A node's health as the cluster sees it: {@linkcode EngineOutage} (its engine's trouble: one warning
 * per outage, whoever notices it first, a commit, the session store, a lease renewal that fails or
 * hangs, and one line when it is over) and {@linkcode LeaseGate} (whether its lease is known to be
 * current, which every acknowledgement waits for).
 *
 * @module
 */

import { type Client, holdWritesOf } from "../../src/client.ts";
import { logger } from "../../src/logger.ts";

const log = logger("cluster");

/** A short reason for a failed engine command (ioredis says "Stream isn't writeable..." when disconnected). */
function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return /isn't writeable|Connection is closed/.test(message) ? "connection lost" : message;
}

/** Whether the engine is unreachable, and since when it answers again. */
export class EngineOutage {
  /** The engine is unreachable. */
  active = false;
  /** Since when the engine answers again after an outage (0: no outage yet). */
  healthySince = 0;
  readonly #address: string;
  readonly #stopped: () => boolean;

  /**
   * Creates the tracker.
   *
   * @param address The engine's address (for the messages).
   * @param stopped Whether the node is stopping (an outage is not reported then).
   */
  constructor(address: string, stopped: () => boolean) {
    this.#address = address;
    this.#stopped = stopped;
  }

  /**
   * A command failed for lack of a connection: warns once per outage.
   *
   * @param error The failure.
   */
  began(error: unknown): void {
    if (this.active || this.#stopped()) return;
    this.active = true;
    log.warn(
      "The cluster's Redis at {address} is unreachable ({error}): new sessions refused, acknowledgements " +
        "withheld until stored, local QoS 0 goes on",
      { address: this.#address, error: reasonOf(error) },
    );
  }

  /** A command succeeded: the outage, if any, is over. */
  ended(): void {
    if (!this.active) return;
    this.active = false;
    this.healthySince = Date.now();
    log.info("The cluster's Redis at {address} is back", { address: this.#address });
  }
}

/**
 * Whether this node's lease is known to be current. A node that stalled past its lease may have been
 * claimed meanwhile (its sessions adopted elsewhere), which only its next renewal tells: until then,
 * nothing is acknowledged. The lease counts from before the request that took or renewed it, by this
 * process's clock, with a tenth of it to spare.
 */
export class LeaseGate {
  #until = 0;
  #since = 0;
  #waiting: PromiseWithResolvers<void> | undefined;
  /** Closed whatever the clock says (the node was claimed and is joining again). */
  closed = false;
  /** When the renewal timer last fired (a process that stalled finds it late). */
  #beat = Number.MAX_SAFE_INTEGER;
  /** Connections held this turn (see {@linkcode LeaseGate.holdWritesIfStalled}). */
  #heldWrites: Set<Client> | undefined;
  /** The timer fired late (the process stalled) since the last renewal that found the lease current. */
  #woke = false;
  /** The node is stopping: nothing waits on the lease any more (no renewal will come). */
  #stopped = false;

  /**
   * The renewal timer fired.
   *
   * @param now The time (ms since epoch).
   * @param leaseMs The lease (a beat later than 0.4 of it means the process stalled).
   * @returns How long since it last fired (ms).
   */
  beat(now: number, leaseMs: number): number {
    const since = now - this.#beat;
    this.#beat = now;
    if (since > leaseMs * 0.4) this.#woke = true;
    return since;
  }

  /**
   * Called as the node accepts a message. When the process wakes from a stall (its renewal timer is late)
   * with its lease not known current, it may have been claimed meanwhile, its sessions adopted by another
   * node that gets this message too: until the lease is known current, what persistent sessions'
   * connections are sent this turn is held (a node that was claimed closes them first, unsent). An engine
   * outage holds nothing: the process runs, its timer fires, and nobody claims a node meanwhile.
   *
   * @param leaseMs The lease.
   */
  holdWritesIfStalled(leaseMs: number): void {
    // Stalled: the timer is late now, or fired late and no renewal has answered since (the wake-up's
    // renewal is still on its way: the node may learn it was claimed).
    const stalled = this.#woke || Date.now() - this.#beat > leaseMs * 0.4;
    if (!stalled || this.#heldWrites !== undefined) return;
    if (this.held() === undefined) return;
    const held = this.#heldWrites = new Set<Client>();
    const outer = holdWritesOf(held);
    queueMicrotask(() => {
      holdWritesOf(outer);
      this.#heldWrites = undefined;
      const release = () => {
        for (const client of held) client.releaseWrites();
      };
      const lease = this.held();
      if (lease === undefined) release();
      else lease.then(release);
    });
  }

  /**
   * A renewal (or a join) sent at `at` found the lease current: waiting acknowledgements go out.
   *
   * @param at When the request was sent (ms since epoch).
   * @param leaseMs The lease.
   */
  renewed(at: number, leaseMs: number): void {
    this.#since = at;
    this.#until = at + leaseMs * 0.9;
    if (Date.now() >= this.#until) return; // a reply that waited out a stall: the next renewal tells
    this.#woke = false;
    this.release();
  }

  /** When the last renewal that found the lease current was sent (ms since epoch). */
  get since(): number {
    return this.#since;
  }

  /** Resolves (undefined: at once) when the lease is known to be current. */
  readonly held = (): Promise<void> | undefined => {
    if (this.#stopped || (!this.closed && Date.now() < this.#until)) return undefined;
    return (this.#waiting ??= Promise.withResolvers<void>()).promise;
  };

  /** Lets every waiter go (the lease is current). */
  release(): void {
    this.#waiting?.resolve();
    this.#waiting = undefined;
  }

  /**
   * The node is stopping: lets every waiter go, now and later (a wait begun after the last renewal
   * would otherwise never end, and hold up the stop).
   */
  stop(): void {
    this.#stopped = true;
    this.release();
  }
}

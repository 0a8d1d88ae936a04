/**
 * {@linkcode ReadTurns}: a server's connections share the event loop with other I/O.
 *
 * @module
 */

/**
 * Makes a server's connections give the event loop a turn every `limit` bytes they read together. A
 * flooded server otherwise reads and processes every connection's data in one long turn, and I/O
 * completed meanwhile waits for its end: a cluster node's engine replies, which acknowledgements wait
 * for, arrive a whole flood late. One timer per `limit` bytes, nothing per message.
 *
 * @example Every 1 KiB, a wait for the next turn
 * ```ts
 * import assert from "node:assert/strict";
 * import { ReadTurns } from "./read_turns.ts";
 * const turns = new ReadTurns(1024);
 * assert.equal(turns.read(1000), undefined);
 * const wait = turns.read(100)!;
 * assert.equal(turns.read(10), wait); // everyone waits for the same turn
 * await wait;
 * assert.equal(turns.read(1000), undefined);
 * ```
 */
export class ReadTurns {
  readonly #limit: number;
  #bytes = 0;
  #wait: Promise<void> | undefined;
  #resolve: (() => void) | undefined;
  readonly #next = (): void => {
    this.#bytes = 0;
    this.#wait = undefined;
    this.#resolve!();
  };

  /**
   * Creates the shared budget.
   *
   * @param limit Bytes read before the connections wait for the next turn (default 256 KiB).
   */
  constructor(limit: number = 256 * 1024) {
    this.#limit = limit;
  }

  /**
   * Counts bytes a connection read.
   *
   * @param n The bytes.
   * @returns A promise to wait for before reading more, or undefined.
   */
  read(n: number): Promise<void> | undefined {
    if ((this.#bytes += n) < this.#limit) return undefined;
    if (this.#wait === undefined) {
      this.#wait = new Promise<void>((resolve) => this.#resolve = resolve);
      setTimeout(this.#next, 0);
    }
    return this.#wait;
  }
}

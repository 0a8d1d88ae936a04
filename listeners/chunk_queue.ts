/**
 * The read side shared by connections whose bytes arrive as events (Node.js-style sockets,
 * WebSocket frames, in-memory pairs): chunks are queued as they come and `read()` copies them into
 * the caller's buffer, waiting when there is nothing to read.
 *
 * @module
 */

const EMPTY = new Uint8Array(0);

/**
 * A queue of received byte chunks, read as one stream (chunk boundaries are ignored).
 *
 * @example Two chunks read as one stream
 * ```ts
 * import assert from "node:assert/strict";
 * import { ChunkQueue } from "./chunk_queue.ts";
 *
 * const queue = new ChunkQueue();
 * queue.push(new Uint8Array([1, 2]));
 * queue.push(new Uint8Array([3]));
 * queue.end();
 * const buffer = new Uint8Array(8);
 * assert.equal(await queue.read(buffer), 3); // both chunks in one read
 * assert.deepEqual(buffer.subarray(0, 3), new Uint8Array([1, 2, 3]));
 * assert.equal(await queue.read(buffer), null); // ended and empty
 * ```
 */
export class ChunkQueue {
  #chunks: Uint8Array[] = [];
  #head = 0;
  #offset = 0;
  #buffered = 0;
  #ended = false;
  #error: Error | undefined;
  #waiting: (() => void) | undefined;

  /** Bytes queued and not read yet. */
  get buffered(): number {
    return this.#buffered;
  }

  /** Whether no more chunks will come. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Queues a chunk (kept as is: pass a copy if its buffer is reused).
   *
   * @param chunk The bytes.
   */
  push(chunk: Uint8Array): void {
    if (this.#ended) return;
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    this.#wake();
  }

  /** No more chunks will come: once the queue is read, `read()` returns null. */
  end(): void {
    this.#ended = true;
    this.#wake();
  }

  /**
   * The stream failed: once the queue is read, `read()` throws `error`.
   *
   * @param error The failure.
   */
  fail(error: Error): void {
    this.#error = error;
    this.#wake();
  }

  /**
   * Copies queued bytes into `buffer`, waiting until there are some.
   *
   * @param buffer Where to put the bytes.
   * @returns The byte count, or null at the end of the stream.
   * @throws {Error} The error passed to `fail`, once everything before it was read.
   */
  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#head === this.#chunks.length) {
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#waiting = resolve);
    }
    let n = 0;
    while (n < buffer.length && this.#head < this.#chunks.length) {
      const chunk = this.#chunks[this.#head];
      const take = Math.min(buffer.length - n, chunk.length - this.#offset);
      buffer.set(chunk.subarray(this.#offset, this.#offset + take), n);
      n += take;
      this.#offset += take;
      if (this.#offset === chunk.length) {
        this.#chunks[this.#head++] = EMPTY;
        this.#offset = 0;
      }
    }
    if (this.#head === this.#chunks.length) {
      this.#chunks.length = 0;
      this.#head = 0;
    }
    this.#buffered -= n;
    return n;
  }

  #wake(): void {
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.();
  }
}

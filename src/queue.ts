/**
 * A first-in first-out ring buffer: O(1) push and shift without `Array.shift()`'s copying.
 *
 * @module
 */

/**
 * A growable ring-buffer queue.
 *
 * @example Push and shift
 * ```ts
 * import assert from "node:assert/strict";
 * import { Queue } from "./queue.ts";
 *
 * const q = new Queue<number>();
 * q.push(1);
 * q.push(2);
 * assert.equal(q.shift(), 1);
 * assert.equal(q.length, 1);
 * ```
 */
export class Queue<T> {
  #items: (T | undefined)[];
  #head = 0;
  #length = 0;

  /**
   * Creates an empty queue.
   *
   * @param capacity Initial capacity (a power of two is best); 0 allocates on the first push.
   */
  constructor(capacity = 0) {
    this.#items = new Array(capacity);
  }

  /** The number of items queued. */
  get length(): number {
    return this.#length;
  }

  /**
   * Adds an item at the end.
   *
   * @param item The item.
   */
  push(item: T): void {
    if (this.#length === this.#items.length) this.#grow();
    this.#items[(this.#head + this.#length) % this.#items.length] = item;
    this.#length++;
  }

  /**
   * Removes and returns the first item.
   *
   * @returns The first item, or undefined when empty.
   */
  shift(): T | undefined {
    if (this.#length === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#items.length;
    this.#length--;
    return item;
  }

  /**
   * Returns the first item without removing it.
   *
   * @returns The first item, or undefined when empty.
   */
  peek(): T | undefined {
    return this.#length === 0 ? undefined : this.#items[this.#head];
  }

  /** Removes every item. */
  clear(): void {
    this.#items.fill(undefined);
    this.#head = 0;
    this.#length = 0;
  }

  /** Iterates the items in order without removing them. */
  *[Symbol.iterator](): IterableIterator<T> {
    for (let i = 0; i < this.#length; i++) yield this.#items[(this.#head + i) % this.#items.length] as T;
  }

  #grow(): void {
    const items = new Array<T | undefined>(Math.max(16, this.#items.length * 2));
    for (let i = 0; i < this.#length; i++) items[i] = this.#items[(this.#head + i) % this.#items.length];
    this.#items = items;
    this.#head = 0;
  }
}

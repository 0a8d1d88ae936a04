/**
 * A small seeded pseudo-random number generator for the fuzz harness, so that every run can be
 * replayed from its seed.
 *
 * @module
 */

/**
 * A seeded PRNG (sfc32, seeded through splitmix32): fast, 32-bit, and good enough to pick mutations.
 *
 * @example Replaying a sequence
 * ```ts
 * import { Rng } from "./rng.ts";
 * const a = new Rng(42);
 * const b = new Rng(42);
 * console.log(a.int(1000) === b.int(1000)); // true
 * ```
 */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /**
   * Creates a generator.
   *
   * @param seed Any integer; equal seeds give equal sequences.
   */
  constructor(seed: number) {
    let state = seed >>> 0;
    const split = (): number => {
      state = (state + 0x9e3779b9) >>> 0;
      let z = state;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = split();
    this.#b = split();
    this.#c = split();
    this.#d = split();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /**
   * The next 32-bit unsigned value.
   *
   * @returns 0..2^32-1.
   */
  u32(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#c = (this.#c + t) | 0;
    return t >>> 0;
  }

  /**
   * A uniform integer below `n`.
   *
   * @param n The bound, at least 1.
   * @returns 0..n-1.
   */
  int(n: number): number {
    return Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  /**
   * An integer in a closed range.
   *
   * @param min The smallest value.
   * @param max The largest value.
   * @returns min..max.
   */
  range(min: number, max: number): number {
    return min + this.int(max - min + 1);
  }

  /**
   * True with probability `p`.
   *
   * @param p The probability, 0..1.
   * @returns A coin flip.
   */
  chance(p: number): boolean {
    return this.u32() < p * 0x1_0000_0000;
  }

  /**
   * One element of a non-empty array.
   *
   * @param items The choices.
   * @returns One of them.
   */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /**
   * Random bytes.
   *
   * @param n How many.
   * @returns A new array of `n` random bytes.
   */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

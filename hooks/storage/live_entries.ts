/**
 * {@linkcode LiveEntries}: a session's awaited outbound entries by sequence, for the outbound log
 * (`outbound_log.ts`). A session's sequences are consecutive and mostly done in order, so the
 * entries sit in a ring of parallel arrays indexed by `sequence - base`: a delivery and its
 * acknowledgement cost an array store each, where a `Map` with an object per entry cost a hash
 * insert and delete in a table of thousands, and an object that lived until the acknowledgement
 * (most of the log's time and garbage in a fan-out profile). An entry left behind while later ones
 * are done (a QoS 2 flow that waits, a message never acknowledged) moves to a small `Map` when the
 * ring would otherwise be under a quarter full, so memory stays in proportion to the entries.
 *
 * @module
 */

/** An entry outside the ring (rare). */
interface Far<C, G> {
  chunk: C;
  group: G | undefined;
  packed: number;
}

const FIRST_CAPACITY = 16;
/**
 * A ring this large or larger that empties is made smaller when it spanned under a quarter of its
 * slots since it last emptied (not each time: a session that fills and drains its ring every
 * commit would reallocate it every commit).
 */
const SHRINK_CAPACITY = 256;
/** Stage values fit in 3 bits; the group index is the rest. */
const STAGE_BITS = 8;

/**
 * A session's awaited entries: per sequence its chunk, stage, group and index in the group. After
 * {@linkcode LiveEntries.find} returns true, the fields `chunk`, `stage`, `group` and `index` hold
 * the entry found (read them before the next call).
 */
export class LiveEntries<C extends object, G extends object> {
  /** The chunk of the entry found. */
  chunk: C | undefined = undefined;
  /** The stage of the entry found. */
  stage = 0;
  /** The group of the entry found. */
  group: G | undefined = undefined;
  /** The index in its group of the entry found. */
  index = 0;
  /** The sequence at the ring's head; never decreases (entries below it are in `#far`). */
  #base = 0;
  #head = 0;
  /** Sequences from `#base` the ring spans (its last slot is used). */
  #span = 0;
  /** Entries in the ring. */
  #count = 0;
  /** The largest span since the ring last emptied. */
  #peak = 0;
  #mask = -1;
  #chunks: (C | undefined)[] = [];
  #groups: (G | undefined)[] = [];
  #packed: number[] = [];
  #far: Map<number, Far<C, G>> | undefined;

  /** How many entries there are. */
  get size(): number {
    return this.#count + (this.#far?.size ?? 0);
  }

  /** The ring's slots (its memory, for tests). */
  get capacity(): number {
    return this.#mask + 1;
  }

  /**
   * Looks a sequence up.
   *
   * @param sequence The sequence.
   * @returns Whether it has an entry (then in `chunk`, `stage`, `group`, `index`).
   */
  find(sequence: number): boolean {
    const offset = sequence - this.#base;
    if (offset >= 0) {
      if (offset >= this.#span) return false;
      const slot = (this.#head + offset) & this.#mask;
      const chunk = this.#chunks[slot];
      if (chunk === undefined) return false;
      this.#found(chunk, this.#groups[slot], this.#packed[slot]);
      return true;
    }
    const far = this.#far?.get(sequence);
    if (far === undefined) return false;
    this.#found(far.chunk, far.group, far.packed);
    return true;
  }

  #found(chunk: C, group: G | undefined, packed: number): void {
    this.chunk = chunk;
    this.group = group;
    this.stage = packed & (STAGE_BITS - 1);
    this.index = packed >>> 3;
  }

  /**
   * Sets a sequence's entry (new, or replacing the one it has).
   *
   * @param sequence The sequence.
   * @param chunk Its chunk.
   * @param stage Its stage (0 to 7).
   * @param group Its group, if any.
   * @param index Its index in the group.
   */
  set(sequence: number, chunk: C, stage: number, group: G | undefined, index: number): void {
    const packed = index * STAGE_BITS + stage;
    if (this.#count === 0 && sequence >= this.#base) {
      this.#base = sequence;
      this.#span = 0;
    }
    let offset = sequence - this.#base;
    if (offset < 0) {
      const far = this.#far?.get(sequence);
      if (far !== undefined) {
        far.chunk = chunk;
        far.group = group;
        far.packed = packed;
      } else (this.#far ??= new Map()).set(sequence, { chunk, group, packed });
      return;
    }
    if (offset >= this.#mask + 1) {
      this.#makeRoom(sequence);
      offset = sequence - this.#base;
    }
    const slot = (this.#head + offset) & this.#mask;
    if (this.#chunks[slot] === undefined) this.#count++;
    this.#chunks[slot] = chunk;
    this.#groups[slot] = group;
    this.#packed[slot] = packed;
    if (offset >= this.#span) {
      this.#span = offset + 1;
      if (offset >= this.#peak) this.#peak = offset + 1;
    }
  }

  /**
   * Removes a sequence's entry, if it has one.
   *
   * @param sequence The sequence.
   */
  delete(sequence: number): void {
    const offset = sequence - this.#base;
    if (offset < 0) {
      this.#far?.delete(sequence);
      return;
    }
    if (offset >= this.#span) return;
    const slot = (this.#head + offset) & this.#mask;
    if (this.#chunks[slot] === undefined) return;
    this.#chunks[slot] = undefined;
    this.#groups[slot] = undefined;
    if (--this.#count === 0) {
      this.#base = sequence + 1;
      this.#head = 0;
      this.#span = 0;
      const capacity = this.#mask + 1;
      if (capacity >= SHRINK_CAPACITY && this.#peak * 4 <= capacity) {
        let smaller = FIRST_CAPACITY;
        while (smaller < this.#peak * 2) smaller *= 2;
        this.#allocate(smaller); // every slot is empty
      }
      this.#peak = 0;
      return;
    }
    if (offset === 0) this.#skipHoles();
  }

  /**
   * Calls `fn` with the group of every entry that has one.
   *
   * @param fn The callback.
   */
  forEachGroup(fn: (group: G) => void): void {
    for (let offset = 0; offset < this.#span; offset++) {
      const slot = (this.#head + offset) & this.#mask;
      const group = this.#groups[slot];
      if (this.#chunks[slot] !== undefined && group !== undefined) fn(group);
    }
    if (this.#far) { for (const far of this.#far.values()) if (far.group !== undefined) fn(far.group); }
  }

  /** Advances the head past empty slots (the ring holds at least one entry). */
  #skipHoles(): void {
    while (this.#chunks[this.#head] === undefined) {
      this.#head = (this.#head + 1) & this.#mask;
      this.#base++;
      this.#span--;
    }
  }

  /** Makes the ring reach `sequence`: the oldest entries move out while it is sparse, then it grows. */
  #makeRoom(sequence: number): void {
    if (this.#mask < 0) {
      this.#allocate(FIRST_CAPACITY);
      this.#base = sequence;
      return;
    }
    // Sparse: the ring would be under a quarter full.
    while (
      this.#count > 0 && sequence - this.#base > this.#mask &&
      (this.#count + 1) * 4 <= sequence - this.#base + 1
    ) {
      const head = this.#head;
      (this.#far ??= new Map()).set(this.#base, {
        chunk: this.#chunks[head]!,
        group: this.#groups[head],
        packed: this.#packed[head],
      });
      this.#chunks[head] = undefined;
      this.#groups[head] = undefined;
      if (--this.#count === 0) {
        this.#base = sequence;
        this.#head = 0;
        this.#span = 0;
        return;
      }
      this.#skipHoles();
    }
    let capacity = this.#mask + 1;
    while (sequence - this.#base >= capacity) capacity *= 2;
    if (capacity > this.#mask + 1) this.#allocate(capacity);
  }

  /** New arrays of `capacity` slots (a power of two), holding the ring's entries from index 0. */
  #allocate(capacity: number): void {
    const chunks = new Array<C | undefined>(capacity).fill(undefined);
    const groups = new Array<G | undefined>(capacity).fill(undefined);
    const packed = new Array<number>(capacity).fill(0);
    for (let offset = 0; offset < this.#span; offset++) {
      const slot = (this.#head + offset) & this.#mask;
      chunks[offset] = this.#chunks[slot];
      groups[offset] = this.#groups[slot];
      packed[offset] = this.#packed[slot];
    }
    this.#chunks = chunks;
    this.#groups = groups;
    this.#packed = packed;
    this.#head = 0;
    this.#mask = capacity - 1;
  }
}

/**
 * {@linkcode TopicMatches}: the matches of recent topics, for the topic index.
 *
 * @module
 */

/** At most this many topics' matches are kept (past it they are all dropped, and kept again as they come). */
const KEPT = 4096;

/**
 * The non-shared matches of recent topics, copied for every call: a topic's messages come again and
 * again, and matching each one (split, walk, merge) costs more than a copy. The index empties it on
 * every subscribe and unsubscribe.
 *
 * @example Kept, then copied out
 * ```ts
 * import assert from "node:assert/strict";
 * import { TopicMatches } from "./topic_matches.ts";
 * const matches = new TopicMatches<{ clientId: string; identifiers: number[] }>();
 * matches.keep("a/b", new Map([["c1", { clientId: "c1", identifiers: [] }]]));
 * const out = new Map();
 * assert.equal(matches.fill("a/b", out), true);
 * assert.equal(out.get("c1").clientId, "c1");
 * assert.equal(matches.fill("a/c", new Map()), false);
 * ```
 */
export class TopicMatches<T extends { clientId: string; identifiers: number[] }> {
  readonly #kept = new Map<string, T[]>();

  /**
   * Adds copies of a topic's kept matches to `out`.
   *
   * @param topic The topic name.
   * @param out Where to add them (by client id).
   * @returns False when the topic has none kept (`out` is untouched).
   */
  fill(topic: string, out: Map<string, T>): boolean {
    const kept = this.#kept.get(topic);
    if (kept === undefined) return false;
    for (const match of kept) out.set(match.clientId, copyOf(match));
    return true;
  }

  /**
   * Keeps copies of a topic's matches (callers may change theirs: shared members are merged into them).
   *
   * @param topic The topic name.
   * @param matches Its matches.
   */
  keep(topic: string, matches: Map<string, T>): void {
    if (this.#kept.size >= KEPT) this.#kept.clear();
    const kept: T[] = [];
    for (const match of matches.values()) kept.push(copyOf(match));
    this.#kept.set(topic, kept);
  }

  /** Drops every kept match (the subscriptions changed). */
  clear(): void {
    if (this.#kept.size > 0) this.#kept.clear();
  }
}

function copyOf<T extends { identifiers: number[] }>(match: T): T {
  return { ...match, identifiers: match.identifiers.length === 0 ? [] : match.identifiers.slice() };
}

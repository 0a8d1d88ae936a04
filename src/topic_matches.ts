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
 * const matches = new TopicMatches<{ clientId: string; identifiers: number[] }, never>();
 * matches.keep("a/b", new Map([["c1", { clientId: "c1", identifiers: [] }]]));
 * const kept = matches.match("a/b")!;
 * assert.equal(kept.subscriptions.get("c1")!.clientId, "c1");
 * assert.equal(kept.shared.size, 0);
 * assert.throws(() => kept.shared.set("g/a/b", undefined as never), TypeError);
 * assert.equal(matches.match("a/c"), undefined);
 * ```
 */
export class TopicMatches<T extends { clientId: string; identifiers: number[] }, S> {
  readonly #kept = new Map<string, T[]>();
  /** The `shared` of every kept match: none (a Map costs more to make than the rest of a match). */
  readonly #noShared: Map<string, S> = new NoSharedGroups<S>();

  /**
   * A kept topic's matches.
   *
   * @param topic The topic name.
   * @returns Fresh copies of its matches by client id, and an empty `shared` map that refuses entries
   *   (a topic with shared groups has nothing kept); undefined when the topic has nothing kept.
   */
  match(topic: string): { subscriptions: Map<string, T>; shared: Map<string, S> } | undefined {
    const kept = this.#kept.get(topic);
    if (kept === undefined) return undefined;
    const subscriptions = new Map<string, T>();
    for (const match of kept) subscriptions.set(match.clientId, copyOf(match));
    return { subscriptions, shared: this.#noShared };
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

/** An empty map, shared by every kept match: deleting from it does nothing, adding to it throws. */
class NoSharedGroups<S> extends Map<string, S> {
  override set(key: string): this {
    throw new TypeError(`Cannot add "${key}": a kept topic match has no shared groups (copy the map first)`);
  }
}

function copyOf<T extends { identifiers: number[] }>(match: T): T {
  return { ...match, identifiers: match.identifiers.length === 0 ? [] : match.identifiers.slice() };
}

/**
 * Topic name and topic filter syntax (spec 4.7) and shared subscription filters (spec 4.8.2).
 *
 * @module
 */

import { ReasonCode } from "./reason_codes.ts";

/** The longest topic name or filter, in UTF-8 bytes (it is sent as a UTF-8 Encoded String). */
export const MAX_TOPIC_BYTES = 65_535;

/** The prefix of a shared subscription filter; case-sensitive. */
export const SHARE_PREFIX = "$share/";

function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

/** Non-empty, encodable as UTF-8 without U+0000 [MQTT-1.5.4-1] [MQTT-1.5.4-2], at most 65535 bytes. */
function isEncodableTopic(text: string): boolean {
  if (text.length === 0 || text.indexOf("\u0000") >= 0 || !text.isWellFormed()) return false;
  // Each UTF-16 code unit needs at most three UTF-8 bytes, so only long strings need counting.
  return text.length * 3 <= MAX_TOPIC_BYTES || utf8Length(text) <= MAX_TOPIC_BYTES;
}

/**
 * Whether a string may be used as a topic name in a PUBLISH: non-empty [MQTT-4.7.3-1], without
 * wildcards [MQTT-3.3.2-2] [MQTT-4.7.0-1], without U+0000 or lone surrogates, at most 65535 bytes.
 *
 * @param topic The topic name.
 * @returns True if it is valid.
 *
 * @example Names and non-names
 * ```ts
 * import assert from "node:assert/strict";
 * import { isValidTopicName } from "./topic_rules.ts";
 *
 * assert.equal(isValidTopicName("a/b"), true);
 * assert.equal(isValidTopicName("a/+"), false); // wildcards belong in filters
 * ```
 */
export function isValidTopicName(topic: string): boolean {
  return isEncodableTopic(topic) && topic.indexOf("+") < 0 && topic.indexOf("#") < 0;
}

/**
 * Checks a decoded string field that the spec types as a Topic Name (PUBLISH Topic Name, Will Topic,
 * Response Topic): the one rule every such field shares, so that none of them is checked in one
 * place and forgotten in another. The string is already well-formed UTF-8 without U+0000 (the reader
 * checks that).
 *
 * @param topic The decoded field.
 * @returns 0 if valid; 0x82 Protocol Error if empty [MQTT-4.7.3-1]; 0x90 Topic Name Invalid if it
 *   holds a wildcard [MQTT-3.3.2-2] [MQTT-4.7.0-1].
 *
 * @example Names and non-names
 * ```ts
 * import assert from "node:assert/strict";
 * import { topicNameError } from "./topic_rules.ts";
 * assert.equal(topicNameError("a/b"), 0);
 * assert.equal(topicNameError(""), 0x82);
 * assert.equal(topicNameError("a/#"), 0x90);
 * ```
 */
export function topicNameError(topic: string): number {
  if (topic.length === 0) return ReasonCode.ProtocolError;
  return topic.indexOf("+") >= 0 || topic.indexOf("#") >= 0 ? ReasonCode.TopicNameInvalid : 0;
}

/** Wildcard placement: `#` alone in the last level [MQTT-4.7.1-1], `+` alone in its level [MQTT-4.7.1-2]. */
function hasValidWildcards(filter: string): boolean {
  const n = filter.length;
  for (let i = 0; i < n; i++) {
    const c = filter.charCodeAt(i);
    if (c === 0x23 /* # */) {
      if ((i > 0 && filter.charCodeAt(i - 1) !== 0x2f) || i !== n - 1) return false;
    } else if (c === 0x2b /* + */) {
      if ((i > 0 && filter.charCodeAt(i - 1) !== 0x2f) || (i + 1 < n && filter.charCodeAt(i + 1) !== 0x2f)) {
        return false;
      }
    }
  }
  return true;
}

/**
 * Whether a string is a valid topic filter: non-empty [MQTT-4.7.3-1], encodable, at most 65535
 * bytes, `#` only as the whole last level, `+` only as a whole level. A `$share/{group}/{filter}`
 * filter needs a non-empty group without wildcards [MQTT-4.8.2-1] [MQTT-4.8.2-2] and a valid filter
 * after it.
 *
 * @param filter The topic filter.
 * @returns True if it is valid.
 *
 * @example Filters and non-filters
 * ```ts
 * import assert from "node:assert/strict";
 * import { isValidTopicFilter } from "./topic_rules.ts";
 *
 * assert.equal(isValidTopicFilter("a/+/#"), true);
 * assert.equal(isValidTopicFilter("a/b#"), false); // "#" must be a whole level
 * assert.equal(isValidTopicFilter("$share/g/a"), true);
 * ```
 */
export function isValidTopicFilter(filter: string): boolean {
  if (!isEncodableTopic(filter) || filter === "$share") return false; // a share with no group [MQTT-4.8.2-1]
  if (filter.startsWith(SHARE_PREFIX)) {
    const shared = parseSharedFilter(filter);
    if (shared === undefined) return false;
    const group = shared.group;
    if (group.length === 0 || group.indexOf("+") >= 0 || group.indexOf("#") >= 0) return false;
    return shared.filter.length > 0 && hasValidWildcards(shared.filter);
  }
  return hasValidWildcards(filter);
}

/** The parts of a shared subscription filter. */
export interface SharedFilter {
  /** The share name (the level after `$share/`). */
  group: string;
  /** The topic filter the group subscribes to. */
  filter: string;
}

/**
 * Splits a `$share/{group}/{filter}` filter (the prefix is case-sensitive). This does not validate
 * the parts: use {@linkcode isValidTopicFilter} first.
 *
 * @param filter A topic filter.
 * @returns The group and the filter, or `undefined` if it does not start with `$share/` and have a
 * `/` after the group.
 *
 * @example Splitting a shared filter
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseSharedFilter } from "./topic_rules.ts";
 *
 * assert.deepEqual(parseSharedFilter("$share/workers/jobs/#"), { group: "workers", filter: "jobs/#" });
 * assert.equal(parseSharedFilter("jobs/#"), undefined); // not shared
 * ```
 */
export function parseSharedFilter(filter: string): SharedFilter | undefined {
  if (!filter.startsWith(SHARE_PREFIX)) return undefined;
  const slash = filter.indexOf("/", SHARE_PREFIX.length);
  if (slash < 0) return undefined;
  return { group: filter.slice(SHARE_PREFIX.length, slash), filter: filter.slice(slash + 1) };
}

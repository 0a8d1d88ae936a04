/**
 * A bridge's settings and its Mosquitto-style `topic` rules: parsing, validation and the prefix
 * rewriting between local and remote topics.
 *
 * A rule reads `PATTERN [DIRECTION [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]`, as Mosquitto's `topic`
 * lines do: DIRECTION is `out` (local to remote, the default), `in` or `both`; QOS (default 0) is
 * the highest QoS the bridge uses for the rule; the local topic is `LOCAL_PREFIX + PATTERN` and the
 * remote one `REMOTE_PREFIX + PATTERN`. `""` stands for an empty pattern or prefix.
 *
 * @module
 */

import type { ProtocolVersion, QoS } from "../../src/packets/types.ts";
import { isValidTopicFilter } from "../../src/packets/topic_rules.ts";

/** Which way a rule moves messages. */
export type BridgeDirection = "out" | "in" | "both";

/** One `topic` rule. */
export interface BridgeTopic {
  /** The topic pattern, with wildcards; may be empty when both prefixes are set. */
  pattern: string;
  /** `out` local to remote, `in` remote to local, `both`. */
  direction: BridgeDirection;
  /** The highest QoS used for this rule. */
  qos: QoS;
  /** Prepended to the pattern on this broker. */
  localPrefix: string;
  /** Prepended to the pattern on the remote broker. */
  remotePrefix: string;
}

/** TLS toward the remote: PEM texts. */
export interface BridgeTls {
  /** CA certificates to trust (PEM), instead of the system's. */
  ca?: string;
  /** A client certificate (PEM), with `key`. */
  cert?: string;
  /** The client certificate's key (PEM). */
  key?: string;
}

/** A bridge as library users configure it; only `id`, `address` and `topics` are required. */
export interface BridgeConfig {
  /** A unique id, used in logs, `$SYS`, metrics and the admin API. */
  id: string;
  /** The remote broker: `mqtt://host:port`, `mqtts://`, `ws://host:port/path` or `wss://`. */
  address: string;
  /** The protocol level toward the remote: 3 (MQTT 3.1), 4 (3.1.1) or 5 (default). */
  protocolVersion?: ProtocolVersion;
  /** The client id at the remote (default `bridge-<id>`). */
  clientId?: string;
  /** User name at the remote. */
  username?: string;
  /** Password at the remote. */
  password?: string;
  /** Clean Start / Clean Session (default false: the remote keeps the bridge's session). */
  cleanStart?: boolean;
  /** v5 Session Expiry Interval in seconds (default 0; set it for a v5 session that outlives a drop). */
  sessionExpiry?: number;
  /** Keep alive in seconds (default 60). */
  keepAlive?: number;
  /** TLS settings for `mqtts://` and `wss://` (PEM texts). */
  tls?: BridgeTls;
  /** The rules, as `PATTERN [DIRECTION [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]` strings or objects. */
  topics: (string | BridgeTopic)[];
  /** QoS 1/2 messages in flight toward a v3 remote, which announces no Receive Maximum (default 20). */
  maxInflight?: number;
  /** Messages queued while the remote is away or slow; beyond it the oldest is dropped (default 10000). */
  queueMaxMessages?: number;
  /** Payload and topic bytes queued; beyond it the oldest is dropped (default 64 MiB). */
  queueMaxBytes?: number;
  /** First reconnect delay in seconds (default 0.5); it doubles per failed attempt, with jitter. */
  reconnectDelayMin?: number;
  /** Longest reconnect delay in seconds (default 10). */
  reconnectDelayMax?: number;
  /** Seconds to wait for the TCP/TLS/WebSocket connection and CONNACK (default 10). */
  connectTimeout?: number;
}

/** A bridge's settings with defaults applied and rules parsed. */
export interface ResolvedBridgeConfig
  extends Required<Omit<BridgeConfig, "username" | "password" | "tls" | "topics">> {
  /** User name at the remote. */
  username?: string;
  /** Password at the remote. */
  password?: string;
  /** TLS settings. */
  tls?: BridgeTls;
  /** The parsed rules. */
  topics: BridgeTopic[];
  /** The parsed address. */
  url: URL;
}

/** A bad bridge setting; `key` names it (for example `topics[1]` or `address`). */
export class BridgeConfigError extends TypeError {
  /** The setting, as the config file spells it (`topics[1]`, `protocol_version`, ...). */
  readonly key: string;

  /**
   * Creates the error.
   *
   * @param key The setting.
   * @param message What is wrong.
   */
  constructor(key: string, message: string) {
    super(message);
    this.name = "BridgeConfigError";
    this.key = key;
  }
}

const DIRECTIONS: readonly string[] = ["out", "in", "both"];
const SCHEMES: readonly string[] = ["mqtt:", "mqtts:", "ws:", "wss:", "tcp:", "ssl:", "tls:"];

/**
 * Parses one `topic` rule.
 *
 * @param line `PATTERN [DIRECTION [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]`.
 * @returns The rule.
 * @throws {TypeError} When the rule cannot be used; the message quotes it.
 *
 * @example A rule with prefixes
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTopicRule } from "./rules.ts";
 * assert.deepEqual(parseTopicRule("s/# out 1 edge/ site1/"), {
 *   pattern: "s/#",
 *   direction: "out",
 *   qos: 1,
 *   localPrefix: "edge/",
 *   remotePrefix: "site1/",
 * });
 * ```
 */
export function parseTopicRule(line: string): BridgeTopic {
  const words = line.trim().split(/\s+/).map((w) => w === '""' ? "" : w);
  if (line.trim() === "" || words.length > 5 || words.length === 4) {
    throw new TypeError(
      `Topic rule "${line}" must read PATTERN [DIRECTION [QOS [LOCAL_PREFIX REMOTE_PREFIX]]]`,
    );
  }
  const [pattern, direction = "out", qos = "0", localPrefix = "", remotePrefix = ""] = words;
  if (!DIRECTIONS.includes(direction)) {
    throw new TypeError(`Topic rule "${line}": direction must be out, in or both, got "${direction}"`);
  }
  if (!/^[012]$/.test(qos)) throw new TypeError(`Topic rule "${line}": QoS must be 0, 1 or 2, got "${qos}"`);
  return checkTopicRule(
    { pattern, direction: direction as BridgeDirection, qos: Number(qos) as QoS, localPrefix, remotePrefix },
    line,
  );
}

/** Checks a rule's filters and prefixes. */
function checkTopicRule(rule: BridgeTopic, shown: string): BridgeTopic {
  for (const prefix of [rule.localPrefix, rule.remotePrefix]) {
    if (/[#+]/.test(prefix)) throw new TypeError(`Topic rule "${shown}": prefix "${prefix}" has a wildcard`);
  }
  if (rule.pattern === "" && (rule.localPrefix === "" || rule.remotePrefix === "")) {
    throw new TypeError(`Topic rule "${shown}": an empty pattern needs both prefixes`);
  }
  for (const filter of [rule.localPrefix + rule.pattern, rule.remotePrefix + rule.pattern]) {
    if (!isValidTopicFilter(filter) || filter.startsWith("$share/")) {
      throw new TypeError(`Topic rule "${shown}": "${filter}" is not a valid topic filter`);
    }
  }
  return rule;
}

/**
 * Rewrites a topic from one side's prefix to the other's (`LOCAL_PREFIX` to `REMOTE_PREFIX` for
 * messages going out, the reverse coming in).
 *
 * @param topic The topic, which starts with `from`.
 * @param from The prefix to remove.
 * @param to The prefix to add.
 * @returns The rewritten topic.
 *
 * @example Out over `s/# out 1 edge/ site1/`
 * ```ts
 * import assert from "node:assert/strict";
 * import { rewriteTopic } from "./rules.ts";
 * assert.equal(rewriteTopic("edge/s/t1", "edge/", "site1/"), "site1/s/t1");
 * ```
 */
export function rewriteTopic(topic: string, from: string, to: string): string {
  if (from === to) return topic;
  return to + topic.slice(from.length);
}

/**
 * Validates a bridge's settings and applies the defaults.
 *
 * @param config The settings.
 * @returns The settings to run with.
 * @throws {BridgeConfigError} Naming the bad setting (snake_case, as in the config file).
 *
 * @example Defaults
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveBridgeConfig } from "./rules.ts";
 * const config = resolveBridgeConfig({ id: "cloud", address: "mqtt://127.0.0.1:1883", topics: ["a/# both 1"] });
 * assert.equal(config.protocolVersion, 5);
 * assert.equal(config.maxInflight, 20);
 * assert.equal(config.topics[0].direction, "both");
 * ```
 */
export function resolveBridgeConfig(config: BridgeConfig): ResolvedBridgeConfig {
  if (typeof config.id !== "string" || config.id === "" || /[/#+\s]/.test(config.id)) {
    throw new BridgeConfigError("id", `Bridge id must be a non-empty word without / # + or spaces`);
  }
  let url: URL;
  try {
    url = new URL(config.address);
  } catch {
    throw new BridgeConfigError(
      "address",
      `Bridge address "${config.address}" is not a URL like mqtt://host:1883`,
    );
  }
  if (!SCHEMES.includes(url.protocol) || url.hostname === "") {
    throw new BridgeConfigError(
      "address",
      `Bridge address "${config.address}" must be mqtt://, mqtts://, ws:// or wss:// with a host`,
    );
  }
  const version = config.protocolVersion ?? 5;
  if (version !== 3 && version !== 4 && version !== 5) {
    throw new BridgeConfigError("protocol_version", `must be 3, 4 or 5, got ${version}`);
  }
  const integer = (key: string, value: number | undefined, fallback: number, min: number, max: number) => {
    const v = value ?? fallback;
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new BridgeConfigError(key, `must be an integer from ${min} to ${max}, got ${v}`);
    }
    return v;
  };
  const seconds = (key: string, value: number | undefined, fallback: number) => {
    const v = value ?? fallback;
    if (typeof v !== "number" || !(v > 0) || v > 3600) {
      throw new BridgeConfigError(key, `must be a number of seconds above 0 and at most 3600, got ${v}`);
    }
    return v;
  };
  if (config.password !== undefined && config.username === undefined && version !== 5) {
    throw new BridgeConfigError("password", "needs a username before MQTT 5");
  }
  if ((config.tls?.cert === undefined) !== (config.tls?.key === undefined)) {
    throw new BridgeConfigError(
      config.tls?.cert === undefined ? "tls_cert_file" : "tls_key_file",
      "needs both tls_cert_file and tls_key_file",
    );
  }
  if (!Array.isArray(config.topics) || config.topics.length === 0) {
    throw new BridgeConfigError("topics", "needs at least one rule");
  }
  const topics = config.topics.map((rule, i) => {
    try {
      return typeof rule === "string"
        ? parseTopicRule(rule)
        : checkTopicRule({ ...rule }, `${rule.pattern} ${rule.direction} ${rule.qos}`);
    } catch (error) {
      throw new BridgeConfigError(`topics[${i}]`, (error as Error).message);
    }
  });
  const reconnectDelayMin = seconds("reconnect_delay_min", config.reconnectDelayMin, 0.5);
  const reconnectDelayMax = seconds("reconnect_delay_max", config.reconnectDelayMax, 10);
  if (reconnectDelayMax < reconnectDelayMin) {
    throw new BridgeConfigError("reconnect_delay_max", "must not be below reconnect_delay_min");
  }
  const clientId = config.clientId ?? `bridge-${config.id}`;
  if (clientId === "" && version === 3) {
    throw new BridgeConfigError("client_id", "must not be empty for MQTT 3.1");
  }
  return {
    id: config.id,
    address: config.address,
    url,
    protocolVersion: version,
    clientId,
    username: config.username,
    password: config.password,
    cleanStart: config.cleanStart ?? false,
    sessionExpiry: integer("session_expiry", config.sessionExpiry, 0, 0, 0xffffffff),
    keepAlive: integer("keep_alive", config.keepAlive, 60, 0, 65535),
    tls: config.tls,
    topics,
    maxInflight: integer("max_inflight", config.maxInflight, 20, 1, 65535),
    queueMaxMessages: integer("queue_max_messages", config.queueMaxMessages, 10_000, 1, 1e9),
    queueMaxBytes: integer("queue_max_bytes", config.queueMaxBytes, 64 * 1024 * 1024, 1024, 2 ** 40),
    reconnectDelayMin,
    reconnectDelayMax,
    connectTimeout: seconds("connect_timeout", config.connectTimeout, 10),
  };
}

/**
 * The next reconnect delay: exponential from `min`, capped at `max`, with full jitter over its upper
 * half so that many bridges do not reconnect in step.
 *
 * @param attempt Failed attempts so far (0 for the first retry).
 * @param min The first delay in seconds.
 * @param max The cap in seconds.
 * @param random A number in [0, 1) (default `Math.random()`).
 * @returns The delay in milliseconds.
 *
 * @example Capped
 * ```ts
 * import assert from "node:assert/strict";
 * import { reconnectDelay } from "./rules.ts";
 * assert.equal(reconnectDelay(0, 0.5, 10, 0.999999), 500);
 * assert.equal(reconnectDelay(20, 0.5, 10, 0), 5000);
 * ```
 */
export function reconnectDelay(
  attempt: number,
  min: number,
  max: number,
  random: number = Math.random(),
): number {
  const ceiling = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.round((ceiling / 2 + (ceiling / 2) * random) * 1000);
}

/**
 * Whether a topic name matches a topic filter (`+` one level, `#` the rest; wildcards never match
 * a leading `$`).
 *
 * @param filter The filter.
 * @param topic The topic name.
 * @returns True on a match.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { topicMatches } from "./rules.ts";
 * assert.equal(topicMatches("a/+/c", "a/b/c"), true);
 * assert.equal(topicMatches("#", "$SYS/x"), false);
 * ```
 */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith("$") && (filter.startsWith("#") || filter.startsWith("+"))) return false;
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}

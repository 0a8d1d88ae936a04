/**
 * The `bridges:` section of the configuration file: each entry's keys (Mosquitto's names where it has
 * them), read into a {@linkcode BridgeConfig} with its TLS files, and checked by the bridge's own rules
 * so that a bad topic rule names its line.
 *
 * @module
 */

import { isSeq, type Node } from "yaml";
import { stripUndefined } from "../options.ts";
import { type BridgeConfig, BridgeConfigError, resolveBridgeConfig } from "../../hooks/bridge/rules.ts";
import { bool, type Check, int, type Raw, seconds, str, type Walker } from "./config_schema.ts";

/** A `bridges:` entry; the keys are Mosquitto's where it has them. */
export const BRIDGE: Check = {
  kind: "map",
  required: ["id", "address", "topics"],
  fields: {
    id: str,
    address: str,
    protocol_version: int(3, 5),
    client_id: { kind: "string" },
    username: { kind: "string" },
    password: { kind: "string" },
    clean_start: bool,
    session_expiry: int(0, 0xffffffff),
    keep_alive: int(0, 65535),
    tls_ca_file: str,
    tls_cert_file: str,
    tls_key_file: str,
    topics: { kind: "strings" },
    max_inflight: int(1, 65535),
    queue_max_messages: int(1, 1e9),
    queue_max_bytes: int(1024, 2 ** 40),
    reconnect_delay_min: seconds,
    reconnect_delay_max: seconds,
    connect_timeout: seconds,
  },
};

/**
 * Reads the `bridges:` entries, refusing a duplicate id.
 *
 * @param walker Places errors in the file.
 * @param entries The entries, after the schema check.
 * @param at The YAML node of a value's key.
 * @param resolve Resolves a path relative to the config file.
 * @returns The bridges, in file order.
 */
export function bridgeSettings(
  walker: Walker,
  entries: Raw[],
  at: (obj: unknown, name: string) => Node | undefined,
  resolve: (path: string) => string,
): BridgeConfig[] {
  const bridges = entries.map((b, i) => bridgeEntry(walker, b, i, at, resolve));
  bridges.forEach((b, i) => {
    const first = bridges.findIndex((other) => other.id === b.id);
    if (first !== i) {
      throw walker.error(
        at(entries[i], "id"),
        `bridges[${i}].id`,
        `duplicate bridge id "${b.id}" (also bridges[${first}])`,
      );
    }
  });
  return bridges;
}

function bridgeEntry(
  walker: Walker,
  b: Raw,
  i: number,
  at: (obj: unknown, name: string) => Node | undefined,
  resolve: (path: string) => string,
): BridgeConfig {
  const key = `bridges[${i}]`;
  const pem = (name: string): string | undefined => {
    if (typeof b[name] !== "string") return undefined;
    const path = resolve(b[name] as string);
    try {
      return Deno.readTextFileSync(path);
    } catch {
      throw walker.error(at(b, name), `${key}.${name}`, `file "${path}" cannot be read`);
    }
  };
  const tls = { ca: pem("tls_ca_file"), cert: pem("tls_cert_file"), key: pem("tls_key_file") };
  const config: BridgeConfig = stripUndefined({
    id: b.id as string,
    address: b.address as string,
    protocolVersion: b.protocol_version as 3 | 4 | 5 | undefined,
    clientId: b.client_id as string | undefined,
    username: b.username as string | undefined,
    password: b.password as string | undefined,
    cleanStart: b.clean_start as boolean | undefined,
    sessionExpiry: b.session_expiry as number | undefined,
    keepAlive: b.keep_alive as number | undefined,
    tls: tls.ca || tls.cert || tls.key ? stripUndefined(tls) : undefined,
    topics: b.topics as string[],
    maxInflight: b.max_inflight as number | undefined,
    queueMaxMessages: b.queue_max_messages as number | undefined,
    queueMaxBytes: b.queue_max_bytes as number | undefined,
    reconnectDelayMin: b.reconnect_delay_min as number | undefined,
    reconnectDelayMax: b.reconnect_delay_max as number | undefined,
    connectTimeout: b.connect_timeout as number | undefined,
  });
  try {
    resolveBridgeConfig(config);
  } catch (error) {
    if (!(error instanceof BridgeConfigError)) throw error;
    const index = /^topics\[(\d+)\]$/.exec(error.key);
    const topics = at(b, "topics");
    const node = index && isSeq(topics)
      ? topics.items[Number(index[1])] as Node
      : at(b, error.key) ?? at(b, "id");
    throw walker.error(node, `${key}.${error.key}`, error.message);
  }
  return config;
}

/**
 * The configuration file: YAML, or strict JSON for a `.json` file, with a schema compatible with
 * Mochi's (`listeners`, `hooks`, `options`, `logging`) plus our own keys (`bridges`, ...). Mochi's file-based stores
 * (`hooks.storage.badger`, `pebble`, `bolt`) become the Deno KV store at the same path, with a
 * warning in {@linkcode BrokerConfig.warnings}.
 *
 * Relative file paths (TLS files, `ledger_file`, the KV store's `path`) are relative to the config
 * file's directory.
 *
 * Every unknown key, wrong type and bad value is a {@linkcode ConfigError} that names the file,
 * line, column and key, for example
 * `broker.yaml:12:7: options.capabilities.maximum_qos: must be an integer from 0 to 2, got 3`.
 *
 * @example Parsing a config
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseConfig } from "./config.ts";
 *
 * const config = parseConfig(`
 * listeners:
 *   - type: tcp
 *     id: t1
 *     address: ":1883"
 * hooks:
 *   auth:
 *     allow_all: true
 * options:
 *   capabilities:
 *     maximum_qos: 1
 * `, "broker.yaml");
 * assert.equal(config.listeners[0].id, "t1");
 * assert.equal(config.options.capabilities?.maximumQos, 1); // snake_case keys become camelCase
 * ```
 *
 * @module
 */

import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import type { LogLevel } from "@logtape/logtape";
import { defaultCapabilities, type Options, resolveOptions, stripUndefined } from "../options.ts";
import type { TlsConfig } from "../../listeners/net.ts";
import { type Ledger, LedgerError, validateLedger } from "../../hooks/auth/ledger.ts";
import type { DebugHookConfig } from "../../hooks/debug.ts";
import { jsonProblem } from "./strict_json.ts";
import { MOCHI_STORE_SCHEMAS, MOCHI_STORES, mochiStoreAsKv } from "./config_mochi.ts";
import type { BridgeConfig } from "../../hooks/bridge/rules.ts";
import { BRIDGE, bridgeSettings } from "./config_bridges.ts";
import {
  bool,
  camel,
  type Check,
  ConfigError,
  int,
  nodes,
  oneOf,
  type Raw,
  snake,
  str,
  Walker,
} from "./config_schema.ts";

export { ConfigError };

/** The listener types (Mochi's names). */
export const LISTENER_TYPES: readonly string[] = ["tcp", "ws", "unix", "sysinfo", "healthcheck", "metrics"];

/** A listener as declared in the file. */
export interface ListenerSettings {
  /** `tcp`, `ws`, `unix`, `sysinfo` (stats, dashboard, admin API, metrics), `healthcheck` or `metrics`. */
  type: "tcp" | "ws" | "unix" | "sysinfo" | "healthcheck" | "metrics";
  /** The listener id. */
  id: string;
  /** `host:port`, or the socket path for `unix`. */
  address: string;
  /** TLS settings, from `tls_cert_file`, `tls_key_file`, `tls_ca_file`, ... */
  tls?: TlsConfig;
  /** `max_connections`. */
  maxConnections?: number;
  /** `allow_anonymous`. */
  allowAnonymous?: boolean;
  /** `path` (ws). */
  path?: string;
  /** `allowed_origins` (ws). */
  allowedOrigins?: string[];
  /** `trusted_proxies` (ws). */
  trustedProxies?: string[];
  /** `http_username` and `http_password` (sysinfo, metrics): HTTP basic auth for the dashboard, admin API and metrics. */
  httpAuth?: { username: string; password: string };
}

/** Redis storage settings (`hooks.storage.redis`). */
export interface RedisSettings {
  /** `host:port` (default `localhost:6379`). */
  address: string;
  /** ACL user name. */
  username?: string;
  /** Password. */
  password?: string;
  /** Database number. */
  database: number;
  /** Key prefix (`prefix`, or Mochi's `h_prefix`). */
  prefix?: string;
}

/** The hooks declared in the file. */
export interface HookSettings {
  /** `hooks.auth`: `allow_all`, or a `ledger` (inline) or `ledger_file`. */
  auth?: { allowAll: boolean; ledger?: Ledger; ledgerFile?: string };
  /** `hooks.storage`: at most one of `kv` and `redis` (Mochi's `badger`, `pebble` and `bolt` become `kv`). */
  storage?: { kv?: { path: string }; redis?: RedisSettings };
  /** `hooks.debug`: enabled when present with `enable: true`. */
  debug?: DebugHookConfig & { enable: boolean };
}

/** A parsed, validated configuration file. */
export interface BrokerConfig {
  /** The file it came from. */
  file: string;
  /** Listeners, in file order. */
  listeners: ListenerSettings[];
  /** Hooks. */
  hooks: HookSettings;
  /** Server options (camelCased). */
  options: Options;
  /** `logging.level` and `logging.format`. */
  logging: { level?: LogLevel; format?: "text" | "json" };
  /**
   * What the loader changed or ignored, each naming the file, line and key, for example a Mochi
   * store replaced by Deno KV. The CLI logs them as warnings.
   */
  warnings: string[];
  /** `cluster`: join the cluster whose state is in this Redis, as this node (with `workers`: N processes). */
  cluster?: { redis: RedisSettings; nodeId?: string; workers?: number | "auto" };
  /** Bridges to other brokers (`bridges:`), in file order; TLS files already read. */
  bridges: BridgeConfig[];
}

// ------------------------------------------------------------------------------------------------
// The schema of the file (the machinery is in config_schema.ts).

const LOG_LEVELS = ["trace", "debug", "info", "warning", "warn", "error", "fatal"];

function capabilityFields(): Record<string, Check> {
  const { compatibilities, ...caps } = defaultCapabilities();
  const fields: Record<string, Check> = {};
  for (const key of Object.keys(caps)) fields[snake(key)] = int(0, Number.MAX_SAFE_INTEGER);
  const compat: Record<string, Check> = {};
  for (const key of Object.keys(compatibilities)) compat[snake(key)] = bool;
  fields.compatibilities = { kind: "map", fields: compat };
  return fields;
}

const LISTENER: Check = {
  kind: "map",
  required: ["type", "id", "address"],
  fields: {
    type: oneOf(...LISTENER_TYPES),
    id: str,
    address: str,
    tls_cert_file: str,
    tls_key_file: str,
    tls_ca_file: str,
    tls_engine: oneOf("deno", "node"),
    require_client_cert: bool,
    client_cert_as_username: bool,
    max_connections: int(0, Number.MAX_SAFE_INTEGER),
    allow_anonymous: bool,
    path: str,
    allowed_origins: { kind: "strings" },
    trusted_proxies: { kind: "strings" },
    http_username: str,
    http_password: str,
  },
};

function rootSchema(): Check {
  return {
    kind: "map",
    fields: {
      listeners: { kind: "list", item: LISTENER },
      bridges: { kind: "list", item: BRIDGE },
      hooks: {
        kind: "map",
        fields: {
          auth: { kind: "map", fields: { allow_all: bool, ledger: { kind: "any" }, ledger_file: str } },
          storage: {
            kind: "map",
            fields: {
              kv: { kind: "map", fields: { path: str }, required: ["path"] },
              redis: {
                kind: "map",
                fields: {
                  address: str,
                  username: { kind: "string" },
                  password: { kind: "string" },
                  database: int(0, 65535),
                  prefix: { kind: "string" },
                  h_prefix: { kind: "string" },
                },
              },
              // Mochi's file-based stores, replaced by Deno KV at the same path (with a warning).
              ...MOCHI_STORE_SCHEMAS,
            },
          },
          debug: {
            kind: "map",
            fields: { enable: bool, show_packet_data: bool, show_pings: bool, show_passwords: bool },
          },
        },
      },
      options: {
        kind: "map",
        fields: {
          capabilities: { kind: "map", fields: capabilityFields() },
          client_net_write_buffer_size: int(0, 1 << 30),
          client_net_read_buffer_size: int(1, 1 << 30),
          sys_topic_resend_interval: int(0, 86400),
          inline_client: bool,
          durability: oneOf("sync", "async"),
        },
      },
      logging: {
        kind: "map",
        fields: { level: { kind: "string", values: LOG_LEVELS }, format: oneOf("text", "json") },
      },
      cluster: {
        kind: "map",
        fields: {
          redis: {
            kind: "map",
            fields: {
              address: str,
              username: { kind: "string" },
              password: { kind: "string" },
              database: int(0, 65535),
              prefix: { kind: "string" },
            },
            required: ["address"],
          },
          node_id: str,
          workers: { kind: "any" },
        },
        required: ["redis"],
      },
    },
  };
}

// ------------------------------------------------------------------------------------------------
// Parsing

/**
 * Parses and validates configuration text.
 *
 * @param text YAML or JSON.
 * @param file The file name, used in error messages.
 * @returns The validated configuration.
 * @throws {ConfigError} On a syntax error, an unknown key, a wrong type or a bad value.
 */
export function parseConfig(text: string, file = "config"): BrokerConfig {
  const slash = file.lastIndexOf("/");
  const base = slash < 0 ? "" : file.slice(0, slash + 1);
  const resolve = (path: string) => path.startsWith("/") ? path : base + path;
  const json = /\.json$/i.test(file) ? jsonProblem(text) : undefined;
  if (json) throw new ConfigError(file, json.line, json.column, "", `not valid JSON: ${json.problem}`);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const walker = new Walker(file, lines);
  if (doc.errors.length > 0) {
    const error = doc.errors[0];
    const { line, col } = lines.linePos(error.pos[0]);
    throw new ConfigError(file, line, col, "", `syntax error: ${error.message.split("\n")[0]}`);
  }
  const contents = doc.contents as Node | null;
  if (contents === null || (isScalar(contents) && contents.value === null)) {
    throw new ConfigError(file, 1, 1, "", "the file is empty");
  }
  const raw = walker.value(contents, rootSchema(), "") as Raw;
  const at = (obj: unknown, name: string) => nodes.get(obj as object)?.[name];

  const listeners = ((raw.listeners ?? []) as Raw[]).map((l, i) =>
    listenerSettings(walker, l, i, at, resolve)
  );
  const seen = new Map<string, number>();
  listeners.forEach((l, i) => {
    const first = seen.get(l.id);
    if (first !== undefined) {
      throw walker.error(
        at((raw.listeners as Raw[])[i], "id"),
        `listeners[${i}].id`,
        `duplicate listener id "${l.id}" (also listeners[${first}])`,
      );
    }
    seen.set(l.id, i);
  });

  const warnings: string[] = [];
  const hooks = hookSettings(walker, (raw.hooks ?? {}) as Raw, at, resolve, warnings);
  const options = optionSettings(walker, (raw.options ?? {}) as Raw, at);
  const bridges = bridgeSettings(walker, (raw.bridges ?? []) as Raw[], at, resolve);
  if (bridges.length > 0) {
    // A bridge moves messages through the server's inline client.
    if (options.inlineClient === false) {
      throw walker.error(
        at(raw.options, "inline_client"),
        "options.inline_client",
        "must be true when bridges are configured",
      );
    }
    options.inlineClient = true;
  }
  const logging = (raw.logging ?? {}) as Raw;
  const level = logging.level as string | undefined;
  const cluster = raw.cluster as Raw | undefined;
  const redis = cluster?.redis as Raw | undefined;
  const workers = cluster?.workers;
  if (
    workers !== undefined && workers !== "auto" && !(Number.isInteger(workers) && (workers as number) >= 1)
  ) {
    throw walker.error(at(cluster, "workers"), "cluster.workers", `must be a whole number from 1 or "auto"`);
  }
  return {
    cluster: cluster && redis
      ? {
        redis: stripUndefined({
          address: redis.address as string,
          username: redis.username as string | undefined,
          password: redis.password as string | undefined,
          database: (redis.database as number | undefined) ?? 0,
          prefix: redis.prefix as string | undefined,
        }) as RedisSettings,
        nodeId: cluster.node_id as string | undefined,
        ...(workers === undefined ? {} : { workers: workers as number | "auto" }),
      }
      : undefined,
    file,
    listeners,
    hooks,
    options,
    bridges,
    logging: {
      level: level === undefined ? undefined : (level === "warn" ? "warning" : level) as LogLevel,
      format: logging.format as "text" | "json" | undefined,
    },
    warnings,
  };
}

function listenerSettings(
  walker: Walker,
  l: Raw,
  i: number,
  at: (obj: unknown, name: string) => Node | undefined,
  resolve: (path: string) => string,
): ListenerSettings {
  const key = `listeners[${i}]`;
  const type = l.type as ListenerSettings["type"];
  const fail = (name: string, problem: string) => walker.error(at(l, name), `${key}.${name}`, problem);
  for (const name of ["allowed_origins", "trusted_proxies"]) {
    if (name in l && type !== "ws") throw fail(name, `only applies to ws listeners, not ${type}`);
  }
  if ("path" in l && type !== "ws" && type !== "metrics") {
    throw fail("path", `only applies to ws and metrics listeners`);
  }
  const http = type === "sysinfo" || type === "healthcheck" || type === "metrics";
  for (const name of ["max_connections", "allow_anonymous"]) {
    if (name in l && http) {
      throw fail(name, `does not apply to ${type} listeners (they accept no MQTT clients)`);
    }
  }
  for (const name of ["http_username", "http_password"]) {
    if (name in l && type !== "sysinfo" && type !== "metrics") {
      throw fail(name, `only applies to sysinfo and metrics listeners`);
    }
  }
  if (("http_username" in l) !== ("http_password" in l)) {
    throw fail(
      "http_username" in l ? "http_username" : "http_password",
      "needs both http_username and http_password",
    );
  }
  const tlsKeys = [
    "tls_cert_file",
    "tls_key_file",
    "tls_ca_file",
    "tls_engine",
    "require_client_cert",
    "client_cert_as_username",
  ];
  if (type === "unix") {
    for (const name of tlsKeys) if (name in l) throw fail(name, "does not apply to unix listeners");
  }
  let tls: TlsConfig | undefined;
  if (tlsKeys.some((name) => name in l)) {
    if (!l.tls_cert_file || !l.tls_key_file) {
      const missing = l.tls_cert_file ? "tls_key_file" : "tls_cert_file";
      throw walker.error(at(l, "id"), `${key}.${missing}`, `is required when any TLS key is set`);
    }
    if ((l.require_client_cert || l.client_cert_as_username) && !l.tls_ca_file) {
      const name = l.require_client_cert ? "require_client_cert" : "client_cert_as_username";
      throw fail(name, "needs tls_ca_file to verify client certificates");
    }
    if (type !== "tcp") {
      for (const name of ["tls_ca_file", "require_client_cert", "client_cert_as_username", "tls_engine"]) {
        if (name in l) {
          throw fail(name, `only applies to tcp listeners (Deno.serve cannot verify client certificates)`);
        }
      }
    }
    if (l.tls_engine === "deno" && l.tls_ca_file) {
      throw fail("tls_engine", `"deno" cannot verify client certificates`);
    }
    for (const name of ["tls_cert_file", "tls_key_file", "tls_ca_file"]) {
      if (typeof l[name] === "string") {
        l[name] = resolve(l[name] as string);
        try {
          Deno.statSync(l[name] as string);
        } catch {
          throw fail(name, `file "${l[name]}" cannot be read`);
        }
      }
    }
    tls = {
      cert: l.tls_cert_file as string,
      key: l.tls_key_file as string,
      ca: l.tls_ca_file as string | undefined,
      requireClientCert: l.require_client_cert as boolean | undefined,
      clientCertAsUsername: l.client_cert_as_username as boolean | undefined,
      engine: l.tls_engine as "deno" | "node" | undefined,
    };
  }
  if (typeof l.path === "string" && !l.path.startsWith("/")) {
    throw fail("path", `must start with "/", got "${l.path}"`);
  }
  if (type !== "unix" && !/^(\[[0-9a-fA-F:.]+\]|[^:]*):\d{1,5}$/.test(l.address as string)) {
    throw fail("address", `must be host:port or :port, got "${l.address}"`);
  }
  const port = Number((l.address as string).slice((l.address as string).lastIndexOf(":") + 1));
  if (type !== "unix" && port > 65535) {
    throw fail("address", `port ${port} is out of range (0 to 65535) in "${l.address}"`);
  }
  return stripUndefined({
    type,
    id: l.id as string,
    address: l.address as string,
    tls,
    maxConnections: l.max_connections as number | undefined,
    allowAnonymous: l.allow_anonymous as boolean | undefined,
    path: l.path as string | undefined,
    allowedOrigins: l.allowed_origins as string[] | undefined,
    trustedProxies: l.trusted_proxies as string[] | undefined,
    httpAuth: typeof l.http_username === "string"
      ? { username: l.http_username, password: l.http_password as string }
      : undefined,
  });
}

function hookSettings(
  walker: Walker,
  h: Raw,
  at: (obj: unknown, name: string) => Node | undefined,
  resolve: (path: string) => string,
  warnings: string[],
): HookSettings {
  const hooks: HookSettings = {};
  if (h.auth) {
    const a = h.auth as Raw;
    const sources = ["allow_all", "ledger", "ledger_file"].filter((k) => k in a && a[k] !== false);
    if (sources.length > 1) {
      throw walker.error(
        at(a, sources[1]),
        `hooks.auth.${sources[1]}`,
        `cannot be used together with ${sources[0]}`,
      );
    }
    if (sources.length === 0) {
      throw walker.error(at(h, "auth"), "hooks.auth", "needs allow_all: true, a ledger or a ledger_file");
    }
    let ledger: Ledger | undefined;
    if ("ledger" in a) {
      try {
        ledger = validateLedger(a.ledger, walker.file);
      } catch (error) {
        if (!(error instanceof LedgerError)) throw error;
        const problem = error.message.replace(/^.*?: /, "");
        const field = error.field ? `hooks.auth.ledger.${error.field}` : "hooks.auth.ledger";
        throw walker.error(ledgerNode(at(a, "ledger"), error.field), field, problem);
      }
    }
    hooks.auth = stripUndefined({
      allowAll: a.allow_all === true,
      ledger,
      ledgerFile: a.ledger_file === undefined ? undefined : resolve(a.ledger_file as string),
    });
  }
  if (h.storage) {
    const s = h.storage as Raw;
    const names = Object.keys(s);
    const mochi = names.filter((name) => MOCHI_STORES.includes(name));
    if (names.length > 1 && mochi.length === 0) {
      throw walker.error(
        at(s, names[1]),
        `hooks.storage.${names[1]}`,
        `only one storage hook may be set (also ${names[0]})`,
      );
    }
    // A Mochi file may list several stores (Mochi runs them all); we keep the first one.
    const ignored: string[] = [];
    for (const name of names.slice(1)) {
      ignored.push(walker.warning(
        at(s, name),
        `hooks.storage.${name}`,
        `ignored: only one storage hook runs, and ${names[0]} comes first`,
      ));
    }
    const storage: HookSettings["storage"] = {};
    const chosen = names[0];
    if (chosen === "kv") storage.kv = { path: resolve((s.kv as Raw).path as string) };
    if (MOCHI_STORES.includes(chosen)) {
      const { path, change } = mochiStoreAsKv(chosen, s[chosen] as Raw, resolve);
      warnings.push(walker.warning(at(s, chosen), `hooks.storage.${chosen}`, change));
      storage.kv = { path };
    }
    warnings.push(...ignored);
    if (chosen === "redis") {
      const r = s.redis as Raw;
      if ("prefix" in r && "h_prefix" in r) {
        throw walker.error(
          at(r, "h_prefix"),
          "hooks.storage.redis.h_prefix",
          "cannot be used together with prefix",
        );
      }
      storage.redis = stripUndefined({
        address: (r.address as string | undefined) ?? "localhost:6379",
        username: r.username as string | undefined,
        password: r.password as string | undefined,
        database: (r.database as number | undefined) ?? 0,
        prefix: (r.prefix ?? r.h_prefix) as string | undefined,
      });
    }
    hooks.storage = storage;
  }
  if (h.debug) {
    const d = h.debug as Raw;
    hooks.debug = stripUndefined({
      enable: d.enable === true,
      showPacketData: d.show_packet_data as boolean | undefined,
      showPings: d.show_pings as boolean | undefined,
      showPasswords: d.show_passwords as boolean | undefined,
    });
  }
  return hooks;
}

/** Finds the YAML node of a ledger field such as `acl[1].filters["a/#"]`, or the ledger itself. */
function ledgerNode(ledger: Node | undefined, field: string): Node | undefined {
  let node: Node | undefined = ledger;
  const parts = field.match(/[^.[\]"]+|\["[^"]*"\]|\[\d+\]/g) ?? [];
  for (const part of parts) {
    let next: unknown;
    if (/^\[\d+\]$/.test(part) && isSeq(node)) next = node.items[Number(part.slice(1, -1))];
    else if (isMap(node)) {
      const name = part.startsWith('["') ? part.slice(2, -2) : part;
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === name);
      next = pair?.value ?? pair?.key;
    }
    if (!next) break;
    node = next as Node;
  }
  return node;
}

function optionSettings(
  walker: Walker,
  o: Raw,
  at: (obj: unknown, name: string) => Node | undefined,
): Options {
  const options: Options = {};
  if (o.capabilities) {
    const raw = o.capabilities as Raw;
    const caps: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(raw)) {
      if (name === "compatibilities") continue;
      caps[camel(name)] = value;
    }
    if (raw.compatibilities) {
      const compat: Record<string, unknown> = {};
      for (const [name, value] of Object.entries(raw.compatibilities as Raw)) compat[camel(name)] = value;
      caps.compatibilities = compat;
    }
    options.capabilities = caps as Options["capabilities"];
  }
  if (o.sys_topic_resend_interval !== undefined) {
    options.sysTopicResendInterval = o.sys_topic_resend_interval as number;
  }
  if (o.inline_client !== undefined) options.inlineClient = o.inline_client as boolean;
  if (o.client_net_read_buffer_size !== undefined) {
    options.clientReadBufferSize = o.client_net_read_buffer_size as number;
  }
  if (o.durability !== undefined) options.durability = o.durability as "sync" | "async";
  // client_net_write_buffer_size is accepted for Mochi compatibility; the outbound buffer grows as needed.
  try {
    resolveOptions(options);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    const name = /Option "(\w+)"/.exec(error.message)?.[1] ?? "";
    const key = snake(name);
    const caps = o.capabilities as Raw | undefined;
    const inCaps = caps !== undefined && key in caps;
    const node = inCaps
      ? at(caps, key)
      : at(o, key === "client_read_buffer_size" ? "client_net_read_buffer_size" : key);
    const path = inCaps ? `options.capabilities.${key}` : `options.${key}`;
    throw walker.error(node ?? at(o, "capabilities"), path, error.message.replace(/^Option "\w+" /, ""));
  }
  return options;
}

/**
 * Reads and validates a configuration file (`.yaml`, `.yml` or `.json`).
 *
 * @param path The file.
 * @returns The validated configuration.
 * @throws {ConfigError} When the file cannot be read or is not valid.
 */
export async function loadConfig(path: string): Promise<BrokerConfig> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    const problem = error instanceof Deno.errors.NotFound
      ? "no such file"
      : error instanceof Deno.errors.IsADirectory
      ? "is a directory, not a file"
      : `cannot be read: ${error instanceof Error ? error.message : error}`;
    throw new ConfigError(path, 0, 0, "", problem);
  }
  return parseConfig(text, path);
}

/**
 * Building a broker from a parsed configuration: the listeners and hooks it declares, and
 * {@linkcode applyConfig}, which adds them to a server.
 *
 * @module
 */

import { Bridge } from "../../hooks/bridge/bridge.ts";
import type { Server } from "../server.ts";
import type { Hook } from "../hooks.ts";
import type { Listener } from "../listener.ts";
import { TCP } from "../../listeners/tcp.ts";
import { WebSocket } from "../../listeners/websocket.ts";
import { UnixSock } from "../../listeners/unix.ts";
import { HTTPHealthCheck } from "../../listeners/http_health.ts";
import { AllowHook } from "../../hooks/auth/allow_all.ts";
import { KVHook } from "../../hooks/storage/kv.ts";
import { AuthHook } from "../../hooks/auth/auth.ts";
import { DebugHook } from "../../hooks/debug.ts";
import { MetricsHook } from "../../hooks/metrics.ts";
import { HTTPStats } from "./http_stats.ts";
import { Metrics } from "./http_metrics.ts";
import type { BrokerConfig, RedisSettings } from "./config.ts";

/**
 * Creates the listeners a configuration declares (not yet added to a server).
 *
 * @param config The configuration.
 * @param server The server (HTTP stats read its `info`).
 * @param reusePort Bind every TCP port shared with other processes (`--workers`); a Unix listener
 *   cannot be shared (a TypeError says so).
 * @returns The listeners, in file order.
 */
export function createListeners(config: BrokerConfig, server: Server, reusePort = false): Listener[] {
  return config.listeners.map((l): Listener => {
    if (reusePort && l.type === "unix") {
      throw new TypeError(
        `Listener "${l.id}": a Unix socket cannot be shared by workers; remove it or the workers`,
      );
    }
    const common = reusePort ? { id: l.id, address: l.address, reusePort } : { id: l.id, address: l.address };
    const policy = { maxConnections: l.maxConnections, allowAnonymous: l.allowAnonymous };
    switch (l.type) {
      case "tcp":
        return new TCP({ ...common, ...policy, tls: l.tls });
      case "ws":
        return new WebSocket({
          ...common,
          ...policy,
          tls: l.tls,
          path: l.path,
          allowedOrigins: l.allowedOrigins,
          trustedProxies: l.trustedProxies,
        });
      case "unix":
        return new UnixSock({ ...common, ...policy });
      case "sysinfo":
        return new HTTPStats({ ...common, tls: l.tls, dashboard: l.httpAuth }, server.info, server);
      case "healthcheck":
        return new HTTPHealthCheck({ ...common, tls: l.tls });
      case "metrics":
        return new Metrics({ ...common, tls: l.tls, path: l.path, auth: l.httpAuth }, server);
    }
  });
}

/** A hook and the config passed to its `init`. */
export interface HookWithConfig {
  /** The hook. */
  hook: Hook;
  /** Its config. */
  config?: unknown;
}

/**
 * The storage hook a config names. The Redis hook is imported only when used, so that brokers
 * without Redis never load its client library.
 */
async function storageHook(
  kind: "kv" | "redis",
  settings: { path: string } | RedisSettings,
): Promise<HookWithConfig> {
  if (kind === "kv") return { hook: new KVHook(), config: settings };
  const { RedisHook } = await import("../../hooks/storage/redis.ts");
  return { hook: new RedisHook(), config: settings };
}

/**
 * Creates the hooks a configuration declares, in a fixed order: auth, storage, debug, and metrics
 * when a `sysinfo` or `metrics` listener will show them.
 *
 * @param config The configuration.
 * @returns The hooks and their configs.
 * @throws {Error} When a storage hook cannot be loaded.
 */
export async function createHooks(config: BrokerConfig): Promise<HookWithConfig[]> {
  const hooks: HookWithConfig[] = [];
  const { auth, storage, debug } = config.hooks;
  if (auth?.allowAll) hooks.push({ hook: new AllowHook() });
  else if (auth?.ledger) hooks.push({ hook: new AuthHook(), config: { ledger: auth.ledger } });
  else if (auth?.ledgerFile) hooks.push({ hook: new AuthHook(), config: { path: auth.ledgerFile } });
  if (storage?.kv) hooks.push(await storageHook("kv", storage.kv));
  if (storage?.redis) hooks.push(await storageHook("redis", storage.redis));
  if (debug?.enable) {
    const { enable: _, ...show } = debug;
    hooks.push({ hook: new DebugHook(), config: show });
  }
  if (config.listeners.some((l) => l.type === "sysinfo" || l.type === "metrics")) {
    hooks.push({ hook: new MetricsHook() });
  }
  return hooks;
}

/**
 * Adds a configuration's hooks and listeners to a server. If anything fails, the listeners already
 * bound are closed again.
 *
 * @param server A server created with `config.options`.
 * @param config The configuration.
 * @param reusePort Share every listener's port with other processes (`--workers`).
 */
export async function applyConfig(server: Server, config: BrokerConfig, reusePort = false): Promise<void> {
  const listeners = createListeners(config, server, reusePort);
  const hooks = await createHooks(config);
  for (const { hook, config: hookConfig } of hooks) await server.addHook(hook, hookConfig);
  for (const bridge of config.bridges ?? []) await server.addHook(new Bridge(server, bridge));
  const added: Listener[] = [];
  try {
    for (const listener of listeners) {
      await addListenerExplained(server, listener);
      added.push(listener);
    }
  } catch (error) {
    await Promise.all(added.map((l) => l.close()));
    throw error;
  }
}

/**
 * Adds a listener; when it cannot listen, the error names the listener and its address (Deno's
 * own says only `Address already in use (os error 98)`).
 *
 * @param server The server.
 * @param listener The listener.
 * @throws {Error} `Cannot listen on ADDRESS (listener ID): ...`, the original as its cause.
 */
export async function addListenerExplained(server: Server, listener: Listener): Promise<void> {
  try {
    await server.addListener(listener);
  } catch (error) {
    const reason = error instanceof Deno.errors.AddrInUse
      ? "the address is already in use (is another broker or program listening there?)"
      : error instanceof Deno.errors.PermissionDenied
      ? "permission denied (ports below 1024 need privileges)"
      : error instanceof Deno.errors.AddrNotAvailable
      ? "no interface of this machine has that address"
      : error instanceof Error
      ? error.message
      : String(error);
    throw new Error(`Cannot listen on ${listener.address} (listener ${listener.id}): ${reason}`, {
      cause: error,
    });
  }
}

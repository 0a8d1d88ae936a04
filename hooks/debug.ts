/**
 * A hook that logs every packet in and out, and connections, subscriptions and publishes, through
 * LogTape at debug level (category `["x-broker", "debug"]`). For development: add it only when
 * needed, since a hook that is not added costs nothing.
 *
 * @module
 */

import type { Hook } from "../src/hooks.ts";
import type { Client } from "../src/client.ts";
import { type Packet, PACKET_NAMES, PacketType, type Properties } from "../src/packets/types.ts";
import { logger } from "../src/logger.ts";

/** What the {@linkcode DebugHook} shows; everything is off by default. */
export interface DebugHookConfig {
  /** Log every decoded field of each packet (payloads as text when UTF-8, else hex; truncated). */
  showPacketData?: boolean;
  /** Log PINGREQ and PINGRESP too. */
  showPings?: boolean;
  /** Show CONNECT passwords and authentication data instead of `******`. */
  showPasswords?: boolean;
}

const log = logger("debug");
const CONFIG_KEYS = ["showPacketData", "showPings", "showPasswords"];
/** Binary values longer than this are cut (in bytes). */
const MAX_SHOWN_BYTES = 256;
/** The stand-in for a hidden password. */
export const MASKED = "******";

/**
 * Formats bytes for a log line: as text when they are printable UTF-8, else as `0x` hex; cut
 * after 256 bytes with the full length appended.
 *
 * @param bytes The bytes.
 * @returns A printable string.
 *
 * @example Text and binary
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatBytes } from "./debug.ts";
 *
 * assert.equal(formatBytes(new TextEncoder().encode("hello")), "hello");
 * assert.equal(formatBytes(new Uint8Array([0, 255])), "0x00ff"); // not printable: hex
 * ```
 */
export function formatBytes(bytes: Uint8Array): string {
  const shown = bytes.length > MAX_SHOWN_BYTES ? bytes.subarray(0, MAX_SHOWN_BYTES) : bytes;
  const suffix = shown.length < bytes.length ? `… (${bytes.length} bytes)` : "";
  try {
    // stream: a character cut at the limit is not an error.
    const text = new TextDecoder("utf-8", { fatal: true }).decode(shown, { stream: shown !== bytes });
    // deno-lint-ignore no-control-regex
    if (!/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(text)) return text + suffix;
  } catch {
    // not UTF-8: hex below
  }
  let hex = "0x";
  for (const byte of shown) hex += byte.toString(16).padStart(2, "0");
  return hex + suffix;
}

/**
 * Logs packets and client events at debug level.
 *
 * @example Logging what the server does
 * ```ts
 * import assert from "node:assert/strict";
 * import { configure, type LogRecord, reset } from "@logtape/logtape";
 * import { DebugHook } from "./debug.ts";
 * import { AllowHook } from "./auth/allow_all.ts";
 * import { Server } from "../src/server.ts";
 *
 * // In a program the sink is usually LogTape's getConsoleSink(); here the records go to an array.
 * const records: LogRecord[] = [];
 * await configure({
 *   sinks: { memory: (record) => void records.push(record) },
 *   loggers: [
 *     { category: ["x-broker", "debug"], lowestLevel: "debug", sinks: ["memory"] },
 *     { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["memory"] },
 *   ],
 *   reset: true,
 * });
 * const server = new Server();
 * await server.addHook(new AllowHook());
 * await server.addHook(new DebugHook(), { showPacketData: true });
 * await server.serve();
 * await server.close();
 * assert.deepEqual(records.map((record) => record.rawMessage), ["Server started", "Server stopped"]);
 * await reset();
 * ```
 */
export class DebugHook implements Hook {
  /** The hook id. */
  readonly id: string = "debug";
  #showPacketData = false;
  #showPings = false;
  #showPasswords = false;

  /**
   * Applies the config.
   *
   * @param config What to show; see {@linkcode DebugHookConfig}.
   * @throws {TypeError} On an unknown key or a value that is not a boolean.
   */
  init(config?: unknown): void {
    if (config === undefined || config === null) return;
    if (typeof config !== "object") {
      throw new TypeError(`The DebugHook config must be an object, got ${config}`);
    }
    for (const [key, value] of Object.entries(config)) {
      if (!CONFIG_KEYS.includes(key)) {
        throw new TypeError(`Unknown DebugHook config key "${key}" (expected ${CONFIG_KEYS.join(", ")})`);
      }
      if (value !== undefined && typeof value !== "boolean") {
        throw new TypeError(
          `The DebugHook config "${key}" must be true or false, got ${JSON.stringify(value)}`,
        );
      }
    }
    const c = config as DebugHookConfig;
    this.#showPacketData = c.showPacketData ?? false;
    this.#showPings = c.showPings ?? false;
    this.#showPasswords = c.showPasswords ?? false;
  }

  /** Logs that the server started. */
  onStarted(): void {
    log.debug("Server started");
  }

  /** Logs that the server stopped. */
  onStopped(): void {
    log.debug("Server stopped");
  }

  /**
   * Logs a packet read from a client.
   *
   * @param client The client.
   * @param packet The packet.
   * @returns The packet, unchanged.
   */
  onPacketRead(client: Client, packet: Packet): Packet {
    this.#logPacket(client, packet, "in", undefined);
    return packet;
  }

  /**
   * Logs a packet sent to a client.
   *
   * @param client The client.
   * @param packet The packet.
   * @param bytes Its encoded bytes.
   */
  onPacketSent(client: Client, packet: Packet, bytes: Uint8Array): void {
    this.#logPacket(client, packet, "out", bytes.length);
  }

  /**
   * Logs a CONNECT about to be accepted.
   *
   * @param client The client.
   * @param packet Its CONNECT.
   */
  onConnect(client: Client, packet: Packet): void {
    if (!log.isEnabledFor("debug")) return;
    log.debug("Client {client} connecting from {remote} on {listener} (user {username}, version {version})", {
      client: client.id,
      remote: client.net.remote,
      listener: client.net.listener,
      username: client.properties.username,
      version: packet.connect?.protocolVersion,
    });
  }

  /**
   * Logs a disconnection.
   *
   * @param client The client.
   * @param error Why, if not a normal DISCONNECT.
   * @param expire Whether the session ends now.
   */
  onDisconnect(client: Client, error: Error | undefined, expire: boolean): void {
    if (!log.isEnabledFor("debug")) return;
    log.debug("Client {client} disconnected ({reason}); session {session}", {
      client: client.id,
      reason: error?.message ?? "normal",
      session: expire ? "ended" : "kept",
    });
  }

  /**
   * Logs the outcome of a SUBSCRIBE.
   *
   * @param client The client.
   * @param packet The SUBSCRIBE.
   * @param reasonCodes The reason codes sent in SUBACK.
   */
  onSubscribed(client: Client, packet: Packet, reasonCodes: number[]): void {
    if (!log.isEnabledFor("debug")) return;
    log.debug("Client {client} subscribed to {filters} with reason codes {reasonCodes}", {
      client: client.id,
      filters: (packet.filters ?? []).map((f) => f.filter),
      reasonCodes,
    });
  }

  /**
   * Logs an accepted PUBLISH.
   *
   * @param client The publisher.
   * @param packet The PUBLISH.
   * @returns The packet, unchanged.
   */
  onPublish(client: Client, packet: Packet): Packet {
    if (!log.isEnabledFor("debug")) return packet;
    log.debug("Client {client} published {size} bytes to {topic} (QoS {qos}, retain {retain})", {
      client: client.id,
      topic: packet.topicName,
      size: packet.payload?.length ?? 0,
      qos: packet.fixedHeader.qos ?? 0,
      retain: packet.fixedHeader.retain ?? false,
    });
    return packet;
  }

  #logPacket(client: Client, packet: Packet, direction: "in" | "out", size: number | undefined): void {
    const type = packet.fixedHeader.type;
    if ((type === PacketType.Pingreq || type === PacketType.Pingresp) && !this.#showPings) return;
    if (!log.isEnabledFor("debug")) return;
    // Before CONNECT is accepted the client has no id yet: use the one it asked for.
    const id = client.id || packet.connect?.clientId || "";
    const properties: Record<string, unknown> = {
      client: id,
      direction,
      type: PACKET_NAMES[type] ?? String(type),
      ...this.#summary(packet),
    };
    if (size !== undefined) properties.size = size;
    if (this.#showPacketData) properties.packet = this.#packetData(packet);
    log.debug(direction === "in" ? "{type} in from {client}" : "{type} out to {client}", properties);
  }

  /** The few fields shown for every packet. */
  #summary(packet: Packet): Record<string, unknown> {
    const s: Record<string, unknown> = {};
    if (packet.packetId !== undefined) s.packetId = packet.packetId;
    if (packet.reasonCode !== undefined) s.reasonCode = packet.reasonCode;
    if (packet.reasonCodes !== undefined) s.reasonCodes = packet.reasonCodes;
    if (packet.topicName !== undefined) {
      s.topic = packet.topicName;
      s.qos = packet.fixedHeader.qos ?? 0;
    }
    if (packet.filters !== undefined) s.filters = packet.filters.map((f) => f.filter);
    const c = packet.connect;
    if (c !== undefined) {
      s.username = c.username;
      s.version = c.protocolVersion;
      s.clean = c.clean;
      s.keepAlive = c.keepAlive;
      if (this.#showPasswords && c.password !== undefined) s.password = formatBytes(c.password);
    }
    return s;
  }

  /** Every decoded field, with bytes as text or hex and secrets masked. */
  #packetData(packet: Packet): Record<string, unknown> {
    const data: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(packet)) {
      if (value === undefined) continue;
      if (key === "payload") data.payload = formatBytes(value as Uint8Array);
      else if (key === "properties") data.properties = this.#properties(value as Properties);
      else if (key === "connect") {
        const connect: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(value as object)) {
          if (v === undefined) continue;
          if (k === "password") connect.password = this.#showPasswords ? formatBytes(v) : MASKED;
          else if (k === "willPayload") connect.willPayload = formatBytes(v);
          else if (k === "willProperties") connect.willProperties = this.#properties(v);
          else connect[k] = v;
        }
        data.connect = connect;
      } else data[key] = value;
    }
    return data;
  }

  #properties(properties: Properties): Record<string, unknown> {
    const shown: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(properties)) {
      if (value === undefined) continue;
      if (key === "authenticationData") shown[key] = this.#showPasswords ? formatBytes(value) : MASKED;
      else shown[key] = value instanceof Uint8Array ? formatBytes(value) : value;
    }
    return shown;
  }
}

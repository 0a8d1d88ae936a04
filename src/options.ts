/**
 * Server options, capabilities and compatibility switches, with Mochi's defaults (camelCased).
 *
 * @module
 */

/** The session expiry interval that means "never expires" (MQTT 5, 3.1.2.11.2). */
export const NEVER_EXPIRES = 0xffffffff;

/** Compatibility switches for clients and test suites that expect non-standard behaviour. */
export interface Compatibilities {
  /** Answer authorization failures with 0x80 Unspecified Error instead of 0x87 Not Authorized. */
  obscureNotAuthorized: boolean;
  /** After sending a server DISCONNECT, wait for the client to close instead of closing at once. */
  passiveClientDisconnect: boolean;
  /** Always return Response Information in CONNACK, even if not requested. */
  alwaysReturnResponseInfo: boolean;
  /** Restore $SYS counters from storage on start, as if the server never stopped. */
  restoreSysInfoOnRestart: boolean;
  /** Don't copy a PUBLISH's user properties onto its acknowledgements. */
  noInheritedPropertiesOnAck: boolean;
  /**
   * Answer a v5 QoS 1/2 PUBLISH that matched no subscription with PUBACK/PUBREC 0x10 No Matching
   * Subscribers instead of 0x00 (on by default, as Mosquitto 2.1 and EMQX do; turn it off for
   * clients that take any non-zero code for a failure). Not in a cluster, where the node that
   * acknowledges does not know other nodes' matches.
   */
  ackNoMatchingSubscribers: boolean;
}

/** What the server supports and enforces; CONNACK advertises exactly these. */
export interface Capabilities {
  /** Maximum number of connected clients. */
  maximumClients: number;
  /** Seconds: cap for a message's expiry interval, and the expiry given to messages without one. */
  maximumMessageExpiryInterval: number;
  /** Maximum number of outbound messages queued for a client before QoS 0 messages are dropped. */
  maximumClientWritesPending: number;
  /** Maximum seconds a disconnected session is kept. */
  maximumSessionExpiryInterval: number;
  /** Largest packet accepted from clients, in bytes (default 1 MiB, advertised); 0 means the protocol maximum. */
  maximumPacketSize: number;
  /** Receive Maximum: QoS 1/2 publishes a client may have unacknowledged towards the server. */
  receiveMaximum: number;
  /** Maximum QoS 1/2 messages kept per session: in flight plus queued (offline or over quota), 1-65535. */
  maximumInflight: number;
  /** Maximum bytes (payloads and topics) of the QoS 1/2 messages kept per session. */
  maximumSessionBytes: number;
  /** Highest inbound topic alias accepted from a client (0 disables aliases). */
  topicAliasMaximum: number;
  /** 1 if shared subscriptions are available. */
  sharedSubAvailable: number;
  /** The lowest protocol level accepted: 3 (MQTT 3.1), 4 (3.1.1) or 5. */
  minimumProtocolVersion: number;
  /** Maximum QoS accepted from publishers (0, 1 or 2). */
  maximumQos: number;
  /** 1 if retained messages are available. */
  retainAvailable: number;
  /** 1 if wildcard subscriptions are available. */
  wildcardSubAvailable: number;
  /** 1 if subscription identifiers are available. */
  subIdAvailable: number;
  /** Maximum keep alive in seconds; a v5 client asking for more (or 0) gets Server Keep Alive. 0: no limit. */
  maximumKeepAlive: number;
  /** Seconds a connection may stay open without sending CONNECT (slow or silent connections). */
  connectTimeout: number;
  /** Longest client id accepted, in characters; longer ones get CONNACK 0x85. */
  maximumClientIdLength: number;
  /** Longest topic name or filter accepted, in characters (the protocol allows 65535 bytes). */
  maximumTopicLength: number;
  /** Most levels a topic name or filter may have. */
  maximumTopicLevels: number;
  /** Most subscriptions one client may hold; more get SUBACK 0x97. 0: no limit. */
  maximumSubscriptionsPerClient: number;
  /** Bytes waiting in one client's socket buffer before QoS 0 messages to it are dropped. */
  maximumClientWriteBytes: number;
  /** Seconds a client may leave queued bytes unread before it is disconnected (slow consumers). */
  writeTimeout: number;
  /** New connections accepted per second from one IP address; more get CONNACK 0x9F. 0: no limit. */
  maximumConnectionRatePerIp: number;
  /** Process memory (RSS, bytes) above which new connections get CONNACK 0x89; 0: 90% of system memory. */
  maximumMemory: number;
  /** Compatibility switches. */
  compatibilities: Compatibilities;
}

/** Options for a {@linkcode Server}; everything is optional. */
export interface Options {
  /** Capabilities; missing fields take the defaults. */
  capabilities?: Partial<Omit<Capabilities, "compatibilities">> & {
    compatibilities?: Partial<Compatibilities>;
  };
  /** Seconds between $SYS topic publishes (default 1). */
  sysTopicResendInterval?: number;
  /** Enable the inline client (`server.publish`, `server.subscribe`). */
  inlineClient?: boolean;
  /** Size of each connection's read buffer in bytes (default 16 KiB). */
  clientReadBufferSize?: number;
  /**
   * With a storage hook: `"sync"` (default) acknowledges QoS 1/2 publishes, subscriptions and
   * unsubscriptions only after the storage write that holds them is durable; `"async"` acknowledges
   * at once (faster, but a crash can lose what was acknowledged since the last write).
   */
  durability?: "sync" | "async";
}

/** Options after defaults are applied. */
export interface ResolvedOptions {
  /** Capabilities with defaults applied. */
  capabilities: Capabilities;
  /** Seconds between $SYS publishes. */
  sysTopicResendInterval: number;
  /** Whether the inline client is enabled. */
  inlineClient: boolean;
  /** Read buffer size in bytes. */
  clientReadBufferSize: number;
  /** When acknowledgements wait for storage. */
  durability: "sync" | "async";
}

/**
 * The default capabilities (Mochi's, plus our own limits).
 *
 * @returns A fresh object that the caller may change.
 */
export function defaultCapabilities(): Capabilities {
  return {
    maximumClients: Number.MAX_SAFE_INTEGER,
    maximumMessageExpiryInterval: 60 * 60 * 24,
    maximumClientWritesPending: 1024 * 8,
    maximumSessionExpiryInterval: NEVER_EXPIRES,
    maximumPacketSize: 1024 * 1024,
    receiveMaximum: 1024,
    maximumInflight: 1024 * 8,
    maximumSessionBytes: 64 * 1024 * 1024,
    topicAliasMaximum: 0xffff,
    sharedSubAvailable: 1,
    minimumProtocolVersion: 3,
    maximumQos: 2,
    retainAvailable: 1,
    wildcardSubAvailable: 1,
    subIdAvailable: 1,
    maximumKeepAlive: 0,
    connectTimeout: 10,
    maximumClientIdLength: 65535,
    maximumTopicLength: 65535,
    maximumTopicLevels: 128,
    maximumSubscriptionsPerClient: 8192,
    maximumClientWriteBytes: 8 * 1024 * 1024,
    writeTimeout: 30,
    maximumConnectionRatePerIp: 0,
    maximumMemory: 0,
    compatibilities: {
      obscureNotAuthorized: false,
      passiveClientDisconnect: false,
      alwaysReturnResponseInfo: false,
      restoreSysInfoOnRestart: false,
      noInheritedPropertiesOnAck: false,
      ackNoMatchingSubscribers: true,
    },
  };
}

/**
 * Applies defaults to user options and checks their ranges.
 *
 * @param options The user's options.
 * @returns The complete options.
 * @throws {RangeError} When a value is out of range.
 *
 * @example Defaults
 * ```ts
 * import assert from "node:assert/strict";
 * import { resolveOptions } from "./options.ts";
 *
 * const opts = resolveOptions({ capabilities: { receiveMaximum: 10 } });
 * assert.equal(opts.capabilities.receiveMaximum, 10); // given
 * assert.equal(opts.capabilities.maximumQos, 2); // the default
 * ```
 */
export function resolveOptions(options: Options = {}): ResolvedOptions {
  const base = defaultCapabilities();
  const { compatibilities, ...rest } = options.capabilities ?? {};
  const capabilities: Capabilities = {
    ...base,
    ...stripUndefined(rest),
    compatibilities: { ...base.compatibilities, ...stripUndefined(compatibilities ?? {}) },
  };
  checkRange("receiveMaximum", capabilities.receiveMaximum, 1, 0xffff);
  checkRange("maximumInflight", capabilities.maximumInflight, 1, 0xffff);
  checkRange("topicAliasMaximum", capabilities.topicAliasMaximum, 0, 0xffff);
  checkRange("maximumQos", capabilities.maximumQos, 0, 2);
  checkRange("minimumProtocolVersion", capabilities.minimumProtocolVersion, 3, 5);
  checkRange("maximumPacketSize", capabilities.maximumPacketSize, 0, 268435460);
  checkRange("maximumSessionExpiryInterval", capabilities.maximumSessionExpiryInterval, 0, NEVER_EXPIRES);
  checkRange("maximumKeepAlive", capabilities.maximumKeepAlive, 0, 0xffff);
  checkRange("connectTimeout", capabilities.connectTimeout, 1, 3600);
  checkRange("maximumClientIdLength", capabilities.maximumClientIdLength, 1, 65535);
  checkRange("maximumTopicLength", capabilities.maximumTopicLength, 1, 65535);
  checkRange("maximumTopicLevels", capabilities.maximumTopicLevels, 1, 65535);
  checkRange("writeTimeout", capabilities.writeTimeout, 1, 86400);
  if (capabilities.maximumMemory === 0) capabilities.maximumMemory = Math.floor(systemMemory() * 0.9);
  const sysTopicResendInterval = options.sysTopicResendInterval ?? 1;
  checkRange("sysTopicResendInterval", sysTopicResendInterval, 0, 86400);
  if (options.durability !== undefined && options.durability !== "sync" && options.durability !== "async") {
    throw new RangeError(`Option "durability" must be "sync" or "async", got "${options.durability}"`);
  }
  return {
    capabilities,
    sysTopicResendInterval,
    inlineClient: options.inlineClient ?? false,
    clientReadBufferSize: options.clientReadBufferSize ?? 16 * 1024,
    durability: options.durability ?? "sync",
  };
}

function systemMemory(): number {
  try {
    return Deno.systemMemoryInfo().total;
  } catch {
    return Number.MAX_SAFE_INTEGER; // no permission to ask: no guard
  }
}

/**
 * A copy of an object without its undefined values, so that spreading it over defaults keeps them.
 *
 * @param value An object.
 * @returns The copy.
 */
export function stripUndefined<T extends object>(value: T): T {
  const out = {} as T;
  for (const [key, v] of Object.entries(value)) {
    if (v !== undefined) (out as Record<string, unknown>)[key] = v;
  }
  return out;
}

function checkRange(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`Option "${name}" must be an integer from ${min} to ${max}, got ${value}`);
  }
}

/**
 * The reason code to tell a client: with `obscureNotAuthorized` set, "not authorized" (0x87) is
 * reported as "unspecified error" (0x80), so a client cannot probe what exists.
 *
 * @param code The real reason code.
 * @param compatibilities The server's compatibility switches.
 * @returns The code to send.
 *
 * @example Obscured and plain
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultCapabilities, obscureNotAuthorized } from "./options.ts";
 * const compatibilities = { ...defaultCapabilities().compatibilities, obscureNotAuthorized: true };
 * assert.equal(obscureNotAuthorized(0x87, compatibilities), 0x80);
 * assert.equal(obscureNotAuthorized(0x97, compatibilities), 0x97);
 * ```
 */
export function obscureNotAuthorized(code: number, compatibilities: Compatibilities): number {
  return code === 0x87 && compatibilities.obscureNotAuthorized ? 0x80 : code;
}

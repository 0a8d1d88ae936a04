/**
 * Helpers shared by the network listeners: per-listener limits and policies, TLS settings and
 * address formatting.
 *
 * @module
 */

import { logger } from "../src/logger.ts";

const log = logger("listeners");

/** TLS settings for a listener. Each of `cert`, `key` and `ca` is a file path or PEM text. */
export interface TlsConfig {
  /** The server certificate chain (PEM text or a file path). */
  cert: string;
  /** The server private key (PEM text or a file path). */
  key: string;
  /** CA certificates that client certificates must chain to (PEM text or a file path). */
  ca?: string;
  /** Refuse clients that do not present a certificate signed by `ca` (mutual TLS). */
  requireClientCert?: boolean;
  /** Use the Common Name of a verified client certificate as the client's username. */
  clientCertAsUsername?: boolean;
  /**
   * Which TLS implementation a TCP listener uses. `"node"` (the default): Deno's `node:tls`, with
   * no-delay sockets (small MQTT packets go out at once) and client certificates. `"deno"`:
   * `Deno.listenTls`, faster for bulk data (about 3x here), but its connections cannot turn
   * Nagle's algorithm off, so a small write that follows another within a round trip may wait for
   * the peer's delayed ACK (measured: about 45 ms per exchange), and it cannot take `ca`.
   */
  engine?: "deno" | "node";
}

/**
 * Whether this process may share listening ports (`reusePort`): Deno's `--unstable-net` flag (or
 * `"unstable": ["net"]` in the running program's own deno.json; a published package's list does not
 * travel to its consumers). Without the flag, Deno ends the process on a `reusePort` listen, so
 * listeners check first.
 *
 * @returns Whether `reusePort` is available.
 */
export function reusePortAvailable(): boolean {
  // Deno.listenDatagram exists only with --unstable-net.
  return typeof (Deno as unknown as Record<string, unknown>).listenDatagram === "function";
}

/**
 * Checks that `reusePort` can be used before a listener binds with it.
 *
 * @param id The listener id.
 * @throws {TypeError} Without `--unstable-net`, saying so.
 */
export function checkReusePort(id: string): void {
  if (!reusePortAvailable()) {
    throw new TypeError(
      `Listener "${id}": sharing a port (reusePort) needs Deno's --unstable-net flag ` +
        `(deno run --unstable-net ...; a package's "unstable" list does not apply to the program using it)`,
    );
  }
}

/** Port sharing, for the listeners that bind a TCP port (TCP, WebSocket, HTTP). */
export interface PortSharing {
  /**
   * Bind with `SO_REUSEPORT` (Linux): several processes listen on the same port and the kernel
   * spreads connections over them (what `--workers` uses). Needs `--unstable-net`.
   */
  reusePort?: boolean;
}

/** Limits and policies every connection-accepting listener supports. */
export interface ConnectionPolicy {
  /** The most connections open at once through this listener; extra ones are closed at once. */
  maxConnections?: number;
  /**
   * Whether clients without a username may connect through this listener (default true); the
   * server refuses others with CONNACK 0x87 (v3: 5).
   */
  allowAnonymous?: boolean;
}

/**
 * Reads PEM text given inline or as a file path.
 *
 * @param value PEM text (contains `-----BEGIN`) or a file path.
 * @param what Named in the error, for example `"TLS certificate"`.
 * @returns The PEM text.
 * @throws {TypeError} When the file cannot be read or holds no PEM block.
 *
 * @example Inline PEM is returned as is
 * ```ts
 * import assert from "node:assert/strict";
 * import { readPem } from "./net.ts";
 *
 * const pem = "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n";
 * assert.equal(readPem(pem, "TLS certificate"), pem); // anything else is read as a file path
 * ```
 */
export function readPem(value: string, what: string): string {
  if (value.includes("-----BEGIN")) return value;
  let text: string;
  try {
    text = Deno.readTextFileSync(value);
  } catch (error) {
    throw new TypeError(
      `${what} file "${value}" cannot be read: ${error instanceof Error ? error.message : error}`,
    );
  }
  if (!text.includes("-----BEGIN")) throw new TypeError(`${what} file "${value}" holds no PEM data`);
  return text;
}

/**
 * Formats a network address as `host:port` (IPv6 hosts in brackets).
 *
 * @param hostname The host.
 * @param port The port.
 * @returns For example `127.0.0.1:1883` or `[::1]:1883`.
 *
 * @example Formatting
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatHostPort } from "./net.ts";
 *
 * assert.equal(formatHostPort("127.0.0.1", 1883), "127.0.0.1:1883");
 * assert.equal(formatHostPort("::1", 1883), "[::1]:1883"); // IPv6 in brackets
 * ```
 */
export function formatHostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/**
 * Counts a listener's open connections against its `maxConnections`, and logs each refusal.
 *
 * @example Two slots
 * ```ts
 * import assert from "node:assert/strict";
 * import { ConnectionCounter } from "./net.ts";
 *
 * const counter = new ConnectionCounter("t1", 2);
 * assert.equal(counter.acquire(), true);
 * assert.equal(counter.acquire(), true);
 * assert.equal(counter.acquire(), false); // full: refused
 * counter.release();
 * assert.equal(counter.open, 1);
 * ```
 */
export class ConnectionCounter {
  /** The limit (Infinity for none). */
  readonly max: number;
  /** Connections open now. */
  open = 0;
  /** Connections refused because the limit was reached. */
  refused = 0;

  readonly #listenerId: string;

  /**
   * Creates a counter.
   *
   * @param listenerId The listener's id, for the log.
   * @param max The limit; undefined or 0 for none.
   * @throws {RangeError} When `max` is negative or not an integer.
   */
  constructor(listenerId: string, max?: number) {
    if (max !== undefined && (!Number.isInteger(max) || max < 0)) {
      throw new RangeError(`maxConnections must be a non-negative integer, got ${max}`);
    }
    this.#listenerId = listenerId;
    this.max = max ? max : Infinity;
  }

  /**
   * Takes a slot if one is free.
   *
   * @returns False when the limit is reached (logged; the caller closes the connection).
   */
  acquire(): boolean {
    if (this.open >= this.max) {
      this.refused++;
      log.warn("Listener {id} refused a connection: {max} connections open", {
        id: this.#listenerId,
        max: this.max,
      });
      return false;
    }
    this.open++;
    return true;
  }

  /** Frees a slot. */
  release(): void {
    if (this.open > 0) this.open--;
  }
}

/**
 * Splits a comma-separated `X-Forwarded-For` header and picks the client address: the rightmost
 * entry that is not itself a trusted proxy.
 *
 * @param header The header value.
 * @param trusted Whether an address is a trusted proxy.
 * @returns The client address, or undefined when the header holds none.
 *
 * @example Skipping trusted proxies
 * ```ts
 * import assert from "node:assert/strict";
 * import { forwardedClient } from "./net.ts";
 *
 * const trusted = (address: string) => address === "10.0.0.2";
 * assert.equal(forwardedClient("203.0.113.9, 10.0.0.2", trusted), "203.0.113.9");
 * ```
 */
export function forwardedClient(header: string, trusted: (address: string) => boolean): string | undefined {
  const hops = header.split(",").map((h) => h.trim()).filter((h) => h !== "");
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = stripPort(hops[i]);
    if (i === 0 || !trusted(hop)) return hop;
  }
  return undefined;
}

/** Removes a port from `1.2.3.4:5` or `[::1]:5`; leaves bare IPv6 addresses alone. */
function stripPort(address: string): string {
  if (address.startsWith("[")) return address.slice(1, address.indexOf("]"));
  const colon = address.indexOf(":");
  return colon >= 0 && colon === address.lastIndexOf(":") ? address.slice(0, colon) : address;
}

/**
 * Builds a matcher for trusted proxy addresses: exact IPs, `*` for any, or IPv4 CIDR ranges.
 *
 * @param entries For example `["127.0.0.1", "10.0.0.0/8"]`.
 * @returns Whether an address is trusted.
 * @throws {TypeError} On an entry that is not an IP address or an IPv4 CIDR range.
 *
 * @example CIDR ranges
 * ```ts
 * import assert from "node:assert/strict";
 * import { proxyMatcher } from "./net.ts";
 *
 * const trusted = proxyMatcher(["10.0.0.0/8", "::1"]);
 * assert.equal(trusted("10.1.2.3"), true);
 * assert.equal(trusted("::1"), true);
 * assert.equal(trusted("11.0.0.1"), false);
 * ```
 */
export function proxyMatcher(entries: readonly string[]): (address: string) => boolean {
  const exact = new Set<string>();
  const ranges: [number, number][] = [];
  let any = false;
  for (const entry of entries) {
    if (entry === "*") {
      any = true;
    } else if (entry.includes("/")) {
      const [ip, bitsText] = entry.split("/");
      const base = ipv4ToNumber(ip);
      const bits = Number(bitsText);
      if (base === undefined || !Number.isInteger(bits) || bits < 0 || bits > 32) {
        throw new TypeError(`Trusted proxy "${entry}" is not an IPv4 CIDR range`);
      }
      const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
      ranges.push([(base & mask) >>> 0, mask]);
    } else if (ipv4ToNumber(entry) !== undefined || entry.includes(":")) {
      exact.add(normalizeIp(entry));
    } else {
      throw new TypeError(`Trusted proxy "${entry}" is not an IP address`);
    }
  }
  return (address: string) => {
    if (any) return true;
    const ip = normalizeIp(address);
    if (exact.has(ip)) return true;
    const n = ipv4ToNumber(ip);
    return n !== undefined && ranges.some(([base, mask]) => ((n & mask) >>> 0) === base);
  };
}

/** Maps IPv4-mapped IPv6 (`::ffff:1.2.3.4`) to plain IPv4 and lower-cases the rest. */
function normalizeIp(ip: string): string {
  const lower = ip.toLowerCase();
  return lower.startsWith("::ffff:") && lower.includes(".") ? lower.slice(7) : lower;
}

function ipv4ToNumber(ip: string): number | undefined {
  const parts = ip.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const part of parts) {
    const octet = Number(part);
    if (part === "" || !Number.isInteger(octet) || octet < 0 || octet > 255) return undefined;
    n = n * 256 + octet;
  }
  return n;
}

/**
 * Splits a `host:port` address; an empty host means all interfaces.
 *
 * @param address For example `":1883"`, `"127.0.0.1:1883"` or `"[::1]:1883"`.
 * @returns The hostname and port.
 * @throws {TypeError} When the port is missing or not a number.
 * @throws {RangeError} When the port is above 65535.
 *
 * @example Parsing addresses
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseHostPort } from "./net.ts";
 *
 * assert.deepEqual(parseHostPort(":1883"), { hostname: "0.0.0.0", port: 1883 }); // all interfaces
 * assert.deepEqual(parseHostPort("[::1]:1883"), { hostname: "::1", port: 1883 });
 * assert.throws(() => parseHostPort("localhost"), TypeError); // no port
 * ```
 */
export function parseHostPort(address: string): { hostname: string; port: number } {
  const at = address.lastIndexOf(":");
  const digits = address.slice(at + 1);
  if (at < 0 || !/^\d+$/.test(digits)) {
    throw new TypeError(`Address "${address}" is not of the form host:port or :port`);
  }
  const port = Number(digits);
  if (port > 65535) {
    throw new RangeError(`Address "${address}": port ${digits} is out of range (0 to 65535)`);
  }
  let hostname = address.slice(0, at);
  if (hostname.startsWith("[") && hostname.endsWith("]")) hostname = hostname.slice(1, -1);
  return { hostname: hostname || "0.0.0.0", port };
}

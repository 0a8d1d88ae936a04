/**
 * The interface every listener implements, so users can write their own.
 *
 * @module
 */

import type { Connection } from "../src/client.ts";

export type { Connection };

/** Hands an accepted connection to the server; resolves when the connection has ended. */
export type EstablishFn = (listenerId: string, conn: Connection, remoteAddress: string) => Promise<void>;

/** A source of client connections (TCP, TLS, WebSocket, Unix socket, ...). */
export interface Listener {
  /** A unique id, reported with each client. */
  readonly id: string;
  /** The address it listens on (after `init`, the real bound address). */
  readonly address: string;
  /** The protocol name, for example `"tcp"`. */
  readonly protocol: string;
  /** Binds the address; errors (address in use, bad certificate) surface here. */
  init(): void | Promise<void>;
  /** Starts accepting connections, handing each to `establish`. Returns at once. */
  serve(establish: EstablishFn): void;
  /** Stops accepting connections and releases the address. */
  close(): Promise<void>;
  /** Whether clients without a username may connect (absent: yes); the server refuses others with 0x87. */
  readonly allowAnonymous?: boolean;
  /**
   * The username a connection proved with a verified TLS client certificate, if the listener maps
   * certificates to usernames; the server uses it in place of the CONNECT's username.
   */
  usernameFor?(conn: Connection): string | undefined;
}

/** Options shared by network listeners. */
export interface ListenerConfig {
  /** The listener id. */
  id: string;
  /** `host:port`, `:port` (all interfaces) or a path, depending on the listener. */
  address: string;
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
 * import { parseHostPort } from "./listener.ts";
 * console.log(parseHostPort(":1883")); // { hostname: "0.0.0.0", port: 1883 }
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

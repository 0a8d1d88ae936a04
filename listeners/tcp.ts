/**
 * A TCP listener, with optional TLS (1.2 and 1.3) and mutual TLS.
 *
 * Plain TCP uses `Deno.listen`. TLS uses Deno's `node:tls` by default, which turns Nagle off
 * (small packets are not held back), verifies client chains against `ca` and exposes the
 * certificate's subject. `tls.engine: "deno"` selects `Deno.listenTls` (rustls) instead: faster
 * for bulk data, but it has no `setNoDelay` and cannot request or read client certificates.
 *
 * @module
 */

import tls from "node:tls";
import type { Connection, EstablishFn, Listener, ListenerConfig } from "../src/listener.ts";
import {
  checkReusePort,
  ConnectionCounter,
  type ConnectionPolicy,
  formatHostPort,
  parseHostPort,
  type PortSharing,
  readPem,
} from "./net.ts";
import type { TlsConfig } from "./net.ts";
import { NodeSocketConnection } from "./node_socket.ts";
import { logger } from "../src/logger.ts";

const log = logger("tcp");

/** Options for a {@linkcode TCP} listener. */
export interface TCPConfig extends ListenerConfig, ConnectionPolicy, PortSharing {
  /** Serve TLS instead of plain TCP. */
  tls?: TlsConfig;
}

/**
 * Accepts MQTT clients over TCP or TLS. Nagle is turned off on every connection so small packets
 * are not held back (Deno leaves it on).
 *
 * @example A TCP listener on a free port
 * ```ts
 * import assert from "node:assert/strict";
 * import { TCP } from "./tcp.ts";
 *
 * const tcp = new TCP({ id: "t1", address: "127.0.0.1:0" });
 * await tcp.init();
 * assert.match(tcp.address, /^127\.0\.0\.1:[1-9]\d*$/); // the port the system chose
 * assert.equal(tcp.protocol, "tcp");
 * await tcp.close();
 * ```
 */
export class TCP implements Listener {
  /** The listener id. */
  readonly id: string;
  /** The protocol name: `"tcp"`, or `"tls"` with TLS. */
  readonly protocol: string;
  /** Whether clients without a username may connect (the server refuses others with 0x87). */
  readonly allowAnonymous: boolean;
  /** Open and refused connection counts. */
  readonly connections: ConnectionCounter;
  #address: string;
  readonly #tls: TlsConfig | undefined;
  #listener: Deno.Listener | undefined;
  readonly #reusePort: boolean;
  #nodeServer: tls.Server | undefined;
  #accepting: Promise<void> | undefined;
  readonly #usernames = new WeakMap<Connection, string>();
  /** Ends a connection's count: one function for all (no closure per connection). */
  readonly #release = (): void => this.connections.release();

  /**
   * Creates a TCP listener.
   *
   * @param config The id, `host:port` address (`:1883` for all interfaces, port 0 for any free
   *   port), optional TLS, `maxConnections` and `allowAnonymous`.
   * @throws {TypeError} When the TLS settings are inconsistent.
   */
  constructor(config: TCPConfig) {
    this.id = config.id;
    this.#address = config.address;
    this.#tls = config.tls;
    this.protocol = config.tls ? "tls" : "tcp";
    this.allowAnonymous = config.allowAnonymous ?? true;
    this.connections = new ConnectionCounter(config.id, config.maxConnections);
    this.#reusePort = config.reusePort ?? false;
    if (config.tls) checkTlsConfig(config.id, config.tls);
  }

  /** The configured address, or after `init` the bound `host:port`. */
  get address(): string {
    return this.#address;
  }

  /** Binds the address (and loads the TLS certificate and key). */
  async init(): Promise<void> {
    const { hostname, port } = parseHostPort(this.#address);
    const settings = this.#tls;
    const reusePort = this.#reusePort;
    if (reusePort) checkReusePort(this.id);
    // reusePort is only passed when set: Deno ends the process on it without --unstable-net.
    const shared = reusePort ? { reusePort } : {};
    if (!settings) {
      this.#listener = Deno.listen({ hostname, port, transport: "tcp", ...shared });
    } else if (settings.engine === "deno") {
      this.#listener = Deno.listenTls({
        hostname,
        port,
        ...shared,
        cert: readPem(settings.cert, "TLS certificate"),
        key: readPem(settings.key, "TLS key"),
      });
    } else {
      this.#nodeServer = await listenNodeTls(hostname, port, settings, reusePort);
    }
    if (this.#listener) {
      const addr = this.#listener.addr as Deno.NetAddr;
      this.#address = formatHostPort(addr.hostname, addr.port);
    } else {
      const addr = this.#nodeServer!.address() as { address: string; port: number };
      this.#address = formatHostPort(addr.address, addr.port);
    }
  }

  /**
   * Accepts connections until closed.
   *
   * @param establish Hands each connection to the server.
   */
  serve(establish: EstablishFn): void {
    if (this.#nodeServer) return this.#serveNode(this.#nodeServer, establish);
    const listener = this.#listener;
    if (!listener) throw new TypeError(`Listener "${this.id}" must be initialised before serve`);
    this.#accepting ??= (async () => {
      try {
        for await (const conn of listener) {
          if (!this.connections.acquire()) {
            conn.close();
            continue;
          }
          // TcpConn has setNoDelay; a TlsConn may not expose it.
          (conn as Partial<Deno.TcpConn>).setNoDelay?.(true);
          const addr = conn.remoteAddr as Deno.NetAddr;
          establish(this.id, conn, formatHostPort(addr.hostname, addr.port)).then(
            this.#release,
            this.#release,
          );
        }
      } catch (error) {
        if (!(error instanceof Deno.errors.BadResource)) {
          log.error("Listener {id} stopped accepting: {error}", { id: this.id, error: String(error) });
        }
      }
    })();
  }

  #serveNode(server: tls.Server, establish: EstablishFn): void {
    if (this.#accepting) return;
    this.#accepting = Promise.resolve();
    const asUsername = this.#tls?.clientCertAsUsername === true;
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      if (!this.connections.acquire()) {
        socket.destroy();
        return;
      }
      socket.setNoDelay(true);
      const conn = new NodeSocketConnection(socket);
      if (asUsername && socket.authorized) {
        const commonName = socket.getPeerCertificate()?.subject?.CN;
        const name = Array.isArray(commonName) ? commonName[0] : commonName;
        if (name) this.#usernames.set(conn, name);
      }
      const remote = formatHostPort(socket.remoteAddress ?? "", socket.remotePort ?? 0);
      establish(this.id, conn, remote).then(this.#release, this.#release);
    });
  }

  /**
   * The username proven by a connection's client certificate (with `clientCertAsUsername`).
   *
   * @param conn A connection this listener accepted.
   * @returns The certificate's Common Name, or undefined.
   */
  usernameFor(conn: Connection): string | undefined {
    return this.#usernames.get(conn);
  }

  /** Stops accepting connections (open connections are closed by the server). */
  async close(): Promise<void> {
    if (this.#nodeServer) {
      const server = this.#nodeServer;
      this.#nodeServer = undefined;
      // close() stops listening at once; its callback waits for every connection, which the
      // server closes afterwards, so it is not awaited here.
      server.close();
      return;
    }
    try {
      this.#listener?.close();
    } catch {
      // already closed
    }
    await this.#accepting;
  }
}

function checkTlsConfig(id: string, settings: TlsConfig): void {
  if (!settings.cert || !settings.key) {
    throw new TypeError(`Listener "${id}": TLS needs both a certificate and a key`);
  }
  if (settings.engine !== undefined && settings.engine !== "deno" && settings.engine !== "node") {
    throw new TypeError(`Listener "${id}": TLS engine "${settings.engine}" is not "deno" or "node"`);
  }
  if (settings.engine === "deno" && settings.ca) {
    throw new TypeError(`Listener "${id}": client certificates (tls.ca) need the "node" TLS engine`);
  }
  if ((settings.requireClientCert || settings.clientCertAsUsername) && !settings.ca) {
    throw new TypeError(
      `Listener "${id}": requireClientCert and clientCertAsUsername need a CA (tls.ca) to verify client certificates`,
    );
  }
}

/** Binds a `node:tls` server (verifying client certificates against `settings.ca` when set). */
function listenNodeTls(
  hostname: string,
  port: number,
  settings: TlsConfig,
  reusePort: boolean,
): Promise<tls.Server> {
  const server = tls.createServer({
    cert: readPem(settings.cert, "TLS certificate"),
    key: readPem(settings.key, "TLS key"),
    ca: settings.ca ? readPem(settings.ca, "TLS CA") : undefined,
    requestCert: settings.ca !== undefined,
    rejectUnauthorized: settings.requireClientCert === true,
    minVersion: "TLSv1.2",
  });
  server.on("tlsClientError", (error: Error) => {
    log.debug("TLS handshake failed: {error}", { error: error.message });
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ port, host: hostname, ...(reusePort ? { reusePort } : {}) }, () => {
      server.off("error", reject);
      server.on(
        "error",
        (error: Error) => log.error("TLS listener error: {error}", { error: error.message }),
      );
      resolve(server);
    });
  });
}

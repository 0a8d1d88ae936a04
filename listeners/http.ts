/**
 * A small wrapper around `Deno.serve` shared by the WebSocket, stats, health-check and metrics
 * listeners, and {@linkcode HttpListener}, the base of those that only answer requests.
 *
 * @module
 */

import type { Listener, ListenerConfig } from "../src/listener.ts";
import {
  checkReusePort,
  formatHostPort,
  parseHostPort,
  type PortSharing,
  readPem,
  type TlsConfig,
} from "./net.ts";
import { logger } from "../src/logger.ts";

const log = logger("http");

/** A bound HTTP(S) server. */
export interface BoundHttpServer {
  /** The server. */
  server: Deno.HttpServer<Deno.NetAddr>;
  /** The bound `host:port`. */
  address: string;
}

/**
 * Binds an HTTP server (HTTPS with `tls`) on a `host:port` address.
 *
 * @param id The listener id, for log messages.
 * @param address `host:port`; port 0 picks a free port.
 * @param tls Certificate and key; client certificates are not supported by `Deno.serve`.
 * @param handler The request handler.
 * @param reusePort Share the port with other processes (needs `--unstable-net`).
 * @returns The server and its bound address.
 * @throws {TypeError} When `tls` asks for client certificates.
 */
export function serveHttp(
  id: string,
  address: string,
  tls: TlsConfig | undefined,
  handler: Deno.ServeHandler<Deno.NetAddr>,
  reusePort = false,
): BoundHttpServer {
  const { hostname, port } = parseHostPort(address);
  if (reusePort) checkReusePort(id);
  const options: Deno.ServeTcpOptions & Partial<Deno.TlsCertifiedKeyPem> = {
    hostname,
    port,
    onListen: () => {},
    onError: (error) => {
      log.error("Listener {id}: request failed: {error}", { id, error: String(error) });
      return new Response("Internal Server Error", { status: 500 });
    },
  };
  if (reusePort) options.reusePort = true; // only when set: Deno ends the process on it without --unstable-net
  if (tls) {
    options.cert = readPem(tls.cert, "TLS certificate");
    options.key = readPem(tls.key, "TLS key");
  }
  const server = Deno.serve(options, handler);
  return { server, address: formatHostPort(server.addr.hostname, server.addr.port) };
}

/**
 * Checks that TLS settings for an HTTP-based listener ask for nothing `Deno.serve` cannot do.
 *
 * @param id The listener id.
 * @param tls The settings.
 * @throws {TypeError} When client certificates are requested.
 */
export function checkHttpTls(id: string, tls: TlsConfig | undefined): void {
  if (!tls) return;
  if (!tls.cert || !tls.key) throw new TypeError(`Listener "${id}": TLS needs both a certificate and a key`);
  if (tls.ca || tls.requireClientCert || tls.clientCertAsUsername) {
    throw new TypeError(
      `Listener "${id}": client certificates are not supported on HTTP and WebSocket listeners ` +
        "(Deno.serve cannot request or verify them); use a TCP listener with TLS for mutual TLS",
    );
  }
}

/** Options of an {@linkcode HttpListener}. */
export interface HttpListenerConfig extends ListenerConfig, PortSharing {
  /** Serve HTTPS with this certificate and key. */
  tls?: TlsConfig;
}

/**
 * A listener that answers HTTP requests (stats, health check, metrics): it binds in `init`, serves
 * from then on, and shuts down in `close`. Subclasses implement `handle`.
 */
export abstract class HttpListener implements Listener {
  /** The listener id. */
  readonly id: string;
  /** `"http"`, or `"https"` with TLS. */
  readonly protocol: string;
  #address: string;
  readonly #tls: TlsConfig | undefined;
  readonly #reusePort: boolean;
  #http: Deno.HttpServer<Deno.NetAddr> | undefined;

  /**
   * Checks the settings.
   *
   * @param config The id, `host:port` address and optional TLS.
   * @throws {TypeError} When `tls` asks for client certificates.
   */
  constructor(config: HttpListenerConfig) {
    checkHttpTls(config.id, config.tls);
    this.id = config.id;
    this.#address = config.address;
    this.#tls = config.tls;
    this.#reusePort = config.reusePort ?? false;
    this.protocol = config.tls ? "https" : "http";
  }

  /** The configured address, or after `init` the bound `host:port`. */
  get address(): string {
    return this.#address;
  }

  /** Binds the address and starts answering. */
  init(): void {
    const bound = serveHttp(
      this.id,
      this.#address,
      this.#tls,
      (request, info) => this.handle(request, info),
      this.#reusePort,
    );
    this.#http = bound.server;
    this.#address = bound.address;
  }

  /** Nothing to do: requests are answered from `init` on. */
  serve(): void {}

  /** Stops the HTTP server. */
  async close(): Promise<void> {
    const http = this.#http;
    this.#http = undefined;
    await http?.shutdown();
  }

  /**
   * Answers one request.
   *
   * @param request The request.
   * @param info Where it came from.
   * @returns The response.
   */
  protected abstract handle(
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Response | Promise<Response>;
}

/**
 * Answers 405 to methods other than those allowed.
 *
 * @param request The request.
 * @param allowed The methods allowed.
 * @returns A 405 response, or undefined when the method is allowed.
 */
export function methodNotAllowed(request: Request, allowed: readonly string[]): Response | undefined {
  if (allowed.includes(request.method)) return undefined;
  return new Response("Method Not Allowed", { status: 405, headers: { allow: allowed.join(", ") } });
}

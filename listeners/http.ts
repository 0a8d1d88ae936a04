/**
 * A small wrapper around `Deno.serve` shared by the WebSocket, stats and health-check listeners.
 *
 * @module
 */

import { parseHostPort } from "./listener.ts";
import { formatHostPort, readPem, type TlsConfig } from "./net.ts";
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
 * @returns The server and its bound address.
 * @throws {TypeError} When `tls` asks for client certificates.
 */
export function serveHttp(
  id: string,
  address: string,
  tls: TlsConfig | undefined,
  handler: Deno.ServeHandler<Deno.NetAddr>,
): BoundHttpServer {
  const { hostname, port } = parseHostPort(address);
  const options: Deno.ServeTcpOptions & Partial<Deno.TlsCertifiedKeyPem> = {
    hostname,
    port,
    onListen: () => {},
    onError: (error) => {
      log.error("Listener {id}: request failed: {error}", { id, error: String(error) });
      return new Response("Internal Server Error", { status: 500 });
    },
  };
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

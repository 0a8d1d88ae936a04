/**
 * Opens the byte stream to a remote broker: TCP (`mqtt://`), TLS (`mqtts://`), WebSocket (`ws://`,
 * `wss://`, subprotocol `mqtt`, binary frames).
 *
 * @module
 */

import type { Connection } from "../../src/listener.ts";
import { WebSocketConnection } from "../../listeners/websocket.ts";
import type { BridgeTls } from "./rules.ts";

/**
 * Connects to a remote broker.
 *
 * @param url `mqtt://host:port` (default port 1883), `mqtts://` (8883), `ws://host:port/path`,
 * `wss://`; `tcp:`, `ssl:` and `tls:` are read as `mqtt:` and `mqtts:`.
 * @param tls CA, client certificate and key (PEM) for `mqtts://`; `wss://` uses the system's CAs.
 * @param timeoutMs How long to wait for the connection.
 * @returns The open connection.
 * @throws {Error} When the connection fails or takes too long.
 *
 * @example A TCP connection to a local listener
 * ```ts
 * import assert from "node:assert/strict";
 * import { dial } from "./transport.ts";
 * const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const accepted = listener.accept();
 * const conn = await dial(new URL(`mqtt://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`), undefined, 1000);
 * const server = await accepted;
 * assert.equal(await conn.write(new Uint8Array([0xc0, 0])), 2);
 * conn.close();
 * server.close();
 * listener.close();
 * ```
 */
export async function dial(url: URL, tls: BridgeTls | undefined, timeoutMs: number): Promise<Connection> {
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const scheme = url.protocol;
  if (scheme === "ws:" || scheme === "wss:") return await openWebSocket(url, timeoutMs);
  const secure = scheme === "mqtts:" || scheme === "ssl:" || scheme === "tls:";
  const port = url.port === "" ? (secure ? 8883 : 1883) : Number(url.port);
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    if (!secure) {
      const conn = await Deno.connect({ hostname, port, signal: controller.signal });
      conn.setNoDelay(true);
      return conn;
    }
    const options: Deno.ConnectTlsOptions & Partial<Deno.TlsCertifiedKeyPem> = { hostname, port };
    if (tls?.ca) options.caCerts = [tls.ca];
    if (tls?.cert && tls.key) {
      options.cert = tls.cert;
      options.key = tls.key;
    }
    const conn = await withTimeout(Deno.connectTls(options), timeoutMs, "TLS connection");
    await withTimeout(conn.handshake(), timeoutMs, "TLS handshake").catch((error) => {
      conn.close();
      throw error;
    });
    return conn;
  } catch (error) {
    if (controller.signal.aborted) throw new Error(`Connecting to ${url.host} timed out`);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

async function openWebSocket(url: URL, timeoutMs: number): Promise<Connection> {
  const socket = new WebSocket(url.href, "mqtt");
  socket.binaryType = "arraybuffer";
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  socket.onopen = () => resolve();
  socket.onerror = (event) => reject(new Error(`WebSocket to ${url.host} failed: ${errorText(event)}`));
  socket.onclose = () => reject(new Error(`WebSocket to ${url.host} closed while opening`));
  try {
    await withTimeout(promise, timeoutMs, "WebSocket connection");
  } catch (error) {
    try {
      socket.close();
    } catch {
      // not open
    }
    throw error;
  }
  if (socket.protocol !== "mqtt") {
    socket.close(1002, "MQTT needs the mqtt subprotocol");
    throw new Error(`WebSocket to ${url.host} did not accept the mqtt subprotocol`);
  }
  return new WebSocketConnection(socket);
}

function errorText(event: Event): string {
  return event instanceof ErrorEvent ? event.message : "connection error";
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A WebSocket (and WSS) listener on `Deno.serve` and `Deno.upgradeWebSocket`.
 *
 * MQTT over WebSocket [MQTT-6.0.0]: binary frames only, the `mqtt` subprotocol (`mqttv3.1` for
 * old clients), and frame boundaries that mean nothing: one packet may span frames and one frame
 * may hold several packets. The socket is adapted to the server's byte-stream
 * {@linkcode Connection}.
 *
 * @module
 */

import { ChunkQueue } from "./chunk_queue.ts";
import type { Connection, EstablishFn, Listener, ListenerConfig } from "../src/listener.ts";
import {
  ConnectionCounter,
  type ConnectionPolicy,
  formatHostPort,
  forwardedClient,
  type PortSharing,
  proxyMatcher,
  type TlsConfig,
} from "./net.ts";
import { checkHttpTls, serveHttp } from "./http.ts";
import { logger } from "../src/logger.ts";

const log = logger("websocket");

/** The subprotocols accepted, in order of preference. */
export const WEBSOCKET_SUBPROTOCOLS: readonly string[] = ["mqtt", "mqttv3.1"];

/** Options for a {@linkcode WebSocket} listener. */
export interface WebSocketConfig extends ListenerConfig, ConnectionPolicy, PortSharing {
  /** Serve WSS (certificate and key; client certificates are not supported by `Deno.serve`). */
  tls?: TlsConfig;
  /** The path clients connect to (default `/mqtt`); `/` is always accepted too. */
  path?: string;
  /**
   * Origins allowed to connect, for example `["https://app.example.com"]`. Requests with another
   * `Origin` header get 403; requests without one (non-browser clients) are allowed. Unset: any.
   */
  allowedOrigins?: string[];
  /**
   * Proxies whose `X-Forwarded-For` header is believed (IPs, IPv4 CIDR ranges, or `*`). The client
   * address becomes the rightmost forwarded address that is not itself a trusted proxy.
   */
  trustedProxies?: string[];
}

/**
 * Accepts MQTT clients over WebSocket (WSS with `tls`).
 *
 * @example A WebSocket listener on a free port
 * ```ts
 * import assert from "node:assert/strict";
 * import { WebSocket } from "./websocket.ts";
 *
 * const ws = new WebSocket({ id: "ws1", address: "127.0.0.1:0" });
 * await ws.init();
 * assert.equal(ws.protocol, "ws");
 * assert.equal(ws.path, "/mqtt"); // the default path
 * await ws.close();
 * ```
 */
export class WebSocket implements Listener {
  /** The listener id. */
  readonly id: string;
  /** `"ws"`, or `"wss"` with TLS. */
  readonly protocol: string;
  /** The path clients connect to. */
  readonly path: string;
  /** Whether clients without a username may connect (the server refuses others with 0x87). */
  readonly allowAnonymous: boolean;
  /** Open and refused connection counts. */
  readonly connections: ConnectionCounter;
  #address: string;
  readonly #tls: TlsConfig | undefined;
  readonly #reusePort: boolean;
  readonly #origins: Set<string> | undefined;
  readonly #trusted: ((address: string) => boolean) | undefined;
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;
  #establish: EstablishFn | undefined;
  readonly #live = new Set<WebSocketConnection>();
  #closing = false;
  #drained: Promise<void> | undefined;
  #onDrained: (() => void) | undefined;

  /**
   * Creates a WebSocket listener.
   *
   * @param config The id, `host:port` address and options.
   * @throws {TypeError} On a bad path, origin, proxy or TLS setting.
   */
  constructor(config: WebSocketConfig) {
    this.id = config.id;
    this.#address = config.address;
    this.#tls = config.tls;
    this.#reusePort = config.reusePort ?? false;
    checkHttpTls(config.id, config.tls);
    this.protocol = config.tls ? "wss" : "ws";
    this.path = config.path ?? "/mqtt";
    if (!this.path.startsWith("/")) throw new TypeError(`WebSocket path "${this.path}" must start with "/"`);
    this.allowAnonymous = config.allowAnonymous ?? true;
    this.connections = new ConnectionCounter(config.id, config.maxConnections);
    this.#origins = config.allowedOrigins ? new Set(config.allowedOrigins.map(normalizeOrigin)) : undefined;
    this.#trusted = config.trustedProxies?.length ? proxyMatcher(config.trustedProxies) : undefined;
  }

  /** The configured address, or after `init` the bound `host:port`. */
  get address(): string {
    return this.#address;
  }

  /** Binds the address. */
  init(): void {
    const bound = serveHttp(this.id, this.#address, this.#tls, this.#handle, this.#reusePort);
    this.#server = bound.server;
    this.#address = bound.address;
  }

  /**
   * Starts handing upgraded connections to the server.
   *
   * @param establish Hands each connection to the server.
   */
  serve(establish: EstablishFn): void {
    if (!this.#server) throw new TypeError(`Listener "${this.id}" must be initialised before serve`);
    this.#establish = establish;
  }

  /**
   * Stops accepting connections. Open connections are closed by the server, which first sends v5
   * clients a DISCONNECT; `Deno.serve`'s shutdown would drop them with close code 1001, so it waits
   * until every socket has closed (at most {@linkcode SHUTDOWN_GRACE_MS}), and the connections'
   * end of stream is held back until it has happened, so that `server.close()` covers it.
   */
  async close(): Promise<void> {
    if (this.#closing) return;
    this.#closing = true;
    this.#establish = undefined;
    if (this.#live.size === 0) return await this.#shutdown();
    const { promise, resolve } = Promise.withResolvers<void>();
    const timer = setTimeout(() => this.#onDrained?.(), SHUTDOWN_GRACE_MS);
    this.#onDrained = () => {
      this.#onDrained = undefined;
      clearTimeout(timer);
      this.#shutdown().then(resolve);
    };
    this.#drained = promise;
  }

  async #shutdown(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    await server?.shutdown();
  }

  /** Called by a connection once its socket has closed. */
  #socketClosed = (conn: WebSocketConnection): void => {
    this.#live.delete(conn);
    if (this.#closing && this.#live.size === 0) this.#onDrained?.();
  };

  /** What a connection awaits before reporting end of stream: the shutdown, while closing. */
  #endOfStream = (): Promise<void> | undefined => this.#drained;

  readonly #handle = (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Response => {
    const url = new URL(request.url);
    if (url.pathname !== this.path && url.pathname !== "/") return new Response("Not Found", { status: 404 });
    if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      return new Response("Upgrade Required: this is an MQTT over WebSocket endpoint", {
        status: 426,
        headers: { upgrade: "websocket" },
      });
    }
    const origin = request.headers.get("origin");
    if (this.#origins && origin !== null && !this.#origins.has(normalizeOrigin(origin))) {
      log.info("Listener {id} refused origin {origin}", { id: this.id, origin });
      return new Response("Forbidden origin", { status: 403 });
    }
    const offered = (request.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim())
      .filter((p) => p !== "");
    const protocol = WEBSOCKET_SUBPROTOCOLS.find((p) => offered.includes(p));
    if (offered.length > 0 && protocol === undefined) {
      // [MQTT-6.0.0-4] the server must select "mqtt"; it cannot speak what the client offered.
      return new Response(`Unsupported subprotocol; offer one of ${WEBSOCKET_SUBPROTOCOLS.join(", ")}`, {
        status: 400,
      });
    }
    const establish = this.#establish;
    if (!establish) return new Response("Service Unavailable", { status: 503 });
    if (!this.connections.acquire()) {
      return new Response("Too many connections", { status: 503 });
    }
    const peer = info.remoteAddr;
    let remote = formatHostPort(peer.hostname, peer.port);
    const forwarded = request.headers.get("x-forwarded-for");
    if (forwarded && this.#trusted?.(peer.hostname)) {
      const client = forwardedClient(forwarded, this.#trusted);
      if (client) remote = formatHostPort(client, 0);
    }
    const { socket, response } = Deno.upgradeWebSocket(request, protocol ? { protocol } : {});
    const conn = new WebSocketConnection(socket, {
      closed: this.#socketClosed,
      endOfStream: this.#endOfStream,
    });
    this.#live.add(conn);
    establish(this.id, conn, remote).finally(() => this.connections.release());
    return response;
  };
}

function normalizeOrigin(origin: string): string {
  return origin.toLowerCase().replace(/\/+$/, "");
}

/** How long a closing listener waits for its WebSockets to close before shutting down anyway. */
export const SHUTDOWN_GRACE_MS = 3000;

/** Callbacks from a {@linkcode WebSocketConnection} to the listener that owns it. */
export interface WebSocketConnectionOwner {
  /** The socket has closed. */
  closed(conn: WebSocketConnection): void;
  /** A Promise to await before `read()` reports end of stream, if any. */
  endOfStream(): Promise<void> | undefined;
}

/** Bytes waiting in the socket's send buffer before `write` waits. */
const SEND_HIGH_WATER_MARK = 1024 * 1024;

/**
 * A {@linkcode Connection} over a WebSocket: `read()` fills the caller's buffer from the queued
 * binary frames (frame boundaries are ignored); `write()` sends one binary frame.
 *
 * A text frame is a protocol error [MQTT-6.0.0-1]: the connection is closed.
 *
 * @example Wrapping a socket
 * ```ts
 * import assert from "node:assert/strict";
 * import { WebSocketConnection } from "./websocket.ts";
 *
 * const accepted = Promise.withResolvers<WebSocketConnection>();
 * const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
 *   const { socket, response } = Deno.upgradeWebSocket(request, { protocol: "mqtt" });
 *   accepted.resolve(new WebSocketConnection(socket));
 *   return response;
 * });
 * const client = new globalThis.WebSocket(`ws://127.0.0.1:${http.addr.port}/`, "mqtt");
 * client.binaryType = "arraybuffer";
 * const opened = new Promise((resolve) => client.onopen = resolve);
 * const conn = await accepted.promise;
 * await opened;
 *
 * client.send(new Uint8Array([0xc0, 0x00])); // PINGREQ, in one binary frame
 * const buffer = new Uint8Array(8);
 * assert.equal(await conn.read(buffer), 2);
 * assert.deepEqual(buffer.subarray(0, 2), new Uint8Array([0xc0, 0x00]));
 *
 * const reply = new Promise<MessageEvent>((resolve) => client.onmessage = resolve);
 * await conn.write(new Uint8Array([0xd0, 0x00])); // PINGRESP, sent as one binary frame
 * assert.deepEqual(new Uint8Array((await reply).data), new Uint8Array([0xd0, 0x00]));
 *
 * const closed = new Promise((resolve) => client.onclose = resolve);
 * conn.close();
 * await closed;
 * await http.shutdown();
 * ```
 */
export class WebSocketConnection implements Connection {
  readonly #socket: globalThis.WebSocket;
  readonly #frames = new ChunkQueue();
  readonly #opened: Promise<void>;
  readonly #owner: WebSocketConnectionOwner | undefined;

  /**
   * Wraps a socket (open or still connecting).
   *
   * @param socket The WebSocket.
   * @param owner The listener to tell when the socket closes.
   */
  constructor(socket: globalThis.WebSocket, owner?: WebSocketConnectionOwner) {
    this.#socket = socket;
    this.#owner = owner;
    socket.binaryType = "arraybuffer";
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#opened = promise;
    if (socket.readyState === socket.OPEN) resolve();
    socket.onopen = () => resolve();
    socket.onmessage = (event: MessageEvent) => {
      if (typeof event.data === "string") {
        log.debug("Closing a WebSocket that sent a text frame");
        this.#frames.end();
        this.#closeSocket(1003, "MQTT needs binary frames");
        return;
      }
      this.#frames.push(new Uint8Array(event.data as ArrayBuffer));
    };
    socket.onclose = () => {
      resolve();
      this.#frames.end();
      this.#owner?.closed(this);
    };
    socket.onerror = () => {
      resolve();
      this.#frames.end();
    };
  }

  /**
   * Reads queued frame bytes into `buffer`.
   *
   * @param buffer Where to put the bytes.
   * @returns The byte count, or null once the socket has closed and every frame was read.
   */
  async read(buffer: Uint8Array): Promise<number | null> {
    const n = await this.#frames.read(buffer);
    if (n === null) await this.#owner?.endOfStream();
    return n;
  }

  /**
   * Sends `data` as one binary frame (copied, so the caller may reuse its buffer); waits while
   * more than 1 MiB is still unsent.
   *
   * @param data The bytes.
   * @returns The byte count.
   */
  async write(data: Uint8Array): Promise<number> {
    if (this.#socket.readyState === this.#socket.CONNECTING) await this.#opened;
    if (this.#socket.readyState !== this.#socket.OPEN) throw new Error("The WebSocket is closed");
    this.#socket.send(data.slice());
    while (
      this.#socket.bufferedAmount > SEND_HIGH_WATER_MARK && this.#socket.readyState === this.#socket.OPEN
    ) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    return data.length;
  }

  /** Closes the socket (normal closure). */
  close(): void {
    this.#frames.end();
    this.#closeSocket(1000, "");
  }

  #closeSocket(code: number, reason: string): void {
    try {
      if (
        this.#socket.readyState === this.#socket.OPEN || this.#socket.readyState === this.#socket.CONNECTING
      ) {
        this.#socket.close(code, reason);
      }
    } catch {
      // already closing
    }
  }
}

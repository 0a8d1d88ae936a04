/**
 * An HTTP listener that serves the broker's `$SYS` statistics as JSON and, given the server, the
 * live dashboard, the admin API and Prometheus metrics.
 *
 * @module
 */

import type { Listener, ListenerConfig } from "./listener.ts";
import type { TlsConfig } from "./net.ts";
import type { Info } from "../src/system.ts";
import type { Server } from "../src/server.ts";
import type { PartialHandler } from "../src/admin.ts";
import { checkHttpTls, serveHttp } from "./http.ts";
import { observabilityHandler, type ObservabilityOptions } from "./dashboard/dashboard.ts";

/** Options for {@linkcode HTTPStats}. */
export interface HTTPStatsConfig extends ListenerConfig {
  /** Serve HTTPS with this certificate and key. */
  tls?: TlsConfig;
  /**
   * The dashboard, admin API and `/metrics` (when the listener is given the server): basic-auth
   * credentials and which parts to serve. Without credentials they answer loopback callers only.
   */
  dashboard?: ObservabilityOptions;
}

/**
 * Serves the server's info as JSON with Mochi's field names (`bytes_received`,
 * `clients_connected`, ...) at `GET /api/info`, and at `GET /` for clients that do not ask for
 * HTML. `GET /healthcheck` answers 200 too, so one port can serve both. Given the server (third
 * argument), it also serves the live dashboard at `/` for browsers, the admin API under `/api/`
 * and Prometheus metrics at `/metrics` (see `listeners/dashboard/dashboard.ts`). Other methods get
 * 405, other paths 404.
 *
 * @example Stats on a free port
 * ```ts
 * import { HTTPStats } from "./http_stats.ts";
 * import { Info } from "../src/system.ts";
 * const stats = new HTTPStats({ id: "stats", address: "127.0.0.1:0" }, new Info());
 * await stats.init();
 * const response = await fetch(`http://${stats.address}/`);
 * console.log((await response.json()).threads); // 1
 * await stats.close();
 * ```
 */
export class HTTPStats implements Listener {
  /** The listener id. */
  readonly id: string;
  /** `"http"`, or `"https"` with TLS. */
  readonly protocol: string;
  #address: string;
  readonly #info: Info;
  readonly #tls: TlsConfig | undefined;
  readonly #observability: PartialHandler | undefined;
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;

  /**
   * Creates a stats listener.
   *
   * @param config The id, `host:port` address, optional TLS and dashboard options.
   * @param info The server's info (`server.info`).
   * @param server The server, to serve the dashboard, admin API and metrics too.
   */
  constructor(config: HTTPStatsConfig, info: Info, server?: Server) {
    checkHttpTls(config.id, config.tls);
    this.id = config.id;
    this.#address = config.address;
    this.#info = info;
    this.#tls = config.tls;
    this.protocol = config.tls ? "https" : "http";
    this.#observability = server ? observabilityHandler(server, config.dashboard) : undefined;
  }

  /** The configured address, or after `init` the bound `host:port`. */
  get address(): string {
    return this.#address;
  }

  /** Binds the address and starts answering. */
  init(): void {
    const bound = serveHttp(this.id, this.#address, this.#tls, this.#handle);
    this.#server = bound.server;
    this.#address = bound.address;
  }

  /** Nothing to do: HTTP requests are answered from `init` on. */
  serve(): void {}

  /** Stops the HTTP server. */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    await server?.shutdown();
  }

  readonly #handle = async (
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Promise<Response> => {
    const answered = await this.#observability?.(request, info);
    if (answered) return answered;
    const path = new URL(request.url).pathname;
    if (path !== "/" && path !== "/api/info" && path !== "/healthcheck") {
      return new Response("Not Found", { status: 404 });
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("Method Not Allowed", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    if (path === "/healthcheck") return new Response(null, { status: 200 });
    return new Response(JSON.stringify(this.#info, null, 2), {
      headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
    });
  };
}

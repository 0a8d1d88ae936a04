/**
 * An HTTP listener that serves the broker's `$SYS` statistics as JSON and, given the server, the
 * live dashboard, the admin API and Prometheus metrics.
 *
 * @module
 */

import type { Info } from "../system.ts";
import type { Server } from "../server.ts";
import { infoBody, json, type PartialHandler } from "./admin.ts";
import { HttpListener, type HttpListenerConfig, methodNotAllowed } from "../../listeners/http.ts";
import { observabilityHandler, type ObservabilityOptions } from "./dashboard/dashboard.ts";

/** Options for {@linkcode HTTPStats}. */
export interface HTTPStatsConfig extends HttpListenerConfig {
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
 * and Prometheus metrics at `/metrics` (see `src/app/dashboard/dashboard.ts`). Other methods get
 * 405, other paths 404.
 *
 * @example Stats on a free port
 * ```ts
 * import assert from "node:assert/strict";
 * import { HTTPStats } from "./http_stats.ts";
 * import { Info } from "../system.ts";
 *
 * const stats = new HTTPStats({ id: "stats", address: "127.0.0.1:0" }, new Info());
 * await stats.init();
 * const response = await fetch(`http://${stats.address}/`);
 * assert.equal((await response.json()).threads, 1);
 * await stats.close();
 * ```
 */
export class HTTPStats extends HttpListener {
  readonly #info: Info;
  readonly #observability: PartialHandler | undefined;

  /**
   * Creates a stats listener.
   *
   * @param config The id, `host:port` address, optional TLS and dashboard options.
   * @param info The server's info (`server.info`).
   * @param server The server, to serve the dashboard, admin API and metrics too.
   */
  constructor(config: HTTPStatsConfig, info: Info, server?: Server) {
    super(config);
    this.#info = info;
    this.#observability = server ? observabilityHandler(server, config.dashboard) : undefined;
  }

  /**
   * Answers a request: the dashboard's routes first (given the server), then the JSON info.
   *
   * @param request The request.
   * @param info Where it came from.
   * @returns The response.
   */
  protected async handle(request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Promise<Response> {
    const answered = await this.#observability?.(request, info);
    if (answered) return answered;
    const path = new URL(request.url).pathname;
    if (path !== "/" && path !== "/api/info" && path !== "/healthcheck") {
      return new Response("Not Found", { status: 404 });
    }
    const refused = methodNotAllowed(request, ["GET", "HEAD"]);
    if (refused) return refused;
    if (path === "/healthcheck") return new Response(null, { status: 200 });
    return json(infoBody(this.#info));
  }
}

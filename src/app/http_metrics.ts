/**
 * A listener that serves only Prometheus metrics, for those who want them on their own port.
 *
 * @module
 */

import type { Server } from "../server.ts";
import type { MetricsHook } from "../../hooks/metrics.ts";
import { metricsResponse } from "./prometheus.ts";
import { type AccessOptions, checkAccess } from "./admin.ts";
import { HttpListener, type HttpListenerConfig, methodNotAllowed } from "../../listeners/http.ts";

/** Options for {@linkcode Metrics}. */
export interface MetricsConfig extends HttpListenerConfig {
  /** The path to serve; `/metrics` by default. */
  path?: string;
  /** Require HTTP basic auth with these credentials (off by default: metrics are public). */
  auth?: AccessOptions;
  /** The metrics hook; looked up among the server's hooks when omitted. */
  metrics?: MetricsHook;
}

/**
 * Serves `GET /metrics` in the Prometheus text exposition format (see {@linkcode renderMetrics}).
 * Other paths get 404, other methods 405. Add a `MetricsHook` to the server for the detailed
 * counters; without one the `$SYS` totals are served.
 *
 * @example Metrics on a free port
 * ```ts
 * import assert from "node:assert/strict";
 * import { Metrics, MetricsHook, Server } from "../../mod.ts";
 *
 * const server = new Server();
 * await server.addHook(new MetricsHook());
 * const metrics = new Metrics({ id: "prom", address: "127.0.0.1:0" }, server);
 * await server.addListener(metrics);
 * const text = await (await fetch(`http://${metrics.address}/metrics`)).text();
 * assert.match(text, /^# TYPE mqtt_messages_received_total counter$/m);
 * await server.close();
 * ```
 */
export class Metrics extends HttpListener {
  readonly #server: Server;
  readonly #config: MetricsConfig;

  /**
   * Creates a metrics listener.
   *
   * @param config The id, `host:port` address, and optional TLS, path and credentials.
   * @param server The server whose metrics to serve.
   */
  constructor(config: MetricsConfig, server: Server) {
    super(config);
    if (config.path !== undefined && !config.path.startsWith("/")) {
      throw new TypeError(`Listener "${config.id}": the metrics path "${config.path}" must start with "/"`);
    }
    this.#server = server;
    this.#config = config;
  }

  /**
   * Answers a request.
   *
   * @param request The request.
   * @param info Where it came from.
   * @returns The metrics, or 401, 404 or 405.
   */
  protected handle(request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Response {
    const path = new URL(request.url).pathname;
    if (path !== (this.#config.path ?? "/metrics")) return new Response("Not Found", { status: 404 });
    const refused = methodNotAllowed(request, ["GET", "HEAD"]);
    if (refused) return refused;
    const auth = this.#config.auth;
    if (auth?.username !== undefined && auth.password !== undefined) {
      const denied = checkAccess(request, info, auth);
      if (denied) return denied;
    }
    return metricsResponse(this.#server, this.#config.metrics);
  }
}

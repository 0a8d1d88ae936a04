/**
 * A listener that serves only Prometheus metrics, for those who want them on their own port.
 *
 * @module
 */

import type { Listener, ListenerConfig } from "./listener.ts";
import type { TlsConfig } from "./net.ts";
import type { Server } from "../src/server.ts";
import { METRICS_CONTENT_TYPE, type MetricsHook, renderMetrics } from "../src/metrics.ts";
import { type AccessOptions, checkAccess } from "../src/admin.ts";
import { checkHttpTls, serveHttp } from "./http.ts";

/** Options for {@linkcode Metrics}. */
export interface MetricsConfig extends ListenerConfig {
  /** Serve HTTPS with this certificate and key. */
  tls?: TlsConfig;
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
 * import { Metrics, MetricsHook, Server } from "../mod.ts";
 * const server = new Server();
 * await server.addHook(new MetricsHook());
 * const metrics = new Metrics({ id: "prom", address: "127.0.0.1:0" }, server);
 * await server.addListener(metrics);
 * const text = await (await fetch(`http://${metrics.address}/metrics`)).text();
 * console.log(text.includes("# TYPE mqtt_messages_received_total counter")); // true
 * await server.close();
 * ```
 */
export class Metrics implements Listener {
  /** The listener id. */
  readonly id: string;
  /** `"http"`, or `"https"` with TLS. */
  readonly protocol: string;
  #address: string;
  readonly #server: Server;
  readonly #config: MetricsConfig;
  #http: Deno.HttpServer<Deno.NetAddr> | undefined;

  /**
   * Creates a metrics listener.
   *
   * @param config The id, `host:port` address, and optional TLS, path and credentials.
   * @param server The server whose metrics to serve.
   */
  constructor(config: MetricsConfig, server: Server) {
    checkHttpTls(config.id, config.tls);
    if (config.path !== undefined && !config.path.startsWith("/")) {
      throw new TypeError(`Listener "${config.id}": the metrics path "${config.path}" must start with "/"`);
    }
    this.id = config.id;
    this.#address = config.address;
    this.#server = server;
    this.#config = config;
    this.protocol = config.tls ? "https" : "http";
  }

  /** The configured address, or after `init` the bound `host:port`. */
  get address(): string {
    return this.#address;
  }

  /** Binds the address and starts answering. */
  init(): void {
    const bound = serveHttp(this.id, this.#address, this.#config.tls, this.#handle);
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

  readonly #handle = (request: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>): Response => {
    const path = new URL(request.url).pathname;
    if (path !== (this.#config.path ?? "/metrics")) return new Response("Not Found", { status: 404 });
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("Method Not Allowed", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    const auth = this.#config.auth;
    if (auth?.username !== undefined && auth.password !== undefined) {
      const refused = checkAccess(request, info, auth);
      if (refused) return refused;
    }
    return new Response(renderMetrics(this.#server, this.#config.metrics), {
      headers: { "content-type": METRICS_CONTENT_TYPE, "cache-control": "no-store" },
    });
  };
}

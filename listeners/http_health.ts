/**
 * An HTTP health-check listener for load balancers and orchestrators.
 *
 * @module
 */

import type { Listener, ListenerConfig } from "./listener.ts";
import type { TlsConfig } from "./net.ts";
import { checkHttpTls, serveHttp } from "./http.ts";

/** Options for {@linkcode HTTPHealthCheck}. */
export interface HTTPHealthCheckConfig extends ListenerConfig {
  /** Serve HTTPS with this certificate and key. */
  tls?: TlsConfig;
}

/**
 * Answers `GET /healthcheck` with 200 while the broker runs; other methods get 405, other paths 404.
 *
 * @example A health check on a free port
 * ```ts
 * import { HTTPHealthCheck } from "./http_health.ts";
 * const health = new HTTPHealthCheck({ id: "health", address: "127.0.0.1:0" });
 * await health.init();
 * const response = await fetch(`http://${health.address}/healthcheck`);
 * await response.body?.cancel();
 * console.log(response.status); // 200
 * await health.close();
 * ```
 */
export class HTTPHealthCheck implements Listener {
  /** The listener id. */
  readonly id: string;
  /** `"http"`, or `"https"` with TLS. */
  readonly protocol: string;
  #address: string;
  readonly #tls: TlsConfig | undefined;
  #server: Deno.HttpServer<Deno.NetAddr> | undefined;

  /**
   * Creates a health-check listener.
   *
   * @param config The id, `host:port` address and optional TLS.
   */
  constructor(config: HTTPHealthCheckConfig) {
    checkHttpTls(config.id, config.tls);
    this.id = config.id;
    this.#address = config.address;
    this.#tls = config.tls;
    this.protocol = config.tls ? "https" : "http";
  }

  /** The configured address, or after `init` the bound `host:port`. */
  get address(): string {
    return this.#address;
  }

  /** Binds the address and starts answering. */
  init(): void {
    const bound = serveHttp(this.id, this.#address, this.#tls, (request) => {
      if (new URL(request.url).pathname !== "/healthcheck") return new Response("Not Found", { status: 404 });
      if (request.method !== "GET") {
        return new Response("Method Not Allowed", { status: 405, headers: { allow: "GET" } });
      }
      return new Response(null, { status: 200 });
    });
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
}

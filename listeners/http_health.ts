/**
 * An HTTP health-check listener for load balancers and orchestrators.
 *
 * @module
 */

import { HttpListener, type HttpListenerConfig, methodNotAllowed } from "./http.ts";

/** Options for {@linkcode HTTPHealthCheck}. */
export type HTTPHealthCheckConfig = HttpListenerConfig;

/**
 * Answers `GET /healthcheck` with 200 while the broker runs; other methods get 405, other paths 404.
 *
 * @example A health check on a free port
 * ```ts
 * import assert from "node:assert/strict";
 * import { HTTPHealthCheck } from "./http_health.ts";
 *
 * const health = new HTTPHealthCheck({ id: "health", address: "127.0.0.1:0" });
 * await health.init();
 * const response = await fetch(`http://${health.address}/healthcheck`);
 * await response.body?.cancel();
 * assert.equal(response.status, 200);
 * await health.close();
 * ```
 */
export class HTTPHealthCheck extends HttpListener {
  /**
   * Answers a request.
   *
   * @param request The request.
   * @returns 200, 404 or 405.
   */
  protected handle(request: Request): Response {
    if (new URL(request.url).pathname !== "/healthcheck") return new Response("Not Found", { status: 404 });
    return methodNotAllowed(request, ["GET"]) ?? new Response(null, { status: 200 });
  }
}

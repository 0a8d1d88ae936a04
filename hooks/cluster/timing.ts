/**
 * Waiting, for the cluster's modules: a pause, and a wait with a bound.
 *
 * @module
 */

/**
 * Resolves after `ms` milliseconds.
 *
 * @example
 * ```ts
 * import { delay } from "./timing.ts";
 * await delay(1);
 * ```
 */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Waits for a promise (fulfilled or rejected), at most `ms`.
 *
 * @returns Whether it settled in time.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { settlesWithin } from "./timing.ts";
 * assert.equal(await settlesWithin(Promise.resolve(), 10), true);
 * assert.equal(await settlesWithin(new Promise(() => {}), 1), false);
 * ```
 */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<boolean>((resolve) => timer = setTimeout(resolve, ms, false));
  const settled = await Promise.race([promise.then(() => true, () => true), timeout]);
  clearTimeout(timer);
  return settled;
}

/** The environment variable of {@linkcode routeAnnouncementDelay} (tests only). */
export const ROUTE_DELAY_ENV = "BROKER_TEST_ROUTE_ANNOUNCEMENT_DELAY_MS";

/**
 * **For tests only**: how long this process waits before it applies another node's route announcement
 * (ms; 0, the default, applies it at once). Set by the environment variable
 * {@linkcode ROUTE_DELAY_ENV}, read only when the process may read it (no permission prompt), to
 * stand for a node whose event loop is busy or whose announcements connection lags: the tests show
 * that a session moving between other nodes loses nothing while such a node publishes
 * (`tests/cluster/route_barrier_test.ts`). Never set it in production.
 *
 * @returns The delay in ms.
 *
 * @example Unset
 * ```ts
 * import assert from "node:assert/strict";
 * import { routeAnnouncementDelay } from "./timing.ts";
 * assert.equal(typeof routeAnnouncementDelay(), "number");
 * ```
 */
export function routeAnnouncementDelay(): number {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: ROUTE_DELAY_ENV }).state !== "granted") return 0;
    const ms = Number(Deno.env.get(ROUTE_DELAY_ENV) ?? 0);
    return Number.isFinite(ms) && ms > 0 ? ms : 0;
  } catch {
    return 0;
  }
}

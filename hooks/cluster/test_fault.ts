/**
 * Faults for tests only, each set by an environment variable that is read only when the process may read
 * it (no permission prompt), and unset as always outside tests:
 *
 * - `BROKER_TEST_DIE_BEFORE_FORWARD` ({@linkcode diesBefore}): set to some text, the node never sends the
 *   first commit whose forwards hold that text's bytes, and kills itself (SIGKILL) 300 ms later, while its
 *   other writes (its session store's) go on meanwhile. The tests kill a node so at a chosen point
 *   (`tests/cluster/atomic_handoff_test.ts`: a will, or a message a shared group's member gives back,
 *   forwarded). Read once, at start; unset, it costs one comparison per commit.
 * - `BROKER_TEST_ROUTE_ANNOUNCEMENT_DELAY_MS` ({@linkcode routeAnnouncementDelay}): a node slow to apply
 *   other nodes' route announcements.
 *
 * @module
 */

import type { Batch } from "./bus.ts";

const NAME = "BROKER_TEST_DIE_BEFORE_FORWARD";

/** The bytes that make the node die, or undefined (always, outside tests). */
const marker: Uint8Array | undefined = (() => {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: NAME }).state !== "granted") return undefined;
    const text = Deno.env.get(NAME);
    return text ? new TextEncoder().encode(text) : undefined;
  } catch {
    return undefined;
  }
})();

/**
 * Whether the test fault is set and `batch` is the commit it is waiting for; if so, the node dies soon and
 * the batch must not be sent.
 *
 * @param batch A batch about to be sent.
 * @returns True when the node is about to die instead.
 */
export function diesBefore(batch: Batch): boolean {
  if (marker === undefined) return false;
  for (const records of batch.forwards.values()) {
    if (!holds(records, marker)) continue;
    console.error(`${NAME}: a commit forwards "${new TextDecoder().decode(marker)}": SIGKILL in 300 ms`);
    setTimeout(() => Deno.kill(Deno.pid, "SIGKILL"), 300);
    return true;
  }
  return false;
}

function holds(bytes: Uint8Array, part: Uint8Array): boolean {
  outer: for (let i = 0; i + part.length <= bytes.length; i++) {
    for (let j = 0; j < part.length; j++) if (bytes[i + j] !== part[j]) continue outer;
    return true;
  }
  return false;
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
 * import { routeAnnouncementDelay } from "./test_fault.ts";
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

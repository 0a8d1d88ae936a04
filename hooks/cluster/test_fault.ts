/**
 * A fault for tests only: a node started with the environment variable `BROKER_TEST_DIE_BEFORE_FORWARD` set
 * to some text never sends the first commit whose forwards hold that text's bytes, and kills itself (SIGKILL)
 * 300 ms later, while its other writes (its session store's) go on meanwhile. The tests kill a node so at a
 * chosen point (`tests/cluster/atomic_handoff_test.ts`: a will, or a message a shared group's member gives
 * back, forwarded). Read here once, at start; unset, as always outside tests, it costs one comparison per
 * commit. Without the permission to read it (`--allow-env`), it is unset.
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

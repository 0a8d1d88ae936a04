/**
 * The storage suite on {@linkcode MemoryHook}, the reference backend.
 *
 * @module
 */

import { MemoryHook, MemoryStore } from "../../hooks/storage/memory.ts";
import { runStorageSuite } from "./suite.ts";

Deno.test("MemoryHook passes the storage suite", async (t) => {
  await runStorageSuite(t, () => {
    const store = new MemoryStore();
    return Promise.resolve({
      hook: () => new MemoryHook({ store }),
      backend: () => store,
      close: () => Promise.resolve(),
    });
  });
});

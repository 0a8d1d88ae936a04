/**
 * Mochi's file-based stores in a config file (`hooks.storage.badger`, `pebble`, `bolt`): their
 * schema, and their replacement by the Deno KV store at the same path.
 *
 * @module
 */

const PATH = { kind: "string", nonEmpty: true } as const;
const ANY = { kind: "any" } as const;

/** Mochi's file-based storage hooks, each replaced by Deno KV. */
export const MOCHI_STORES: readonly string[] = ["badger", "pebble", "bolt"];

/** The keys each Mochi store takes (Mochi's own names); `path` is required. */
export const MOCHI_STORE_SCHEMAS = {
  badger: {
    kind: "map",
    required: ["path"],
    fields: {
      path: PATH,
      gc_interval: { kind: "int", min: 0, max: Number.MAX_SAFE_INTEGER },
      gc_discard_ratio: { kind: "number", min: 0, max: 1 },
      options: ANY,
    },
  },
  pebble: {
    kind: "map",
    required: ["path"],
    fields: { path: PATH, mode: { kind: "string", values: ["sync", "nosync"] }, options: ANY },
  },
  bolt: { kind: "map", required: ["path"], fields: { path: PATH, bucket: PATH, options: ANY } },
} as const;

const NAMES: Record<string, string> = { badger: "Badger", pebble: "Pebble", bolt: "Bolt" };

/**
 * Where the Deno KV store that replaces a Mochi store goes, and the warning that says so.
 *
 * @param name `badger`, `pebble` or `bolt`.
 * @param store The store's validated keys.
 * @param resolve Resolves a path relative to the config file.
 * @returns The KV path (inside the folder when one exists there) and the change, in words.
 */
export function mochiStoreAsKv(
  name: string,
  store: Record<string, unknown>,
  resolve: (path: string) => string,
): { path: string; change: string } {
  let path = resolve(store.path as string);
  let inside = "";
  try {
    if (Deno.statSync(path).isDirectory) {
      // Badger and Pebble keep a folder of files there; Deno KV is one file, so it goes inside.
      path = `${path.replace(/\/+$/, "")}/broker.kv`;
      inside = " (inside the existing folder)";
    }
  } catch {
    // Nothing there yet: Deno KV creates its file at that path.
  }
  const tuning = Object.keys(store).filter((key) => key !== "path");
  const change = `Mochi's ${NAMES[name]} store is replaced by Deno KV at ${path}${inside}; ` +
    `a new, empty store: the ${NAMES[name]} data is not read` +
    (tuning.length > 0 ? `; ${tuning.join(", ")} ha${tuning.length > 1 ? "ve" : "s"} no effect` : "");
  return { path, change };
}

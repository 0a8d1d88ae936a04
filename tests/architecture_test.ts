/**
 * The structure, tested: every module's imports (type-only ones included) follow the layers, no
 * import cycle exists, and no source file grows past 800 lines.
 *
 * Layers, from the bottom: the codec (`src/packets/`, zero dependencies), the core (`src/`, which
 * imports nothing outside `src/`), the plugins (`hooks/`, `listeners/`), the application (`src/app/`),
 * and the entry points (`mod.ts`). A module imports only from its own layer or below.
 */

import assert from "node:assert/strict";
import { ROOT } from "./helpers.ts";

/** The layers, bottom first. */
const LAYERS = ["codec", "core", "plugin", "application", "entry"] as const;
type Layer = typeof LAYERS[number];

/** The folders whose modules make up the package. */
const PACKAGE_DIRS = ["src", "hooks", "listeners"];
const MAX_LINES = 800;

/** The layer of a module, by its path relative to the repository root. */
function layerOf(path: string): Layer {
  if (path === "mod.ts") return "entry";
  if (path.startsWith("src/packets/")) return "codec";
  if (path.startsWith("src/app/")) return "application";
  if (path.startsWith("src/")) return "core";
  return "plugin";
}

/** A module and what it imports: repository paths for relative imports, the specifier otherwise. */
interface ModuleImports {
  path: string;
  relative: string[];
  packages: string[];
}

/**
 * The import specifiers of a module's code: static imports and re-exports (type-only ones too) and
 * dynamic imports, with comments (and so doc examples) removed first.
 */
export function importSpecifiers(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "");
  const specifiers: string[] = [];
  const patterns = [
    /(?:^|[;\n])\s*(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?["']([^"']+)["']/g,
    /\bimport\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const pattern of patterns) {
    for (const match of code.matchAll(pattern)) specifiers.push(match[1]);
  }
  return specifiers;
}

function resolve(from: string, specifier: string): string {
  const parts = from.split("/").slice(0, -1);
  for (const part of specifier.split("/")) {
    if (part === "..") parts.pop();
    else if (part !== ".") parts.push(part);
  }
  return parts.join("/");
}

async function packageModules(): Promise<ModuleImports[]> {
  const paths = ["mod.ts"];
  async function walk(dir: string): Promise<void> {
    for await (const entry of Deno.readDir(`${ROOT}${dir}`)) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) await walk(path);
      else if (entry.name.endsWith(".ts")) paths.push(path);
    }
  }
  for (const dir of PACKAGE_DIRS) await walk(dir);
  const modules: ModuleImports[] = [];
  for (const path of paths.sort()) {
    const specifiers = importSpecifiers(await Deno.readTextFile(`${ROOT}${path}`));
    modules.push({
      path,
      relative: specifiers.filter((s) => s.startsWith(".")).map((s) => resolve(path, s)),
      packages: specifiers.filter((s) => !s.startsWith(".")),
    });
  }
  return modules;
}

/**
 * Every import that goes against the layers: upwards, out of the package, or (for the codec) to any
 * package at all; the core may use only `node:` built-ins and the logging library.
 */
export function layerViolations(modules: ModuleImports[]): string[] {
  const violations: string[] = [];
  for (const { path, relative, packages } of modules) {
    const layer = layerOf(path);
    for (const target of relative) {
      if (!PACKAGE_DIRS.some((dir) => target.startsWith(`${dir}/`))) {
        violations.push(`${path} (${layer}) imports ${target}, outside the package`);
        continue;
      }
      const targetLayer = layerOf(target);
      if (LAYERS.indexOf(targetLayer) > LAYERS.indexOf(layer)) {
        violations.push(`${path} (${layer}) imports ${target} (${targetLayer})`);
      }
    }
    for (const specifier of packages) {
      const allowed = layer === "codec"
        ? false
        : layer === "core"
        ? specifier.startsWith("node:") || specifier === "@logtape/logtape"
        : true;
      if (!allowed) violations.push(`${path} (${layer}) imports the package ${specifier}`);
    }
  }
  return violations;
}

/** Every import cycle, as the list of modules in it (strongly connected components of size > 1). */
export function importCycles(modules: ModuleImports[]): string[][] {
  const edges = new Map(modules.map((m) => [m.path, m.relative.filter((t) => t !== m.path)]));
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let next = 0;
  const visit = (node: string): void => {
    index.set(node, next);
    low.set(node, next++);
    stack.push(node);
    onStack.add(node);
    for (const target of edges.get(node) ?? []) {
      if (!index.has(target)) {
        visit(target);
        low.set(node, Math.min(low.get(node)!, low.get(target)!));
      } else if (onStack.has(target)) {
        low.set(node, Math.min(low.get(node)!, index.get(target)!));
      }
    }
    if (low.get(node) === index.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1) cycles.push(component.sort());
    }
  };
  for (const node of edges.keys()) if (!index.has(node)) visit(node);
  return cycles;
}

Deno.test("architecture: every import follows the layers codec < core < plugins < application < entry", async () => {
  const modules = await packageModules();
  assert(modules.length > 50, `found only ${modules.length} modules`);
  assert.deepEqual(layerViolations(modules), []);
});

Deno.test("architecture: no import cycles, type-only imports included", async () => {
  assert.deepEqual(importCycles(await packageModules()), []);
});

Deno.test("architecture: no source file is longer than 800 lines", async () => {
  const long: string[] = [];
  for (const { path } of await packageModules()) {
    const lines = (await Deno.readTextFile(`${ROOT}${path}`)).split("\n").length;
    if (lines > MAX_LINES) long.push(`${path}: ${lines} lines`);
  }
  assert.deepEqual(long, []);
});

Deno.test("architecture: the checks catch an upward import, a dependency in the codec and a cycle", () => {
  const modules: ModuleImports[] = [
    { path: "src/server.ts", relative: ["listeners/tcp.ts", "src/client.ts"], packages: [] },
    { path: "src/client.ts", relative: ["src/server.ts"], packages: [] },
    { path: "src/packets/codec.ts", relative: [], packages: ["npm:yaml"] },
    { path: "listeners/tcp.ts", relative: ["src/app/cli.ts"], packages: ["node:tls"] },
  ];
  assert.deepEqual(layerViolations(modules), [
    "src/server.ts (core) imports listeners/tcp.ts (plugin)",
    "src/packets/codec.ts (codec) imports the package npm:yaml",
    "listeners/tcp.ts (plugin) imports src/app/cli.ts (application)",
  ]);
  assert.deepEqual(importCycles(modules), [["src/client.ts", "src/server.ts"]]);
});

Deno.test("architecture: import specifiers are read from code, not from doc examples", () => {
  const source = [
    "/**",
    ' * import { Server } from "../mod.ts";',
    " */",
    'import type { Packet } from "./packets/types.ts";',
    'export { Client } from "./client.ts";',
    'export * from "./topics.ts";',
    'const lazy = await import("./lazy.ts");',
    '// import { x } from "./commented.ts";',
  ].join("\n");
  const specifiers = importSpecifiers(source);
  assert.deepEqual(specifiers, ["./packets/types.ts", "./client.ts", "./topics.ts", "./lazy.ts"]);
  assert.match(specifiers.join(","), /lazy/);
});

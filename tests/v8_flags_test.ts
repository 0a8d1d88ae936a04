/**
 * The V8 flags of the broker's launchers (src/app/v8_flags.ts): every launcher passes the same, the
 * `--workers` children get their parent's, and the semi-space cap takes effect in this Deno.
 *
 * @module
 */

import assert from "node:assert/strict";
import { BROKER_V8_FLAGS, v8FlagsMissing } from "../src/app/v8_flags.ts";
import { ROOT } from "./helpers.ts";

const FLAG = `--v8-flags=${BROKER_V8_FLAGS}`;

Deno.test("v8_flags: deno task start, deno task compile and the Dockerfile pass the broker's V8 flags", () => {
  const tasks = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks;
  assert.ok(tasks.start.split(" ").includes(FLAG), `start task: ${tasks.start}`);
  assert.ok(tasks.compile.split(" ").includes(FLAG), `compile task: ${tasks.compile}`);
  const entry = Deno.readTextFileSync(`${ROOT}Dockerfile`).split("\n").find((l) =>
    l.startsWith("ENTRYPOINT ")
  );
  assert.ok(entry?.includes(`"${FLAG}"`), `Dockerfile: ${entry}`);
});

/** Runs a script that prints what the module sees, with these Deno flags and environment. */
async function childView(denoFlags: string[], env: Record<string, string> = {}): Promise<{
  own: string[];
  child: string[];
  missing: boolean;
  newSpaceKiB: number;
}> {
  const module = new URL("../src/app/v8_flags.ts", import.meta.url).href;
  const script = `
    import v8 from "node:v8";
    import { childV8FlagArgs, ownV8FlagArgs, v8FlagsMissing } from "${module}";
    // Objects that all survive, as a connect storm's do: the young generation grows to its cap.
    const kept = [];
    for (let i = 0; i < 100000; i++) kept.push({ i, s: "x" + i, a: [i, i] });
    const space = v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space");
    console.log(JSON.stringify({
      own: ownV8FlagArgs(), child: childV8FlagArgs(), missing: v8FlagsMissing(import.meta.url),
      newSpaceKiB: space.space_size / 1024, n: kept.length,
    }));`;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", ...denoFlags, script],
    env: { NO_COLOR: "1", ...env },
    clearEnv: true,
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  return JSON.parse(new TextDecoder().decode(stdout));
}

Deno.test("v8_flags: a worker gets its parent's --v8-flags, else the broker's unless DENO_V8_FLAGS is set", async () => {
  const withFlag = await childView([FLAG]);
  assert.deepEqual(withFlag.own, [FLAG]);
  assert.deepEqual(withFlag.child, [FLAG]);
  const other = await childView(["--v8-flags=--max-semi-space-size=4"]);
  assert.deepEqual(other.child, ["--v8-flags=--max-semi-space-size=4"]);
  const none = await childView([]);
  assert.deepEqual(none.own, []);
  assert.deepEqual(none.child, [FLAG]);
  const fromEnv = await childView([], { DENO_V8_FLAGS: "--max-semi-space-size=8" });
  assert.deepEqual(fromEnv.child, [], "the child inherits DENO_V8_FLAGS");
  // The CLI's start-up hint: only when the flags are known to be missing.
  assert.deepEqual([none.missing, withFlag.missing, fromEnv.missing], [true, false, false]);
  // The cap holds in this Deno: the young generation stays within two 2 MiB semi-spaces.
  assert.ok(withFlag.newSpaceKiB <= 4096, `new space ${withFlag.newSpaceKiB} KiB with ${FLAG}`);
  assert.ok(none.newSpaceKiB > withFlag.newSpaceKiB, `new space ${none.newSpaceKiB} KiB without`);
});

Deno.test("v8_flags: a compiled binary (flags built in, not on its command line) gets no hint", () => {
  assert.equal(v8FlagsMissing("file:///tmp/deno-compile-broker/src/app/cli.ts"), false);
});

/**
 * The V8 flags the broker's launchers pass (`deno task start`, `deno task compile`, the Dockerfile,
 * and the `--workers` children), in one place so that they agree (a test checks them).
 *
 * `--max-semi-space-size=2` caps each of V8's young-generation semi-spaces at 2 MiB. A connect storm
 * keeps every connection's objects alive, so without the cap the young generation grows to its
 * maximum and stays there: about 3 KiB of committed but unused heap per idle connection at 10,000
 * connections (bench/README.md, issue 14). Deno applies V8 flags only at start-up (`node:v8`'s
 * `setFlagsFromString` has no effect in Deno 2.9.6), so the program cannot set them itself: a
 * `deno run -A jsr:@x/broker/cli` user adds `--v8-flags=--max-semi-space-size=2`, or sets
 * `DENO_V8_FLAGS`; the CLI tells them so at start ({@linkcode v8FlagsMissing}).
 *
 * @module
 */

/** The flags, as `--v8-flags=` takes them (comma-separated). */
export const BROKER_V8_FLAGS = "--max-semi-space-size=2";

/**
 * The `--v8-flags=...` arguments this process was started with, read from `/proc/self/cmdline`
 * (Linux); empty elsewhere, or when there were none or they cannot be read.
 *
 * @returns The arguments, as given.
 */
export function ownV8FlagArgs(): string[] {
  let cmdline: string;
  try {
    cmdline = Deno.readTextFileSync("/proc/self/cmdline");
  } catch {
    return [];
  }
  const flags: string[] = [];
  for (const arg of cmdline.split("\0")) {
    if (arg.startsWith("--v8-flags=")) flags.push(arg);
    else if (!arg.startsWith("-") && flags.length > 0) break; // the script: its own arguments follow
  }
  return flags;
}

/**
 * The V8 flag arguments for a child `deno run` of the broker: this process's own, or, when it had
 * none, {@linkcode BROKER_V8_FLAGS} unless `DENO_V8_FLAGS` (which the child inherits) says otherwise.
 *
 * @returns `--v8-flags=...` arguments, maybe none.
 */
export function childV8FlagArgs(): string[] {
  const own = ownV8FlagArgs();
  if (own.length > 0) return own;
  let inherited: string | undefined;
  try {
    inherited = Deno.env.get("DENO_V8_FLAGS");
  } catch {
    // no --allow-env: the child inherits whatever is set
    return [];
  }
  return inherited ? [] : [`--v8-flags=${BROKER_V8_FLAGS}`];
}

/**
 * Whether this process provably runs without V8 flags: Linux (where `/proc/self/cmdline` tells), a
 * `deno run` (a compiled binary's flags are built in and not on its command line), no `--v8-flags`
 * and no `DENO_V8_FLAGS`. The CLI then says how to save memory per connection.
 *
 * @param moduleUrl The URL of a module of the program (a compiled binary's are under `/deno-compile-`).
 * @returns True when the flags are known to be missing.
 */
export function v8FlagsMissing(moduleUrl: string): boolean {
  if (moduleUrl.includes("/deno-compile-")) return false;
  try {
    if (Deno.env.get("DENO_V8_FLAGS")) return false;
    Deno.statSync("/proc/self/cmdline");
  } catch {
    return false; // no permission, or not Linux: cannot tell
  }
  return ownV8FlagArgs().length === 0;
}

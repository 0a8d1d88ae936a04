/**
 * Summarizes a V8 `.cpuprofile` (from `deno run --cpu-prof`, e.g. `deno task bench --cpu-prof DIR`):
 * the functions with the most self time, as a table.
 *
 * ```sh
 * deno run -A bench/cpuprofile.ts /tmp/prof/*.cpuprofile [--top 25] [--burst N]
 * ```
 *
 * `--burst N` counts only the Nth burst of work (bursts are separated by half a second idle; the
 * start-up is the first): in the `connections` scenario, 2 is the connect storm and 3 the shutdown.
 *
 * @module
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * Self time per function (name, file, line), in microseconds, largest first.
 *
 * @param profile A parsed `.cpuprofile`.
 * @param burst Only the Nth burst of work (1-based; bursts end after half a second idle); 0 for all.
 * @returns `[label, microseconds]` pairs and the total.
 */
export function selfTimes(profile: Profile, burst = 0): { rows: [string, number][]; total: number } {
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) byId.set(node.id, node);
  const times = new Map<string, number>();
  let total = 0;
  let bursts = 0;
  let idleFor = Infinity;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]);
    const delta = profile.timeDeltas[i] ?? 0;
    if (!node || delta < 0) continue;
    const frame = node.callFrame;
    if (burst > 0) {
      const idle = frame.functionName === "(idle)" || frame.functionName === "(program)";
      if (!idle && idleFor >= 500_000) bursts++;
      idleFor = idle ? idleFor + delta : 0;
      if (bursts !== burst || idleFor >= 500_000) continue;
    }
    const file = frame.url ? frame.url.replace(/^.*\/(src|listeners|hooks|node_modules|ext)\//, "$1/") : "";
    const label = file
      ? `${frame.functionName || "(anonymous)"} ${file}:${frame.lineNumber + 1}`
      : frame.functionName || "(anonymous)";
    times.set(label, (times.get(label) ?? 0) + delta);
    total += delta;
  }
  return { rows: [...times].sort((a, b) => b[1] - a[1]), total };
}

if (import.meta.main) {
  const args = [...Deno.args];
  const topAt = args.indexOf("--top");
  const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 25;
  const burstAt = args.indexOf("--burst");
  const burst = burstAt >= 0 ? Number(args.splice(burstAt, 2)[1]) : 0;
  if (args.length === 0) {
    console.error("Usage: deno run -A bench/cpuprofile.ts FILE.cpuprofile... [--top N] [--burst N]");
    Deno.exit(2);
  }
  for (const file of args) {
    const { rows, total } = selfTimes(JSON.parse(Deno.readTextFileSync(file)), burst);
    const idle = rows.filter(([label]) => label === "(idle)").reduce((a, [, t]) => a + t, 0);
    const busy = total - idle;
    console.log(`\n${file}: ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s not idle\n`);
    console.log("| self ms | % of busy | function |");
    console.log("| ------: | --------: | -------- |");
    for (const [label, time] of rows.filter(([l]) => l !== "(idle)").slice(0, top)) {
      console.log(`| ${(time / 1000).toFixed(1)} | ${(time / busy * 100).toFixed(1)} | \`${label}\` |`);
    }
  }
}

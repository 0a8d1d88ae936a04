/**
 * The Docker image's recipe and a fresh copy's install. Docker Hub is not reachable here, so the
 * image is not built: these tests check the Dockerfile's text for Deno's image guidance and run its
 * install step in a temporary folder holding only what the Dockerfile copies.
 *
 * @module
 */

import assert from "node:assert/strict";
import { parseConfig } from "../src/app/config.ts";
import { ROOT } from "./helpers.ts";

const DOCKERFILE = await Deno.readTextFile(`${ROOT}Dockerfile`);
/** The Dockerfile's instructions, comments dropped and continuation lines joined. */
const INSTRUCTIONS = DOCKERFILE.split("\n").filter((line) => !line.trimStart().startsWith("#")).join("\n")
  .replace(/\\\n\s*/g, " ").split("\n").map((line) => line.trim()).filter((line) => line !== "");

/** The packages the published package depends on: its import map's npm packages. */
async function packageDependencies(): Promise<string[]> {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  return Object.values(config.imports as Record<string, string>)
    .map((specifier) => /^npm:((?:@[^/]+\/)?[^@]+)/.exec(specifier)?.[1])
    .filter((name): name is string => name !== undefined).sort();
}

/** The npm packages only the tests, benchmarks and browser checks use. */
const TEST_ONLY = ["mqtt", "playwright-core"];

async function directorySize(path: string): Promise<number> {
  let total = 0;
  for await (const entry of Deno.readDir(path)) {
    const full = `${path}/${entry.name}`;
    if (entry.isDirectory) total += await directorySize(full);
    else if (entry.isFile) total += (await Deno.stat(full)).size;
  }
  return total;
}

Deno.test("Dockerfile switches to the unprivileged user before it caches anything", () => {
  const user = INSTRUCTIONS.findIndex((line) => /^USER deno$/.test(line));
  const install = INSTRUCTIONS.findIndex((line) => /^RUN deno install /.test(line));
  const firstCopy = INSTRUCTIONS.findIndex((line) => line.startsWith("COPY "));
  assert.ok(user > 0, "a USER deno instruction");
  assert.ok(install > user, "deno install runs as the deno user");
  assert.ok(firstCopy > user, "files are copied after the switch");
  for (const copy of INSTRUCTIONS.filter((line) => line.startsWith("COPY "))) {
    assert.match(copy, /--chown=deno:deno/, `${copy} hands the files to the deno user`);
  }
  // The folders it writes to are made and handed over before the switch.
  assert.ok(
    INSTRUCTIONS.slice(0, user).some((line) => /chown deno:deno .*\/app/.test(line) && /\/data/.test(line)),
    "/app and /data belong to deno",
  );
});

Deno.test("Dockerfile keeps the data in a volume, checks its health and allows Deno KV", () => {
  assert.ok(INSTRUCTIONS.some((line) => /^VOLUME \["\/data"\]$/.test(line)), "a /data volume");
  assert.ok(!INSTRUCTIONS.some((line) => /^VOLUME .*\/config/.test(line)), "config is a mount, not a volume");
  const health = INSTRUCTIONS.find((line) => line.startsWith("HEALTHCHECK "));
  assert.ok(health, "a HEALTHCHECK");
  assert.match(health, /CMD \["deno", "eval"/);
  assert.match(health, /HEALTHCHECK_URL/);
  assert.ok(
    INSTRUCTIONS.some((line) => line === "ENV HEALTHCHECK_URL=http://127.0.0.1:8080/healthcheck"),
    "the health check asks /healthcheck on the stats port",
  );
  const entry = INSTRUCTIONS.find((line) => line.startsWith("ENTRYPOINT "));
  assert.ok(entry?.includes('"--unstable-kv"'), "Deno KV is available");
  assert.match(INSTRUCTIONS.find((line) => line.startsWith("CMD "))!, /"\/config\/config.yaml"/);
});

Deno.test("Dockerfile's example config keeps Deno KV in the /data volume and serves the health check", () => {
  const config = parseConfig(
    Deno.readTextFileSync(`${ROOT}examples/docker/config.yaml`),
    "/config/config.yaml",
  );
  assert.equal(config.hooks.storage?.kv?.path, "/data/broker.kv");
  assert.ok(
    config.listeners.some((l) => (l.type === "sysinfo" || l.type === "healthcheck") && l.address === ":8080"),
    "a listener on 8080 answers /healthcheck",
  );
});

Deno.test("a fresh copy's `deno install --entrypoint src/app/cli.ts` installs no test-only package", async () => {
  const dir = await Deno.makeTempDir({ prefix: "broker-install-" });
  try {
    // Copy what the Dockerfile copies, and run its install step.
    const copies = INSTRUCTIONS.filter((line) => line.startsWith("COPY "));
    assert.ok(copies.length > 0);
    for (const copy of copies) {
      const sources = copy.split(/\s+/).slice(1).filter((word) => !word.startsWith("--")).slice(0, -1);
      for (const source of sources) {
        const from = `${ROOT}${source.replace(/\/$/, "")}`;
        const to = `${dir}/${source.replace(/\/$/, "")}`;
        const { code } = await new Deno.Command("cp", { args: ["-r", from, to] }).output();
        assert.equal(code, 0, `cp ${source}`);
      }
    }
    const install = INSTRUCTIONS.find((line) => line.startsWith("RUN deno install "))!;
    const args = install.split(/\s+/).slice(2);
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args,
      cwd: dir,
      env: { NO_COLOR: "1" },
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    const installed: string[] = [];
    for await (const entry of Deno.readDir(`${dir}/node_modules`)) {
      if (entry.name === ".deno" || entry.name === ".bin") continue;
      if (entry.name.startsWith("@")) {
        for await (const scoped of Deno.readDir(`${dir}/node_modules/${entry.name}`)) {
          installed.push(`${entry.name}/${scoped.name}`);
        }
      } else installed.push(entry.name);
    }
    assert.deepEqual(installed.sort(), await packageDependencies());
    const everything: string[] = [];
    for await (const entry of Deno.readDir(`${dir}/node_modules/.deno`)) everything.push(entry.name);
    for (const name of TEST_ONLY) {
      assert.ok(!everything.some((e) => e.startsWith(`${name}@`)), `${name} is not installed`);
    }
    // The README states the size: keep it honest.
    const megabytes = await directorySize(`${dir}/node_modules`) / 1e6;
    assert.ok(megabytes < 8, `the install is ${megabytes.toFixed(1)} MB; the README says under 8 MB`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno.lock holds no test-only package (tests use tests/deno.lock)", async () => {
  const lock = await Deno.readTextFile(`${ROOT}deno.lock`);
  for (const name of TEST_ONLY) {
    assert.ok(
      !lock.includes(`"npm:${name}@`) && !lock.includes(`"${name}@`),
      `deno.lock mentions ${name}: a test ran without --lock=tests/deno.lock. ` +
        "Restore deno.lock (git checkout deno.lock) and run tests through deno task, or pass that flag.",
    );
  }
});

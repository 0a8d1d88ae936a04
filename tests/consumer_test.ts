/**
 * The package as a JSR user's Deno runs it: from a temporary folder, with `--no-config`, and only
 * the package's own import map (jsr.io is not reachable here, so `jsr:@x/broker` is this checkout).
 * A published package's `"unstable": ["kv"]` does not travel with it, so these runs have Deno KV
 * only when the command says `--unstable-kv`. The commands and the library program are the
 * README's own, read from it.
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "./mqtt.ts";
import { freePort, ROOT, waitFor } from "./helpers.ts";

const README = await Deno.readTextFile(`${ROOT}README.md`);

/** The README's section "Use it from JSR" and "Use it as a library". */
function section(title: string): string {
  const start = README.indexOf(`## ${title}\n`);
  assert.ok(start >= 0, `README section ${title}`);
  const end = README.indexOf("\n## ", start + 1);
  return README.slice(start, end < 0 ? undefined : end);
}

/** The README's `deno run` commands for JSR users, comments dropped. */
function jsrCommands(): string[] {
  return [...section("Use it from JSR").matchAll(/```sh\n([\s\S]*?)```/g)]
    .flatMap((block) => block[1].split("\n"))
    .map((line) => line.replace(/#.*$/, "").trim())
    .filter((line) => line.startsWith("deno run "));
}

/** A consumer's folder with an import map holding the package's own imports (and the package). */
async function consumerFolder(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "broker-consumer-" });
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const imports: Record<string, string> = { ...config.imports };
  // What `deno add jsr:@x/broker` maps, pointed at this checkout's exports.
  for (const [name, path] of Object.entries(config.exports as Record<string, string>)) {
    imports[`@x/broker${name.slice(1)}`] = new URL(path, `file://${ROOT}`).href;
  }
  await Deno.writeTextFile(`${dir}/import_map.json`, JSON.stringify({ imports }, null, 2));
  return dir;
}

/**
 * Turns a README command into the consumer's run: `jsr:@x/broker/cli` becomes this checkout's
 * file, and `--no-config --import-map` stand for JSR's own resolution.
 */
function consumerArgs(command: string, dir: string): string[] {
  const words = command.split(/\s+/);
  assert.equal(words[0], "deno");
  assert.equal(words[1], "run");
  const args = words.slice(2).map((word) =>
    word === "jsr:@x/broker/cli" ? new URL("src/app/cli.ts", `file://${ROOT}`).pathname : word
  );
  return ["run", "--no-config", `--import-map=${dir}/import_map.json`, ...args];
}

interface Running {
  output(): string;
  status: Promise<Deno.CommandStatus>;
  stop(signal: Deno.Signal): Promise<Deno.CommandStatus>;
}

function spawn(args: string[], cwd: string): Running {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let text = "";
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
  };
  const reading = Promise.all([read(child.stdout), read(child.stderr)]);
  const status = child.status.then(async (s) => {
    await reading;
    return s;
  });
  let done = false;
  status.then(() => done = true);
  return {
    output: () => text,
    status,
    async stop(signal) {
      if (!done) child.kill(signal);
      return await status;
    },
  };
}

/** Waits until something accepts TCP connections on the port (or the process ends). */
async function waitForPort(port: number, process: Running): Promise<void> {
  let ended = false;
  process.status.then(() => ended = true);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && !ended) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  throw new Error(`nothing listens on ${port}:\n${process.output()}`);
}

/** Passes one QoS 1 message from a publisher to a subscriber through the broker on `port`. */
async function roundTrip(port: number): Promise<void> {
  const url = `mqtt://127.0.0.1:${port}`;
  const sub = await mqtt.connectAsync(url, {
    clientId: "consumer-sub",
    protocolVersion: 5,
    reconnectPeriod: 0,
  });
  const pub = await mqtt.connectAsync(url, {
    clientId: "consumer-pub",
    protocolVersion: 4,
    reconnectPeriod: 0,
  });
  const received: string[] = [];
  sub.on("message", (topic, payload) => received.push(`${topic}=${payload}`));
  await sub.subscribeAsync("jsr/#", { qos: 1 });
  await pub.publishAsync("jsr/hello", "from a consumer", { qos: 1 });
  await waitFor(() => received.length === 1, 5000, "the message");
  assert.deepEqual(received, ["jsr/hello=from a consumer"]);
  await pub.endAsync();
  await sub.endAsync();
}

Deno.test("README: the JSR commands are the program's, with and without --unstable-kv", () => {
  const commands = jsrCommands();
  assert.ok(commands.includes("deno run -A --unstable-kv jsr:@x/broker/cli"), commands.join("\n"));
  assert.ok(commands.includes("deno run -A jsr:@x/broker/cli"), commands.join("\n"));
  assert.ok(commands.includes("deno run -A --unstable-kv main.ts"), commands.join("\n"));
});

for (const command of jsrCommands().filter((c) => c.includes("jsr:@x/broker/cli"))) {
  const kv = command.includes("--unstable-kv");
  Deno.test(`consumer: \`${command}\` serves MQTT${kv ? " with state in Deno KV" : ", state in memory"}`, async () => {
    const dir = await consumerFolder();
    const port = freePort();
    const broker = spawn(
      [...consumerArgs(command, dir), "--tcp", `127.0.0.1:${port}`, "--ws", "off", "--info", "off"],
      dir,
    );
    try {
      await waitForPort(port, broker);
      await waitFor(() => /Broker \S+ started/.test(broker.output()), 10_000, "the start");
      await roundTrip(port);
      if (kv) {
        assert.match(broker.output(), /Storing state in Deno KV at \.\/data\/broker\.kv/);
        assert.doesNotMatch(broker.output(), /not available/);
      } else {
        assert.match(broker.output(), /Deno KV is not available.*kept in memory.*--unstable-kv/);
      }
    } finally {
      const status = await broker.stop("SIGTERM");
      await Deno.remove(dir, { recursive: true });
      assert.equal(status.code, 0, broker.output());
    }
  });
}

/** The README's library program, on free ports (the only change). */
function libraryProgram(ports: number[]): string {
  const block = /```ts ignore\n([\s\S]*?)```/.exec(section("Use it as a library"));
  assert.ok(block, "the library snippet");
  let i = 0;
  const program = block[1].replace(/address: ":(\d+)"/g, () => `address: "127.0.0.1:${ports[i++]}"`);
  assert.equal(i, 3, "TCP, WebSocket and stats addresses");
  return program;
}

Deno.test("consumer: the README's library program runs with --unstable-kv and passes a message", async () => {
  const dir = await consumerFolder();
  const ports = [freePort(), freePort(), freePort()];
  await Deno.writeTextFile(`${dir}/main.ts`, libraryProgram(ports));
  const command = jsrCommands().find((c) => c.endsWith(" main.ts"))!;
  const program = spawn(consumerArgs(command, dir), dir);
  try {
    await waitForPort(ports[0], program);
    await roundTrip(ports[0]);
    const health = await fetch(`http://127.0.0.1:${ports[2]}/healthcheck`);
    await health.body?.cancel();
    assert.equal(health.status, 200);
    assert.ok((await Deno.stat(`${dir}/data/broker.kv`)).isFile, "the KV store in ./data");
  } finally {
    const status = await program.stop("SIGINT");
    await Deno.remove(dir, { recursive: true });
    assert.equal(status.code, 0, program.output());
  }
});

Deno.test("consumer: without --unstable-kv, KVHook fails with an error naming the flag", async () => {
  const dir = await consumerFolder();
  const ports = [freePort(), freePort(), freePort()];
  await Deno.writeTextFile(`${dir}/main.ts`, libraryProgram(ports));
  const command = jsrCommands().find((c) => c.endsWith(" main.ts"))!.replace(" --unstable-kv", "");
  const program = spawn(consumerArgs(command, dir), dir);
  try {
    const status = await program.status;
    assert.equal(status.code, 1);
    assert.match(program.output(), /Deno KV is not available: run Deno with --unstable-kv/);
    assert.doesNotMatch(program.output(), /TypeError/);
  } finally {
    await program.stop("SIGKILL");
    await Deno.remove(dir, { recursive: true });
  }
});

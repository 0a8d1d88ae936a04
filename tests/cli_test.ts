/**
 * The command-line program, run as a real process.
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "./mqtt.ts";
import { VERSION } from "../mod.ts";
import { freePort, waitFor } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;

function cli(args: string[], piped = true): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "src/app/cli.ts", ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: piped ? "piped" : "null",
    stderr: piped ? "piped" : "null",
  });
}

/** Reads a stream to its end, appending the text to `into.text` as it arrives. */
async function drain(stream: ReadableStream<Uint8Array>, into: { text: string }): Promise<void> {
  const decoder = new TextDecoder();
  for await (const chunk of stream) into.text += decoder.decode(chunk, { stream: true });
}

/** A CLI process serving on a free TCP port. */
interface RunningCli {
  /** `mqtt://127.0.0.1:PORT` */
  url: string;
  /** stdout and stderr so far. */
  output(): { stdout: string; stderr: string };
  /** Sends SIGTERM and returns the exit status. */
  stop(): Promise<Deno.CommandStatus>;
}

/** Starts the CLI with `--tcp` on a free port (plus `args`) and waits until it listens. */
async function startCli(args: string[]): Promise<RunningCli> {
  const port = freePort();
  const child = cli(["--tcp", `127.0.0.1:${port}`, ...args]).spawn();
  const stdout = { text: "" };
  const stderr = { text: "" };
  const drained = Promise.all([drain(child.stdout, stdout), drain(child.stderr, stderr)]);
  const exited: { status?: Deno.CommandStatus } = {};
  child.status.then((s) => exited.status = s);
  const stop = async () => {
    if (exited.status === undefined) child.kill("SIGTERM");
    const status = await child.status;
    await drained;
    return status;
  };
  try {
    await waitFor(
      // "started" comes after the listeners and the signal handlers are in place.
      () =>
        ((stdout.text + stderr.text).includes(`on 127.0.0.1:${port}`) &&
          /Broker \S+ started/.test(stderr.text)) || exited.status !== undefined,
      15000,
      "the CLI to log that it listens",
    );
    assert.equal(exited.status, undefined, `the CLI exited early:\n${stdout.text}\n${stderr.text}`);
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    output: () => ({ stdout: stdout.text, stderr: stderr.text }),
    stop,
  };
}

Deno.test("`cli` serves MQTT on the given address and exits 0 on SIGTERM", async () => {
  const data = await Deno.makeTempDir({ prefix: "broker-cli-" });
  const broker = await startCli(["--ws", "off", "--info", "off", "--data", data]);
  let status: Deno.CommandStatus;
  try {
    assert.match(broker.output().stderr, /AllowHook/, "the allow-all warning goes to stderr");
    const sub = await mqtt.connectAsync(broker.url, {
      clientId: "cli-sub",
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    const pub = await mqtt.connectAsync(broker.url, {
      clientId: "cli-pub",
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    const received: string[] = [];
    sub.on("message", (topic, payload) => received.push(`${topic}=${payload}`));
    await sub.subscribeAsync("cli/#", { qos: 1 });
    await pub.publishAsync("cli/test", "round trip", { qos: 1 });
    await waitFor(() => received.length === 1);
    assert.deepEqual(received, ["cli/test=round trip"]);
    await pub.endAsync();
    await sub.endAsync();
  } finally {
    status = await broker.stop();
    await Deno.remove(data, { recursive: true });
  }
  const { stdout, stderr } = broker.output();
  assert.equal(status.code, 0, `stdout:\n${stdout}\nstderr:\n${stderr}`);
  assert.equal(status.signal, null);
  assert.match(stdout + stderr, /Shutting down/);
  assert.match(stdout + stderr, /Server stopped/);
});

Deno.test("`cli` keeps sessions and retained messages in Deno KV (--data) across a restart", async () => {
  const data = await Deno.makeTempDir({ prefix: "broker-cli-" });
  try {
    const first = await startCli(["--ws", "off", "--info", "off", "--data", data]);
    try {
      assert.match(first.output().stderr, /Deno KV/);
      const sub = await mqtt.connectAsync(first.url, {
        clientId: "keeper",
        protocolVersion: 5,
        clean: false,
        properties: { sessionExpiryInterval: 3600 },
        reconnectPeriod: 0,
      });
      await sub.subscribeAsync("kept/#", { qos: 1 });
      await sub.endAsync();
      const pub = await mqtt.connectAsync(first.url, {
        clientId: "writer",
        protocolVersion: 5,
        reconnectPeriod: 0,
      });
      await pub.publishAsync("kept/queued", "for keeper", { qos: 1 });
      await pub.publishAsync("state/retained", "still here", { qos: 1, retain: true });
      await pub.endAsync();
    } finally {
      assert.equal((await first.stop()).code, 0);
    }
    const second = await startCli(["--ws", "off", "--info", "off", "--data", data]);
    try {
      const received: string[] = [];
      // Listen for messages before CONNECT: the queued one arrives right after CONNACK.
      const sub = mqtt.connect(second.url, {
        clientId: "keeper",
        protocolVersion: 5,
        clean: false,
        properties: { sessionExpiryInterval: 3600 },
        reconnectPeriod: 0,
        manualConnect: true,
      });
      sub.on("message", (topic, payload) => received.push(`${topic}=${payload}`));
      const connack = new Promise<{ sessionPresent: boolean }>((resolve) => sub.once("connect", resolve));
      sub.connect();
      assert.equal((await connack).sessionPresent, true);
      await sub.subscribeAsync("state/#", { qos: 1 });
      await waitFor(() => received.length === 2, 5000, "the queued and the retained message");
      assert.deepEqual(received.sort(), ["kept/queued=for keeper", "state/retained=still here"]);
      await sub.endAsync();
    } finally {
      assert.equal((await second.stop()).code, 0);
    }
  } finally {
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("`cli --help` prints the usage and exits 0", async () => {
  const { code, stdout, stderr } = await cli(["--help"]).output();
  const out = new TextDecoder().decode(stdout);
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  assert.match(out, /^Usage: /);
  for (const flag of ["--tcp", "--log-level", "--help", "--version"]) assert.ok(out.includes(flag), flag);
});

Deno.test("`cli --version` prints the version and exits 0", async () => {
  const { code, stdout } = await cli(["--version"]).output();
  assert.equal(code, 0);
  assert.equal(new TextDecoder().decode(stdout).trim(), VERSION);
});

Deno.test("`cli` exits 2 with the usage on stderr for an unknown flag", async () => {
  const { code, stdout, stderr } = await cli(["--no-such-flag"]).output();
  const err = new TextDecoder().decode(stderr);
  assert.equal(code, 2);
  assert.equal(new TextDecoder().decode(stdout), "");
  assert.match(err, /--no-such-flag/);
  assert.match(err, /Usage: /);
});

Deno.test("`cli` exits 2 for a bad log level", async () => {
  const { code, stderr } = await cli(["--log-level", "loud", "--tcp", "127.0.0.1:0"]).output();
  const err = new TextDecoder().decode(stderr);
  assert.equal(code, 2);
  assert.match(err, /"loud"/);
  assert.match(err, /Usage: /);
});

/** Runs the CLI to its end and returns its exit code and output. */
async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const { code, stdout, stderr } = await cli(args).output();
  const decoder = new TextDecoder();
  return { code, stdout: decoder.decode(stdout), stderr: decoder.decode(stderr) };
}

/** Writes a config file into a new temporary folder and returns its path. */
async function tempConfig(name: string, text: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "broker-cli-config-" });
  await Deno.writeTextFile(`${dir}/${name}`, text);
  return `${dir}/${name}`;
}

async function removeConfig(path: string): Promise<void> {
  await Deno.remove(path.slice(0, path.lastIndexOf("/")), { recursive: true });
}

Deno.test("`cli -h` prints the usage like --help", async () => {
  const { code, stdout } = await runCli(["-h"]);
  assert.equal(code, 0);
  assert.match(stdout, /^Usage: /);
  assert.match(stdout, /-h, --help/);
});

Deno.test("`cli --tcp 127.0.0.1:99999` exits 2 saying the port is out of range", async () => {
  const { code, stderr } = await runCli(["--tcp", "127.0.0.1:99999"]);
  assert.equal(code, 2);
  assert.match(stderr, /--tcp 127\.0\.0\.1:99999: port 99999 is out of range \(0 to 65535\)/);
  const ws = await runCli(["--ws", "localhost"]);
  assert.equal(ws.code, 2);
  assert.match(ws.stderr, /--ws localhost is not of the form host:port/);
});

Deno.test("`cli` exits 1 naming the address when an explicit port is in use", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = busy.addr as Deno.NetAddr;
  try {
    const { code, stderr } = await runCli(["--tcp", `127.0.0.1:${port}`, "--ws", "off", "--info", "off"]);
    assert.equal(code, 1);
    assert.match(
      stderr,
      new RegExp(`Cannot listen on 127\\.0\\.0\\.1:${port} \\(listener tcp\\): .*already in use`),
    );
  } finally {
    busy.close();
  }
});

Deno.test("`cli` does not run without its MQTT port when the default 1883 is busy", async () => {
  // Hold the default port; if something else holds it already, the CLI must fail just the same.
  let busy: Deno.Listener | undefined;
  try {
    busy = Deno.listen({ hostname: "127.0.0.1", port: 1883 });
  } catch {
    // in use by another program
  }
  try {
    const { code, stderr } = await runCli(["--ws", "off", "--info", "off", "--data", "off"]);
    assert.equal(code, 1, stderr);
    assert.match(stderr, /Cannot listen on 127\.0\.0\.1:1883 \(listener tcp\): .*already in use/);
    assert.doesNotMatch(stderr, /Broker .* started/);
  } finally {
    busy?.close();
  }
});

Deno.test("`cli` refuses a listener beyond loopback without --allow-anonymous-remote", async () => {
  const { code, stderr } = await runCli(["--tcp", `:${freePort()}`, "--ws", "off", "--info", "off"]);
  assert.equal(code, 2);
  assert.match(stderr, /--tcp :\d+ listens beyond loopback/);
  assert.match(stderr, /--allow-anonymous-remote/);
});

Deno.test("`cli` listens on loopback by default and says how to open it", async () => {
  const broker = await startCli(["--ws", "off", "--info", "off", "--data", "off"]);
  try {
    await waitFor(() => /Listening on loopback only/.test(broker.output().stderr), 5000, "the loopback note");
    assert.match(broker.output().stderr, /Listening on loopback only.*--allow-anonymous-remote/);
  } finally {
    assert.equal((await broker.stop()).code, 0);
  }
  const open = await startCli(["--ws", "off", "--info", "off", "--data", "off", "--allow-anonymous-remote"]);
  try {
    assert.doesNotMatch(open.output().stderr, /loopback only/);
  } finally {
    assert.equal((await open.stop()).code, 0);
  }
});

Deno.test("`cli --config` with a missing file names it without a line and column", async () => {
  const { code, stderr } = await runCli(["--config", "no/such/broker.yaml"]);
  assert.equal(code, 1);
  assert.equal(stderr.trim(), "Bad config: no/such/broker.yaml: no such file");
});

Deno.test("`cli --config` reads a .json file as strict JSON: a trailing comma is an error with its place", async () => {
  const path = await tempConfig(
    "broker.json",
    '{\n  "logging": { "level": "info", },\n  "listeners": []\n}\n',
  );
  try {
    const { code, stderr } = await runCli(["--config", path]);
    assert.equal(code, 1);
    assert.ok(stderr.includes(`Bad config: ${path}:2:33: not valid JSON`), stderr);
    assert.match(stderr, /a trailing comma/);
  } finally {
    await removeConfig(path);
  }
});

Deno.test("`cli --data` with --config: applied when the file sets no storage, refused when it does", async () => {
  const plain = await tempConfig("broker.yaml", `hooks:\n  auth:\n    allow_all: true\n`);
  const withKv = await tempConfig("broker.yaml", `hooks:\n  storage:\n    kv:\n      path: state.kv\n`);
  const data = await Deno.makeTempDir({ prefix: "broker-cli-" });
  try {
    const refused = await runCli(["--config", withKv, "--data", data]);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--data .* conflicts with .*broker\.yaml, which sets hooks\.storage\.kv/);

    const broker = await startCli(["--config", plain, "--data", data]);
    try {
      assert.ok(broker.output().stderr.includes(`Storing state in Deno KV at ${data}/broker.kv`));
    } finally {
      assert.equal((await broker.stop()).code, 0);
    }
    assert.ok((await Deno.stat(`${data}/broker.kv`)).isFile);
  } finally {
    await removeConfig(plain);
    await removeConfig(withKv);
    await Deno.remove(data, { recursive: true });
  }
});

Deno.test("`cli --config` with Redis down names Redis and its address", async () => {
  const port = freePort();
  const path = await tempConfig(
    "broker.yaml",
    `hooks:\n  storage:\n    redis:\n      address: "127.0.0.1:${port}"\n`,
  );
  try {
    const { code, stderr } = await runCli(["--config", path, "--tcp", "off"]);
    assert.equal(code, 1);
    assert.match(stderr, new RegExp(`Cannot connect to Redis at 127\\.0\\.0\\.1:${port}`));
  } finally {
    await removeConfig(path);
  }
});

Deno.test("`cli -v` logs at debug level and start-up values carry no quotes", async () => {
  const broker = await startCli(["--ws", "off", "--info", "off", "--data", "off", "-v"]);
  try {
    await waitFor(() => /\[DBG\]/.test(broker.output().stderr), 5000, "a debug line");
    assert.match(broker.output().stderr, /\[DBG\] x-broker·cli: Capabilities: \{"maximum/);
    assert.match(broker.output().stderr, /Listener tcp \(tcp\) on 127\.0\.0\.1:\d+\n/);
  } finally {
    assert.equal((await broker.stop()).code, 0);
  }
});

Deno.test("`cli` logs connects, disconnects and refusals at info, one line each with id, listener, remote and version", async () => {
  const broker = await startCli(["--ws", "off", "--info", "off", "--data", "off"]);
  try {
    const v5 = await mqtt.connectAsync(broker.url, {
      clientId: "log-5",
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    const v3 = await mqtt.connectAsync(broker.url, {
      clientId: "log-3",
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    await v5.endAsync();
    await v3.endAsync();
    const refused = mqtt.connectAsync(broker.url, {
      clientId: "log-x",
      protocolVersion: 5,
      reconnectPeriod: 0,
      properties: { authenticationMethod: "SCRAM-SHA-1" },
    });
    await assert.rejects(refused);
    await waitFor(() =>
      (broker.output().stderr.match(/\[INF\] x-broker·server: Client /g) ?? []).length >= 5
    );
    const lines = broker.output().stderr.split("\n").filter((line) => /x-broker·server: Client /.test(line));
    const remote = "127\\.0\\.0\\.1:\\d+";
    const has = (pattern: string) =>
      assert.ok(lines.some((line) => new RegExp(pattern).test(line)), `${pattern}\n${lines.join("\n")}`);
    has(`\\[INF\\] .*Client log-5 connected \\(listener tcp, remote ${remote}, MQTT 5\\.0\\): new session$`);
    has(`\\[INF\\] .*Client log-3 connected \\(listener tcp, remote ${remote}, MQTT 3\\.1\\.1\\)`);
    has(
      `\\[INF\\] .*Client log-5 disconnected \\(listener tcp, remote ${remote}, MQTT 5\\.0\\): .*isconnect`,
    );
    has(`\\[INF\\] .*Client log-3 disconnected \\(listener tcp, remote ${remote}, MQTT 3\\.1\\.1\\)`);
    has(
      `\\[INF\\] .*Client log-x refused \\(listener tcp, remote ${remote}, MQTT 5\\.0\\): .*[Aa]uthentication`,
    );
  } finally {
    assert.equal((await broker.stop()).code, 0);
  }
});

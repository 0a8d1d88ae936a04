/**
 * The command-line program, run as a real process.
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "npm:mqtt@^5.16.0";
import { VERSION } from "../mod.ts";
import { freePort, waitFor } from "./helpers.ts";

const ROOT = new URL("..", import.meta.url).pathname;

function cli(args: string[], piped = true): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "src/cli.ts", ...args],
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
      () => (stdout.text + stderr.text).includes(`on 127.0.0.1:${port}`) || exited.status !== undefined,
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

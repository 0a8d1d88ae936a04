/**
 * The command-line program, run as a real process.
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "mqtt";
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

Deno.test("`cli` serves MQTT on the given address and exits 0 on SIGTERM", async () => {
  const port = freePort();
  const child = cli(["--tcp", `127.0.0.1:${port}`]).spawn();
  const stdout = { text: "" };
  const stderr = { text: "" };
  const drained = Promise.all([drain(child.stdout, stdout), drain(child.stderr, stderr)]);
  const exited: { status?: Deno.CommandStatus } = {};
  child.status.then((s) => exited.status = s);
  let status: Deno.CommandStatus;
  try {
    const listening = `on "127.0.0.1:${port}"`;
    await waitFor(
      () => (stdout.text + stderr.text).includes(listening) || exited.status !== undefined,
      15000,
      "the CLI to log that it listens",
    );
    assert.equal(exited.status, undefined, `the CLI exited early:\n${stdout.text}\n${stderr.text}`);
    assert.match(stderr.text, /AllowHook/, "the allow-all warning goes to stderr");

    const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
      clientId: "cli-sub",
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    const pub = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
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
    if (exited.status === undefined) child.kill("SIGTERM");
    status = await child.status;
    await drained;
  }
  assert.equal(status.code, 0, `stdout:\n${stdout.text}\nstderr:\n${stderr.text}`);
  assert.equal(status.signal, null);
  assert.match(stdout.text + stderr.text, /Shutting down/);
  assert.match(stdout.text + stderr.text, /Server stopped/);
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

/**
 * Smoke tests of the auth and debug examples: each runs as its own process on a free port, real
 * MQTT.js clients show that its rules work, and SIGTERM stops it cleanly.
 */

import assert from "node:assert/strict";
import mqtt from "mqtt";

const ROOT = new URL("../", import.meta.url).pathname;

/** A running example program. */
interface Example {
  url: string;
  /** Everything it printed so far. */
  output(): string;
  /** Sends SIGTERM and waits for a clean exit. */
  stop(): Promise<void>;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function startExample(script: string, ...args: string[]): Promise<Example> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, `127.0.0.1:${port}`, ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  let ready!: () => void;
  const listening = new Promise<void>((resolve) => ready = resolve);
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      if (text.includes("listening on")) ready();
    }
  };
  const reading = Promise.all([read(child.stdout), read(child.stderr)]);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((resolve) => timer = setTimeout(() => resolve("timeout"), 15_000));
  const started = await Promise.race([listening, child.status.then(() => "exited" as const), timeout]);
  clearTimeout(timer);
  if (started !== undefined) {
    if (started === "timeout") child.kill("SIGKILL");
    await child.status;
    await reading;
    throw new Error(`${script} did not start (${started}):\n${text}`);
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    output: () => text,
    async stop() {
      child.kill("SIGTERM");
      const status = await child.status;
      await reading;
      assert.equal(status.code, 0, `${script} exit status; output:\n${text}`);
    },
  };
}

function connect(url: string, options: mqtt.IClientOptions): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...options });
}

async function refused(url: string, options: mqtt.IClientOptions): Promise<void> {
  await assert.rejects(connect(url, options), /Bad User Name or Password|134/i);
}

Deno.test("examples/auth/basic refuses a bad password, accepts good ones and applies the ACL", async () => {
  const example = await startExample("examples/auth/basic/main.ts");
  try {
    await refused(example.url, { clientId: "b1", username: "peach", password: "wrong" });
    await refused(example.url, { clientId: "b2", username: "stranger" });
    const peach = await connect(example.url, { clientId: "b3", username: "peach", password: "password1" });
    const melon = await connect(example.url, { clientId: "b4", username: "melon", password: "password2" });
    await melon.publishAsync("updates/1", "from melon", { qos: 1 }); // WriteOnly: allowed
    await assert.rejects(peach.publishAsync("updates/1", "from peach", { qos: 1 }), /Not authorized|135/i);
    await peach.endAsync();
    await melon.endAsync();
  } finally {
    await example.stop();
  }
});

Deno.test("examples/auth/encoded checks hashed passwords from auth.yaml and auth.json", async () => {
  for (const rules of [[], ["examples/auth/encoded/auth.json"]]) {
    const example = await startExample("examples/auth/encoded/main.ts", ...rules);
    try {
      await refused(example.url, { clientId: "e1", username: "peach", password: "password2" });
      await refused(example.url, { clientId: "e2", username: "melon", password: "password1" });
      const peach = await connect(example.url, { clientId: "e3", username: "peach", password: "password1" });
      const melon = await connect(example.url, { clientId: "e4", username: "melon", password: "password2" });
      const kiwi = await connect(example.url, { clientId: "e5", username: "kiwi", password: "password3" });
      await melon.publishAsync("updates/1", "x", { qos: 1 });
      await kiwi.publishAsync("users/kiwi/status", "x", { qos: 1 }); // %u
      await assert.rejects(kiwi.publishAsync("users/melon/status", "x", { qos: 1 }), /Not authorized|135/i);
      await assert.rejects(peach.publishAsync("updates/1", "x", { qos: 1 }), /Not authorized|135/i);
      await Promise.all([peach.endAsync(), melon.endAsync(), kiwi.endAsync()]);
    } finally {
      await example.stop();
    }
  }
});

Deno.test("examples/debug logs the packets of a client", async () => {
  const example = await startExample("examples/debug/main.ts");
  try {
    const client = await connect(example.url, { clientId: "d1", username: "user", password: "hidden" });
    await client.publishAsync("debug/topic", "payload-text", { qos: 1 });
    await client.endAsync();
    const deadline = Date.now() + 3000;
    while (!example.output().includes("DISCONNECT") && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const output = example.output();
    assert.match(output, /CONNECT.* in from .*d1/);
    assert.match(output, /PUBLISH.* in from .*d1/);
    assert.match(output, /PUBACK.* out to .*d1/);
    assert.ok(output.includes("payload-text"), output);
    assert.ok(!output.includes("hidden"), "the password is masked");
  } finally {
    await example.stop();
  }
});

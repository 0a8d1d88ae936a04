/**
 * Smoke tests of the examples: each runs as its own process on a free port, real MQTT.js clients
 * show that it does what it says, and SIGTERM stops it cleanly.
 */

import assert from "node:assert/strict";
import mqtt from "./mqtt.ts";
import { freePort, ROOT, startExample, waitFor } from "./helpers.ts";

function connect(url: string, options: mqtt.IClientOptions): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...options });
}

async function refused(url: string, options: mqtt.IClientOptions): Promise<void> {
  await assert.rejects(connect(url, options), /Bad User Name or Password|134/i);
}

Deno.test("examples/auth/basic does what its comment says: peach reads all but updates/#, melon writes updates", async () => {
  const example = await startExample("examples/auth/basic/main.ts");
  try {
    await refused(example.url, { clientId: "b1", username: "peach", password: "wrong" });
    await refused(example.url, { clientId: "b2", username: "stranger" });
    const peach = await connect(example.url, { clientId: "b3", username: "peach", password: "password1" });
    const melon = await connect(example.url, { clientId: "b4", username: "melon", password: "password2" });
    const local = await connect(example.url, { clientId: "b5", username: "local" });
    // peach may read anything outside updates/#: news/# is granted, # and updates/1 are refused.
    const granted = async (filter: string) => (await peach.subscribeAsync(filter, { qos: 1 }))[0].qos;
    assert.equal(await granted("news/#"), 1);
    assert.equal(await granted("a/b"), 1);
    for (const filter of ["#", "+/1", "updates/1"]) {
      await assert.rejects(peach.subscribeAsync(filter, { qos: 1 }), /Not authorized/, filter);
    }
    const got = new Promise<string>((resolve) =>
      peach.on("message", (topic, payload) => resolve(`${topic}=${payload}`))
    );
    await local.publishAsync("news/today", "hi", { qos: 1 }); // local may write anything
    assert.equal(await got, "news/today=hi");
    await melon.publishAsync("updates/1", "from melon", { qos: 1 }); // WriteOnly: allowed
    await assert.rejects(peach.publishAsync("news/x", "from peach", { qos: 1 }), /Not authorized|135/i);
    await assert.rejects(peach.publishAsync("updates/1", "from peach", { qos: 1 }), /Not authorized|135/i);
    await Promise.all([peach.endAsync(), melon.endAsync(), local.endAsync()]);
  } finally {
    await example.stop();
  }
});

Deno.test("examples/config/broker.yaml starts as documented, without certificates, and serves MQTT", async () => {
  // The file as it is, copied beside auth.yaml; only its fixed ports and paths are moved aside.
  const dir = await Deno.makeTempDir({ prefix: "broker-example-config-" });
  const [tcp, ws, stats, health] = [freePort(), freePort(), freePort(), freePort()];
  const text = (await Deno.readTextFile(`${ROOT}examples/config/broker.yaml`))
    .replace('address: ":1883"', `address: "127.0.0.1:${tcp}"`)
    .replace('address: ":1882"', `address: "127.0.0.1:${ws}"`)
    .replace('address: "127.0.0.1:8080"', `address: "127.0.0.1:${stats}"`)
    .replace('address: "127.0.0.1:8081"', `address: "127.0.0.1:${health}"`)
    .replace("address: /tmp/broker-example.sock", `address: ${dir}/broker.sock`)
    .replace("path: ../../data/broker.kv", "path: broker.kv");
  const keys = text.split("\n").filter((line) => !line.trimStart().startsWith("#")).join("\n");
  assert.ok(!/tls_|certs/.test(keys), "no TLS in the example that starts as it is");
  await Deno.writeTextFile(`${dir}/broker.yaml`, text);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "src/app/cli.ts", "--config", `${dir}/broker.yaml`],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const reading = Promise.all([child.stdout, child.stderr].map(async (stream) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) output += chunk;
  }));
  let exited = false;
  child.status.then(() => exited = true);
  try {
    await waitFor(() => /Broker \S+ started/.test(output) || exited, 15_000, "the broker to start");
    assert.ok(!exited, output);
    // The ledger lets local clients in (remote 127.0.0.1:*) and read and write everything.
    const client = await connect(`mqtt://127.0.0.1:${tcp}`, { clientId: "c1" });
    const got = new Promise<string>((resolve) =>
      client.on("message", (_t, payload) => resolve(String(payload)))
    );
    await client.subscribeAsync("config/#", { qos: 1 });
    await client.publishAsync("config/t", "ok", { qos: 1 });
    assert.equal(await got, "ok");
    await client.endAsync();
    const response = await fetch(`http://127.0.0.1:${health}/healthcheck`);
    await response.body?.cancel();
    assert.equal(response.status, 200);
  } finally {
    if (!exited) child.kill("SIGTERM");
    const status = await child.status;
    await reading;
    await Deno.remove(dir, { recursive: true });
    assert.equal(status.code, 0, output);
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

Deno.test("examples/direct publishes from the program and answers commands from TCP clients", async () => {
  const example = await startExample("examples/direct/main.ts");
  try {
    const client = await connect(example.url, { clientId: "x1" });
    const messages: string[] = [];
    client.on("message", (topic, payload) => messages.push(`${topic}=${payload}`));
    await client.subscribeAsync("direct/#", { qos: 1 });
    await client.publishAsync("commands/hello", "1", { qos: 1 });
    const deadline = Date.now() + 5000;
    while (!messages.includes("direct/replies=got commands/hello") && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(messages.includes("direct/status=online"), messages.join(", "));
    assert.ok(messages.includes("direct/replies=got commands/hello"), messages.join(", "));
    await client.endAsync();
  } finally {
    await example.stop();
  }
});

Deno.test("examples/hooks rewrites legacy topics, stamps a user property and refuses empty payloads", async () => {
  const example = await startExample("examples/hooks/main.ts");
  try {
    const client = await connect(example.url, { clientId: "h1" });
    const got = new Promise<mqtt.IPublishPacket>((resolve) =>
      client.on("message", (_t, _p, packet) => resolve(packet))
    );
    await client.subscribeAsync("v2/#", { qos: 1 });
    await client.publishAsync("legacy/temp", "21", { qos: 1 });
    const packet = await got;
    assert.equal(packet.topic, "v2/temp");
    assert.deepEqual({ ...packet.properties?.userProperties }, { "received-by": "example" });
    await assert.rejects(client.publishAsync("a", "", { qos: 1 }), /Payload format invalid|153/i);
    await client.endAsync();
  } finally {
    await example.stop();
  }
});

for (const script of ["examples/tcp/main.ts", "examples/paho/main.ts"]) {
  Deno.test(`${script} serves MQTT over TCP`, async () => {
    const example = await startExample(script);
    try {
      const client = await connect(example.url, { clientId: "t1" });
      const got = new Promise<string>((resolve) =>
        client.on("message", (_t, payload) => resolve(String(payload)))
      );
      await client.subscribeAsync("smoke/#", { qos: 1 });
      await client.publishAsync("smoke/t", "ok", { qos: 1 });
      assert.equal(await got, "ok");
      await client.endAsync();
    } finally {
      await example.stop();
    }
  });
}

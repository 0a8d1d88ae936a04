/**
 * A Mochi user's config.yaml: Mochi's own example (tests/fixtures/mochi_config.yaml) loads with the
 * documented warnings and the CLI serves TCP, WebSocket and the health check from it.
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "./mqtt.ts";
import { ConfigError, parseConfig } from "../src/app/config.ts";
import { freePort, ROOT, waitFor } from "./helpers.ts";

const MOCHI = await Deno.readTextFile(`${ROOT}tests/fixtures/mochi_config.yaml`);

Deno.test("Mochi's config.yaml: badger becomes Deno KV at the same path; the other stores are ignored, with warnings", () => {
  const config = parseConfig(MOCHI, "/srv/mochi/config.yaml");
  assert.deepEqual(config.hooks.storage, { kv: { path: "/srv/mochi/badger.db" } });
  assert.equal(config.warnings.length, 4);
  assert.match(
    config.warnings[0],
    /^\/srv\/mochi\/config\.yaml:\d+:\d+: hooks\.storage\.badger: Mochi's Badger store is replaced by Deno KV at \/srv\/mochi\/badger\.db; a new, empty store: the Badger data is not read; gc_interval, gc_discard_ratio have no effect$/,
  );
  for (const [i, name] of ["pebble", "bolt", "redis"].entries()) {
    assert.match(
      config.warnings[i + 1],
      new RegExp(
        `:\\d+:\\d+: hooks\\.storage\\.${name}: ignored: only one storage hook runs, and badger comes first$`,
      ),
    );
  }
  assert.equal(config.logging.level, "info");
  assert.deepEqual(config.listeners.map((l) => `${l.type} ${l.id} ${l.address}`), [
    "tcp file-tcp1 :1883",
    "ws file-websocket :1882",
    "healthcheck file-healthcheck :1880",
  ]);
  assert.equal(config.options.capabilities?.compatibilities?.obscureNotAuthorized, true);
});

Deno.test("Mochi's config.yaml: pebble or bolt alone become Deno KV too, without the others' warnings", () => {
  for (const [store, name] of [["pebble", "Pebble"], ["bolt", "Bolt"]]) {
    const config = parseConfig(
      `hooks:\n  storage:\n    ${store}:\n      path: ${store}.db\n`,
      "/m/config.yaml",
    );
    assert.deepEqual(config.hooks.storage, { kv: { path: `/m/${store}.db` } });
    assert.equal(config.warnings.length, 1);
    assert.match(
      config.warnings[0],
      new RegExp(`/m/config\\.yaml:4:\\d+: hooks\\.storage\\.${store}: Mochi's ${name}`),
    );
  }
});

Deno.test("Mochi's config.yaml: malformed files are still refused with the line and key", () => {
  const cases: [string, RegExp][] = [
    [
      `hooks:\n  storage:\n    badger:\n      gc_interval: 3\n`,
      /config\.yaml:4:7: hooks\.storage\.badger\.path: is required/,
    ],
    [
      `hooks:\n  storage:\n    badger:\n      path: b.db\n      gc_interval: soon\n`,
      /config\.yaml:5:20: hooks\.storage\.badger\.gc_interval: must be an integer of at least 0, got "soon"/,
    ],
    [
      `hooks:\n  storage:\n    pebble:\n      path: p.db\n      mode: Fast\n`,
      /config\.yaml:5:13: hooks\.storage\.pebble\.mode: must be one of sync, nosync, got "Fast"/,
    ],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseConfig(text, "config.yaml"), (error) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, message);
      return true;
    });
  }
  // Mochi's file as published: the melon rule's filters are indented as keys of the rule.
  const published = MOCHI.replace(
    "          filters:\n            melon/#: 3\n            updates/#: 2\n",
    [
      "          filters:",
      "          melon/#: 3",
      "          updates/#: 2",
      "",
    ].join("\n"),
  );
  assert.notEqual(published, MOCHI);
  assert.throws(
    () => parseConfig(published, "config.yaml"),
    /config\.yaml:\d+:\d+: hooks\.auth\.ledger\.acl\[1\]/,
  );
});

Deno.test("Mochi's config.yaml: the CLI serves TCP, WebSocket and the health check from it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "broker-mochi-" });
  const [tcp, ws, health] = [freePort(), freePort(), freePort()];
  const text = MOCHI.replace('":1883"', `"127.0.0.1:${tcp}"`).replace('":1882"', `"127.0.0.1:${ws}"`)
    .replace('":1880"', `"127.0.0.1:${health}"`);
  await Deno.writeTextFile(`${dir}/config.yaml`, text);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "src/app/cli.ts", "--config", `${dir}/config.yaml`],
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
    assert.match(output, /\[WRN\] .*hooks\.storage\.badger: Mochi's Badger store is replaced by Deno KV/);
    assert.match(output, /\[WRN\] .*hooks\.storage\.redis: ignored/);

    const options = {
      protocolVersion: 5 as const,
      reconnectPeriod: 0,
      username: "peach",
      password: "password1",
    };
    const sub = await mqtt.connectAsync(`mqtt://127.0.0.1:${tcp}`, { ...options, clientId: "mochi-tcp" });
    const pub = await mqtt.connectAsync(`ws://127.0.0.1:${ws}/mqtt`, { ...options, clientId: "mochi-ws" });
    const received: string[] = [];
    sub.on("message", (topic, payload) => received.push(`${topic}=${payload}`));
    await sub.subscribeAsync("mochi/#", { qos: 1 });
    await pub.publishAsync("mochi/from-ws", "hello", { qos: 1 });
    await waitFor(() => received.length === 1, 5000, "the message");
    assert.deepEqual(received, ["mochi/from-ws=hello"]);
    await Promise.all([sub.endAsync(), pub.endAsync()]);

    const response = await fetch(`http://127.0.0.1:${health}/healthcheck`);
    await response.body?.cancel();
    assert.equal(response.status, 200);
    assert.ok((await Deno.stat(`${dir}/badger.db`)).isFile, "Deno KV at badger.db");
  } finally {
    if (!exited) child.kill("SIGTERM");
    const status = await child.status;
    await reading;
    await Deno.remove(dir, { recursive: true });
    assert.equal(status.code, 0, output);
  }
});

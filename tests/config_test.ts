/**
 * The configuration file: the example configs start exactly what they declare; malformed files
 * give errors naming the file, line and key.
 */

import assert from "node:assert/strict";
import { type BrokerConfig, ConfigError, loadConfig, parseConfig } from "../src/app/config.ts";
import { applyConfig } from "../src/app/config_build.ts";
import mqtt from "./mqtt.ts";
import { freePort } from "./helpers.ts";
import { type RedisServer, startRedis } from "./storage/redis_server.ts";
import { Server } from "../mod.ts";

/** Copies examples/config to a temp dir beside freshly made test certificates (../tls/certs). */
async function exampleDir(): Promise<string> {
  const root = await Deno.makeTempDir({ prefix: "broker-config-" });
  await Deno.mkdir(`${root}/config`);
  await Deno.mkdir(`${root}/tls/certs`, { recursive: true });
  for (const name of ["broker.yaml", "broker.json", "tls.yaml", "auth.yaml"]) {
    await Deno.copyFile(new URL(`../examples/config/${name}`, import.meta.url), `${root}/config/${name}`);
  }
  const script = new URL("../examples/tls/make_cert.sh", import.meta.url).pathname;
  const made = await new Deno.Command("bash", { args: [script, `${root}/tls/certs`], stdout: "null" })
    .output();
  assert.ok(made.success, "make_cert.sh failed");
  return root;
}

/** Rebinds every listener to a free loopback port (or a socket in `dir`) so the test can run anywhere. */
function onFreePorts(config: BrokerConfig, dir: string): BrokerConfig {
  for (const l of config.listeners) l.address = l.type === "unix" ? `${dir}/${l.id}.sock` : "127.0.0.1:0";
  return config;
}

const EXPECTED: Record<
  string,
  { listeners: [string, string][]; hooks: string[]; storage?: string; obscure: boolean }
> = {
  "broker.yaml": {
    listeners: [
      ["tcp1", "tcp"],
      ["ws1", "ws"],
      ["unix1", "unix"],
      ["stats", "http"],
      ["health", "http"],
    ],
    hooks: ["auth-ledger", "debug", "metrics"],
    storage: "kv",
    obscure: false,
  },
  "tls.yaml": {
    listeners: [
      ["mtls", "tls"],
      ["stats", "https"],
    ],
    hooks: ["auth-ledger", "metrics"],
    obscure: false,
  },
  "broker.json": {
    listeners: [
      ["tcp1", "tcp"],
      ["tls", "tls"],
      ["wss", "wss"],
      ["unix1", "unix"],
      ["stats", "http"],
      ["health", "http"],
    ],
    hooks: ["auth-ledger", "debug", "metrics"],
    storage: "redis",
    obscure: true,
  },
};

for (const [name, expected] of Object.entries(EXPECTED)) {
  Deno.test(`examples/config/${name} starts a server with exactly the declared listeners and hooks`, async () => {
    const root = await exampleDir();
    try {
      const config = onFreePorts(await loadConfig(`${root}/config/${name}`), root);
      const storage = config.hooks.storage!;
      // The declared storage, pointed at a temporary place: a KV file, or a real redis-server.
      let redis: RedisServer | undefined;
      if (expected.storage === "kv") {
        storage.kv!.path = `${root}/broker.kv`;
      } else if (expected.storage === "redis") {
        redis = await startRedis();
        storage.redis!.address = redis.address;
        storage.redis!.password = undefined;
        storage.redis!.username = undefined;
      }
      const expectedHooks = [...expected.hooks];
      if (expected.storage) expectedHooks.splice(1, 0, `${expected.storage}-storage`);

      const server = new Server(config.options);
      try {
        await applyConfig(server, config);
        await server.serve();
        assert.deepEqual(
          [...server.listeners.values()].map((l) => [l.id, l.protocol]),
          expected.listeners,
        );
        assert.deepEqual(server.hooks.list.map((h) => h.id), expectedHooks);
        if (name !== "tls.yaml") {
          assert.equal(server.options.inlineClient, true);
          assert.equal(server.options.sysTopicResendInterval, 10);
          assert.equal(server.options.capabilities.maximumClients, 100000);
        }
        assert.equal(server.options.capabilities.compatibilities.obscureNotAuthorized, expected.obscure);
      } finally {
        await server.close();
        await redis?.stop();
      }
    } finally {
      await Deno.remove(root, { recursive: true });
    }
  });
}

Deno.test("parseConfig maps Mochi's snake_case options to camelCase Options and reads logging", () => {
  const config = parseConfig(
    [
      "options:",
      "  inline_client: true",
      "  client_net_read_buffer_size: 4096",
      "  capabilities:",
      "    maximum_session_expiry_interval: 60",
      "    compatibilities:",
      "      passive_client_disconnect: true",
      "logging:",
      "  level: WARN",
      "  format: json",
    ].join("\n"),
    "m.yaml",
  );
  assert.deepEqual(config.options, {
    inlineClient: true,
    clientReadBufferSize: 4096,
    capabilities: { maximumSessionExpiryInterval: 60, compatibilities: { passiveClientDisconnect: true } },
  });
  assert.deepEqual(config.logging, { level: "warning", format: "json" });
  assert.deepEqual(config.listeners, []);
});

/** Ten malformed configs: the text, and the line and key the error must name. */
const MALFORMED: { name: string; text: string; line: number; key: string; problem: RegExp }[] = [
  {
    name: "unknown top-level key",
    text: "listeners: []\nlistners:\n  - type: tcp\n",
    line: 2,
    key: "listners",
    problem: /unknown key "listners"/,
  },
  {
    name: "unknown listener type",
    text: "listeners:\n  - type: mqtt\n    id: a\n    address: :1883\n",
    line: 2,
    key: "listeners[0].type",
    problem: /must be one of tcp, ws, unix, sysinfo, healthcheck, metrics, got "mqtt"/,
  },
  {
    name: "missing address",
    text: "listeners:\n  - type: tcp\n    id: a\n",
    line: 2,
    key: "listeners[0].address",
    problem: /is required/,
  },
  {
    name: "capability out of range",
    text: "options:\n  capabilities:\n    maximum_qos: 3\n",
    line: 3,
    key: "options.capabilities.maximum_qos",
    problem: /from 0 to 2, got 3/,
  },
  {
    name: "wrong type for a compatibility",
    text: "options:\n  capabilities:\n    compatibilities:\n      obscure_not_authorized: yes please\n",
    line: 4,
    key: "options.capabilities.compatibilities.obscure_not_authorized",
    problem: /must be true or false, got "yes please"/,
  },
  {
    name: "duplicate listener id",
    text: "listeners:\n  - type: tcp\n    id: a\n    address: :1\n  - type: ws\n    id: a\n    address: :2\n",
    line: 6,
    key: "listeners[1].id",
    problem: /duplicate listener id "a"/,
  },
  {
    name: "TLS key file missing",
    text: "listeners:\n  - type: tcp\n    id: a\n    address: :1\n    tls_cert_file: /nonexistent/c.pem\n",
    line: 3,
    key: "listeners[0].tls_key_file",
    problem: /is required when any TLS key is set/,
  },
  {
    name: "allow_all with a ledger",
    text: "hooks:\n  auth:\n    allow_all: true\n    ledger:\n      auth: []\n",
    line: 5,
    key: "hooks.auth.ledger",
    problem: /cannot be used together with allow_all/,
  },
  {
    name: "bad ledger field",
    text: "hooks:\n  auth:\n    ledger:\n      auth:\n        - usename: peach\n          allow: true\n",
    line: 5,
    key: "hooks.auth.ledger.auth[0]",
    problem: /usename/,
  },
  {
    name: "JSON with a bad log level",
    text: '{\n  "logging": {\n    "level": "loud"\n  }\n}\n',
    line: 3,
    key: "logging.level",
    problem: /must be one of trace, debug, info, warning, warn, error, fatal, got "loud"/,
  },
];

Deno.test("ten malformed config files give ten errors naming the file, line and key", async () => {
  const dir = await Deno.makeTempDir({ prefix: "broker-bad-config-" });
  try {
    const messages: string[] = [];
    for (const [i, bad] of MALFORMED.entries()) {
      const file = `${dir}/bad${i}.${bad.text.startsWith("{") ? "json" : "yaml"}`;
      await Deno.writeTextFile(file, bad.text);
      const error = await loadConfig(file).then(() => undefined, (e) => e);
      assert.ok(error instanceof ConfigError, `${bad.name}: expected a ConfigError, got ${error}`);
      assert.equal(error.file, file, bad.name);
      assert.equal(error.line, bad.line, `${bad.name}: ${error.message}`);
      assert.ok(error.key.startsWith(bad.key), `${bad.name}: key ${error.key} (${error.message})`);
      assert.match(error.message, bad.problem, bad.name);
      assert.ok(error.message.startsWith(`${file}:${bad.line}:`), error.message);
      messages.push(error.message);
    }
    assert.equal(new Set(messages).size, MALFORMED.length);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a YAML syntax error and a duplicate key name their line", () => {
  assert.throws(
    () => parseConfig("listeners:\n  - type: tcp\n   id: x\n", "s.yaml"),
    /^ConfigError: s\.yaml:3:/,
  );
  assert.throws(
    () => parseConfig("options:\n  inline_client: true\n  inline_client: false\n", "d.yaml"),
    /d\.yaml:3:\d+: syntax error: Map keys must be unique/,
  );
});

function cli(args: string[]): Deno.Command {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "src/app/cli.ts", ...args],
    cwd: new URL("..", import.meta.url).pathname,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  });
}

Deno.test("`cli --config` starts the file's listeners, logs JSON lines to stderr and exits 0 on SIGINT", async () => {
  const dir = await Deno.makeTempDir({ prefix: "broker-cli-config-" });
  const tcpPort = freePort();
  const file = `${dir}/broker.yaml`;
  await Deno.writeTextFile(
    file,
    [
      "listeners:",
      "  - type: tcp",
      "    id: file-tcp",
      `    address: 127.0.0.1:${tcpPort}`,
      "hooks:",
      "  auth:",
      "    allow_all: true",
      "logging:",
      "  level: info",
      "  format: json",
    ].join("\n"),
  );
  const child = cli(["--config", file, "--info", "127.0.0.1:0"]).spawn();
  let stderr = "";
  const decoder = new TextDecoder();
  const drained = (async () => {
    for await (const chunk of child.stderr) stderr += decoder.decode(chunk, { stream: true });
  })();
  const stdout = new Response(child.stdout).text();
  try {
    const end = Date.now() + 15000;
    while (!stderr.includes("Broker") && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
    const client = await mqttConnectTo(`mqtt://127.0.0.1:${tcpPort}`);
    await client.endAsync();
  } finally {
    child.kill("SIGINT");
  }
  const status = await child.status;
  await drained;
  assert.equal(status.code, 0, stderr);
  assert.equal(await stdout, "");
  const records = stderr.trim().split("\n").map((line) => JSON.parse(line));
  const listeners = records.filter((r) => /^Listener /.test(r.message)).map((r) => r.properties.id);
  assert.deepEqual(listeners, ["file-tcp", "stats"]);
  assert.ok(records.some((r) => r.message.includes("Shutting down")));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("`cli --config` with a bad file starts nothing and exits 1 naming the file, line and key", async () => {
  const dir = await Deno.makeTempDir({ prefix: "broker-cli-bad-" });
  const file = `${dir}/bad.yaml`;
  await Deno.writeTextFile(
    file,
    "listeners:\n  - type: tcp\n    id: a\n    address: 127.0.0.1:0\n    colour: red\n",
  );
  const { code, stderr } = await cli(["--config", file]).output();
  const err = new TextDecoder().decode(stderr);
  assert.equal(code, 1);
  assert.match(
    err,
    new RegExp(`${file.replaceAll(".", "\\.")}:5:5: listeners\\[0\\]\\.colour: unknown key "colour"`),
  );
  assert.doesNotMatch(err, /Listener /);
  await Deno.remove(dir, { recursive: true });
});

function mqttConnectTo(url: string) {
  return mqtt.connectAsync(url, { reconnectPeriod: 0, protocolVersion: 5, connectTimeout: 3000 });
}

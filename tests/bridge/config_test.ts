/**
 * The `bridges:` section of the config file: parsed into bridge settings, and every bad value an
 * error naming the file, line and key.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../src/app/config.ts";

const GOOD = `
listeners:
  - type: tcp
    id: t1
    address: ":1883"
bridges:
  - id: cloud
    address: mqtt://broker.example:1883
    protocol_version: 5
    client_id: edge-1
    username: u
    password: p
    clean_start: false
    session_expiry: 3600
    keep_alive: 30
    topics:
      - "sensors/# out 1"
      - "commands/# in 1"
      - "s/# out 1 edge/ site1/"
`;

Deno.test("parseConfig reads a bridges section with Mosquitto's keys", () => {
  const config = parseConfig(GOOD, "broker.yaml");
  assert.equal(config.bridges.length, 1);
  const bridge = config.bridges[0];
  assert.equal(bridge.id, "cloud");
  assert.equal(bridge.clientId, "edge-1");
  assert.equal(bridge.sessionExpiry, 3600);
  assert.deepEqual(bridge.topics, ["sensors/# out 1", "commands/# in 1", "s/# out 1 edge/ site1/"]);
  assert.equal(config.options.inlineClient, true, "bridges turn the inline client on");
});

function configError(text: string): ConfigError {
  try {
    parseConfig(text, "broker.yaml");
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
  assert.fail("expected a ConfigError");
}

Deno.test("parseConfig names the file, line and key of a bad bridge rule", () => {
  const error = configError(GOOD.replace('"commands/# in 1"', '"commands/# sideways 1"'));
  assert.equal(error.file, "broker.yaml");
  assert.equal(error.line, 18);
  assert.equal(error.key, "bridges[0].topics[1]");
  assert.match(
    error.message,
    /^broker\.yaml:18:\d+: bridges\[0\]\.topics\[1\]: .*direction must be out, in or both/,
  );
});

Deno.test("parseConfig names the line and key of a bad bridge value", () => {
  const version = configError(GOOD.replace("protocol_version: 5", "protocol_version: 6"));
  assert.equal(version.line, 9);
  assert.equal(version.key, "bridges[0].protocol_version");
  const address = configError(GOOD.replace("mqtt://broker.example:1883", "http://broker.example"));
  assert.equal(address.line, 8);
  assert.equal(address.key, "bridges[0].address");
  const unknown = configError(GOOD.replace("keep_alive: 30", "keepalive: 30"));
  assert.equal(unknown.line, 15);
  assert.equal(unknown.key, "bridges[0].keepalive");
  const missing = configError(GOOD.replace(/ {4}topics:\n.*\n.*\n.*\n/, ""));
  assert.equal(missing.key, "bridges[0].topics");
  const ca = configError(
    GOOD.replace("keep_alive: 30", "keep_alive: 30\n    tls_ca_file: /nonexistent/ca.pem"),
  );
  assert.equal(ca.key, "bridges[0].tls_ca_file");
  assert.equal(ca.line, 16);
});

Deno.test("parseConfig refuses duplicate bridge ids and bridges without the inline client", () => {
  const twice = GOOD + GOOD.slice(GOOD.indexOf("  - id: cloud"));
  assert.equal(configError(twice).key, "bridges[1].id");
  const off = configError(GOOD + "options:\n  inline_client: false\n");
  assert.equal(off.key, "options.inline_client");
});

Deno.test("examples/bridge/bridge.yaml is a valid config", async () => {
  const { loadConfig } = await import("../../src/app/config.ts");
  const config = await loadConfig(new URL("../../examples/bridge/bridge.yaml", import.meta.url).pathname);
  assert.equal(config.bridges[0].id, "cloud");
  assert.equal(config.bridges[0].topics.length, 3);
});

/**
 * The config file's `cluster:` section.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ConfigError, parseConfig } from "../../src/app/config.ts";

Deno.test("`config` reads the cluster section: redis address, credentials, database, prefix, node id", () => {
  const config = parseConfig(
    [
      "cluster:",
      "  redis:",
      "    address: 10.0.0.5:6379",
      "    username: broker",
      "    password: secret",
      "    database: 2",
      "    prefix: 'mqtt:prod:'",
      "  node_id: node-1",
    ].join("\n"),
    "broker.yml",
  );
  assert.deepEqual(config.cluster, {
    redis: {
      address: "10.0.0.5:6379",
      username: "broker",
      password: "secret",
      database: 2,
      prefix: "mqtt:prod:",
    },
    nodeId: "node-1",
  });
  assert.equal(parseConfig("logging:\n  level: info\n", "b.yml").cluster, undefined);
});

Deno.test("`config` errors in the cluster section name the file, line and key", () => {
  assert.throws(
    () => parseConfig("cluster:\n  redis:\n    address: a:1\n    database: many\n", "broker.yml"),
    (error: unknown) =>
      error instanceof ConfigError && error.file === "broker.yml" && error.line === 4 &&
      error.key === "cluster.redis.database",
  );
  assert.throws(
    () => parseConfig("cluster:\n  node_id: x\n", "broker.yml"),
    (error: unknown) => error instanceof ConfigError && /redis/.test(error.message),
  );
});

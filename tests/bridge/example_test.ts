/**
 * `examples/bridge` against one of our brokers as the remote.
 *
 * @module
 */

import assert from "node:assert/strict";
import { startBroker, startExample, waitFor } from "../helpers.ts";
import { client, received } from "./setup.ts";

Deno.test("examples/bridge sends sensors/# up and renames site/# on the way", async () => {
  await using cloud = await startBroker();
  const atCloud = await client(cloud.url);
  await atCloud.subscribeAsync("#", { qos: 1 });
  const got = received(atCloud);
  const example = await startExample("examples/bridge/main.ts", cloud.url);
  try {
    const edge = await client(example.url);
    await waitFor(() => cloud.server.clients.get("edge-1")?.closed === false, 5000, "the bridge connected");
    await edge.publishAsync("sensors/t1", "21.5", { qos: 1 });
    await edge.publishAsync("edge/site/door", "open", { qos: 1 });
    await waitFor(() => got.length === 2, 5000, "two messages at the cloud");
    assert.deepEqual(got.map((m) => `${m.topic}=${m.payload}`), ["sensors/t1=21.5", "site1/site/door=open"]);
    await edge.endAsync();
  } finally {
    await example.stop();
    await atCloud.endAsync();
  }
});

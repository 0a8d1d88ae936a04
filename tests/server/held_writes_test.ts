/**
 * `holdWritesOf` (src/client.ts): what a cluster node uses to send messages from its inbox to
 * persistent sessions' connections only once the inbox knows they are delivered.
 *
 * @module
 */

import assert from "node:assert/strict";
import { type Client, holdWritesOf } from "../../src/client.ts";
import { collect, delay, mqttConnect, startBroker, waitFor } from "../helpers.ts";

Deno.test("`holdWritesOf` holds what persistent sessions' connections are sent until released, not others'", async () => {
  await using broker = await startBroker({ inlineClient: true });
  const persistent = await mqttConnect(broker, {
    clientId: "kept",
    clean: false,
    properties: { sessionExpiryInterval: 60 },
  });
  const ephemeral = await mqttConnect(broker, { clientId: "gone" });
  try {
    const kept = collect(persistent);
    const gone = collect(ephemeral);
    await persistent.subscribeAsync("h/#", { qos: 1 });
    await ephemeral.subscribeAsync("h/#", { qos: 1 });
    const held = new Set<Client>();
    const outer = holdWritesOf(held);
    await broker.server.publish("h/1", "one", false, 1);
    assert.equal(holdWritesOf(outer), held);
    assert.deepEqual([...held].map((client) => client.id), ["kept"]);
    await waitFor(() => gone.length === 1, 2000, "the ephemeral session's message");
    await delay(200);
    assert.equal(kept.length, 0, "held");
    // Two holds (two inbox batches, say): written after the last release only.
    const second = new Set<Client>();
    const again = holdWritesOf(second);
    await broker.server.publish("h/2", "two", false, 1);
    holdWritesOf(again);
    const client = [...held][0];
    assert.deepEqual([...second], [client]);
    assert.equal(client.writesHeld, 2);
    client.releaseWrites();
    await delay(100);
    assert.equal(kept.length, 0, "one hold left");
    client.releaseWrites();
    await waitFor(() => kept.length === 2, 2000, "the held messages");
    assert.deepEqual(kept.map((m) => m.payload), ["one", "two"]);
    assert.equal(client.writesHeld, 0);
  } finally {
    persistent.end(true);
    ephemeral.end(true);
  }
});

import assert from "node:assert/strict";
import type { Client, Hook } from "../../mod.ts";
import { collect, mqttConnect, startBroker, waitFor } from "../helpers.ts";

/** Allows everything except reading topics under `secret/`; subscribing to `#` is allowed. */
function readFilterHook(denied: { prefix: string }): Hook {
  return {
    id: "read-filter",
    onConnectAuthenticate: () => true,
    onACLCheck: (_client: Client, topic: string, write: boolean) => write || !topic.startsWith(denied.prefix),
  };
}

Deno.test("ACL is checked on every delivery: a # subscriber never receives a denied topic", async () => {
  await using broker = await startBroker({}, [readFilterHook({ prefix: "secret/" })]);
  const sub = await mqttConnect(broker, { clientId: "reader" });
  const messages = collect(sub);
  await sub.subscribeAsync("#", { qos: 1 });
  const pub = await mqttConnect(broker, { clientId: "writer" });
  await pub.publishAsync("secret/plans", "hidden", { qos: 1 });
  await pub.publishAsync("public/news", "visible", { qos: 1 });
  await waitFor(() => messages.length === 1);
  await pub.publishAsync("public/done", "", { qos: 1 });
  await waitFor(() => messages.length === 2);
  assert.deepEqual(messages.map((m) => m.topic), ["public/news", "public/done"]);
  await sub.endAsync();
  await pub.endAsync();
});

Deno.test("ACL is checked for retained messages sent on subscribe", async () => {
  await using broker = await startBroker({}, [readFilterHook({ prefix: "secret/" })]);
  const pub = await mqttConnect(broker, { clientId: "writer" });
  await pub.publishAsync("secret/kept", "hidden", { qos: 1, retain: true });
  await pub.publishAsync("public/kept", "visible", { qos: 1, retain: true });
  const sub = await mqttConnect(broker, { clientId: "reader" });
  const messages = collect(sub);
  await sub.subscribeAsync("#", { qos: 1 });
  await waitFor(() => messages.length === 1);
  await pub.publishAsync("public/after", "", { qos: 1 });
  await waitFor(() => messages.length === 2);
  assert.deepEqual(messages.map((m) => m.topic), ["public/kept", "public/after"]);
  await sub.endAsync();
  await pub.endAsync();
});

Deno.test("ACL changes apply to existing subscriptions at the next delivery", async () => {
  const rules = { prefix: "nothing-denied/" };
  await using broker = await startBroker({}, [readFilterHook(rules)]);
  const sub = await mqttConnect(broker, { clientId: "reader" });
  const messages = collect(sub);
  await sub.subscribeAsync("feed/#", { qos: 0 });
  const pub = await mqttConnect(broker, { clientId: "writer" });
  await pub.publishAsync("feed/a", "1", { qos: 1 });
  await waitFor(() => messages.length === 1);
  rules.prefix = "feed/"; // revoke read access
  await pub.publishAsync("feed/a", "2", { qos: 1 });
  rules.prefix = "nothing-denied/";
  await pub.publishAsync("feed/a", "3", { qos: 1 });
  await waitFor(() => messages.length === 2);
  assert.deepEqual(messages.map((m) => m.payload), ["1", "3"]);
  await sub.endAsync();
  await pub.endAsync();
});

/**
 * Bridges against a real Mosquitto: out, in and both at QoS 0/1/2, prefix rewriting, no echo, TLS,
 * refused credentials. Skipped without Mosquitto, except under `CI` where they fail.
 *
 * @module
 */

import assert from "node:assert/strict";
import { delay, waitFor } from "../helpers.ts";
import { testCerts } from "../listeners/certs.ts";
import { skipMosquittoTests, startMosquitto } from "./mosquitto.ts";
import { client, collectingClient, connected, received, startEdge } from "./setup.ts";

const ignore = skipMosquittoTests;

for (const version of [5, 4, 3] as const) {
  Deno.test({
    name: `Bridge (MQTT ${version}) carries out rules to Mosquitto at QoS 0, 1 and 2`,
    ignore,
    async fn() {
      await using remote = await startMosquitto();
      const subscriber = await client(remote.url);
      await subscriber.subscribeAsync("sensors/#", { qos: 2 });
      const got = received(subscriber);
      await using edge = await startEdge({
        address: remote.url,
        protocolVersion: version,
        topics: ["sensors/# out 2"],
      });
      await connected(edge.bridge);
      const publisher = await client(edge.url);
      for (const qos of [0, 1, 2] as const) {
        await publisher.publishAsync(`sensors/q${qos}`, `m${qos}`, { qos });
      }
      await waitFor(() => got.length === 3, 5000, "three messages at the remote");
      assert.deepEqual(got.map((m) => [m.topic, m.payload, m.qos]), [
        ["sensors/q0", "m0", 0],
        ["sensors/q1", "m1", 1],
        ["sensors/q2", "m2", 2],
      ]);
      const status = edge.bridge.status();
      assert.equal(status.sent, 3);
      assert.equal(status.inflight, 0);
      await publisher.endAsync();
      await subscriber.endAsync();
    },
  });

  Deno.test({
    name: `Bridge (MQTT ${version}) carries in rules from Mosquitto at QoS 0, 1 and 2`,
    ignore,
    async fn() {
      await using remote = await startMosquitto();
      await using edge = await startEdge({
        address: remote.url,
        protocolVersion: version,
        topics: ["commands/# in 2"],
      });
      await connected(edge.bridge);
      const subscriber = await client(edge.url);
      await subscriber.subscribeAsync("commands/#", { qos: 2 });
      const got = received(subscriber);
      await delay(100); // the bridge's SUBSCRIBE reaches Mosquitto
      const publisher = await client(remote.url);
      for (const qos of [0, 1, 2] as const) {
        await publisher.publishAsync(`commands/q${qos}`, `c${qos}`, { qos });
      }
      await waitFor(() => got.length === 3, 5000, "three messages at the edge");
      assert.deepEqual(got.map((m) => [m.topic, m.payload, m.qos]), [
        ["commands/q0", "c0", 0],
        ["commands/q1", "c1", 1],
        ["commands/q2", "c2", 2],
      ]);
      assert.equal(edge.bridge.status().received, 3);
      await publisher.endAsync();
      await subscriber.endAsync();
    },
  });
}

Deno.test({
  name: "Bridge with both and prefixes rewrites topics each way and echoes nothing",
  ignore,
  async fn() {
    await using remote = await startMosquitto();
    await using edge = await startEdge({ address: remote.url, topics: ["s/# both 1 edge/ site1/"] });
    await connected(edge.bridge);
    const remoteClient = await client(remote.url);
    await remoteClient.subscribeAsync("#", { qos: 1 });
    const atRemote = received(remoteClient);
    const local = await client(edge.url);
    await local.subscribeAsync("edge/#", { qos: 1 });
    const atEdge = received(local);
    await delay(100);
    await local.publishAsync("edge/s/up", "u", { qos: 1 });
    await remoteClient.publishAsync("site1/s/down", "d", { qos: 1 });
    await local.publishAsync("edge/other", "not bridged", { qos: 1 });
    await waitFor(() => atRemote.length >= 2 && atEdge.length >= 3, 5000, "both directions");
    await delay(300); // room for an echo to show up
    assert.deepEqual(atRemote.map((m) => `${m.topic}=${m.payload}`).sort(), [
      "site1/s/down=d",
      "site1/s/up=u",
    ]);
    assert.deepEqual(
      atEdge.map((m) => `${m.topic}=${m.payload}`).sort(),
      ["edge/other=not bridged", "edge/s/down=d", "edge/s/up=u"],
    );
    await local.endAsync();
    await remoteClient.endAsync();
  },
});

Deno.test({
  name: "Bridge acknowledges a QoS 1 publish only once the remote has it",
  ignore,
  async fn() {
    await using remote = await startMosquitto({ persistence: true });
    const subscriber = await client(remote.url, { clientId: "sub", clean: false, protocolVersion: 4 });
    await subscriber.subscribeAsync("held/#", { qos: 1 });
    await subscriber.endAsync();
    await remote.kill();
    await using edge = await startEdge({ address: remote.url, topics: ["held/# out 1"] });
    const publisher = await client(edge.url);
    let acked = false;
    const publishing = publisher.publishAsync("held/a", "x", { qos: 1 }).then(() => acked = true);
    await delay(500);
    assert.equal(acked, false, "PUBACK before the remote had the message");
    assert.equal(edge.bridge.status().queued, 1);
    await remote.restart();
    await publishing;
    assert.equal(edge.bridge.status().sent, 1);
    const { client: again, got } = await collectingClient(remote.url, {
      clientId: "sub",
      clean: false,
      protocolVersion: 4,
    });
    await waitFor(() => got.length === 1, 5000, "the held message at the remote");
    await again.endAsync();
    await publisher.endAsync();
  },
});

Deno.test({
  name: "Bridge connects over TLS with a CA file",
  ignore,
  async fn() {
    const certs = await testCerts();
    await using remote = await startMosquitto({
      tls: { cert: `${certs.dir}/server.crt`, key: `${certs.dir}/server.key` },
    });
    const subscriber = await client(remote.url);
    await subscriber.subscribeAsync("tls/#", { qos: 1 });
    const got = received(subscriber);
    await using edge = await startEdge({
      address: `mqtts://localhost:${remote.tlsPort}`,
      tls: { ca: certs.ca },
      topics: ["tls/# out 1"],
    });
    await connected(edge.bridge);
    await edge.server.publish("tls/x", "secure", false, 1);
    await waitFor(() => got.length === 1, 5000, "the message over TLS");
    assert.equal(got[0].payload, "secure");
    await subscriber.endAsync();
  },
});

Deno.test({
  name: "Bridge logs a refused connection with its reason and retries",
  ignore,
  async fn() {
    await using remote = await startMosquitto({ users: { edge: "right" } });
    await using edge = await startEdge({
      address: remote.url,
      username: "edge",
      password: "wrong",
      protocolVersion: 4,
      topics: ["a/# out 1"],
    });
    await waitFor(() => edge.bridge.status().lastError !== "", 5000, "a connection error");
    assert.match(edge.bridge.status().lastError, /bad user name or password|not authorized/);
    await waitFor(
      () => (remote.log().match(/not authori[sz]ed/g) ?? []).length >= 2,
      5000,
      "a second attempt",
    );
    assert.equal(edge.bridge.status().connected, false);
    assert.equal(edge.bridge.status().connects, 0);
  },
});

/**
 * Bridges when things go wrong: the remote down and back (queue in order), a persistent remote
 * session resumed, the remote SIGKILLed mid-stream at QoS 1, and two of our brokers bridged both
 * ways on `#` without echo.
 *
 * @module
 */

import assert from "node:assert/strict";
import { AllowHook, Server, TCP } from "../../mod.ts";
import { delay, waitFor } from "../helpers.ts";
import { skipMosquittoTests, startMosquitto } from "./mosquitto.ts";
import { client, collectingClient, connected, received, startEdge } from "./setup.ts";

const ignore = skipMosquittoTests;

/** Makes a persistent QoS 1 subscriber session on Mosquitto for `filter`, then disconnects it. */
async function persistentSubscriber(url: string, filter: string): Promise<void> {
  const sub = await client(url, { clientId: "sub", clean: false, protocolVersion: 4 });
  await sub.subscribeAsync(filter, { qos: 1 });
  await sub.endAsync();
}

Deno.test({
  name: "Bridge queues messages while the remote is down and delivers them in order when it is back",
  ignore,
  async fn() {
    await using remote = await startMosquitto({ persistence: true });
    await persistentSubscriber(remote.url, "q/#");
    await using edge = await startEdge({ address: remote.url, topics: ["q/# out 1"] });
    await connected(edge.bridge);
    await remote.kill();
    await waitFor(() => !edge.bridge.status().connected, 3000, "the bridge to notice");
    const publisher = await client(edge.url);
    const acks: Promise<unknown>[] = [];
    for (let i = 0; i < 50; i++) {
      // (QoS 1 only: Mosquitto 2.0.11 loses some messages queued for an offline session when QoS 0
      // ones are mixed in, bridge or not.)
      acks.push(publisher.publishAsync(`q/${i % 3}`, String(i), { qos: 1 }));
    }
    await waitFor(() => edge.bridge.status().queued === 50, 3000, "50 queued");
    await remote.restart();
    await Promise.all(acks);
    const { client: sub, got } = await collectingClient(remote.url, {
      clientId: "sub",
      clean: false,
      protocolVersion: 4,
    });
    await waitFor(() => got.length === 50, 5000, "50 messages at the remote");
    assert.deepEqual(got.map((m) => Number(m.payload)), [...Array(50).keys()]);
    assert.equal(edge.bridge.status().queued, 0);
    await sub.endAsync();
    await publisher.endAsync();
  },
});

Deno.test({
  name: "Bridge drops the oldest queued message when the queue is full, and counts it",
  ignore,
  async fn() {
    await using remote = await startMosquitto();
    await remote.kill();
    await using edge = await startEdge({ address: remote.url, topics: ["d/# out 1"], queueMaxMessages: 3 });
    for (let i = 0; i < 5; i++) await edge.server.publish("d/x", String(i), false, 1);
    const status = edge.bridge.status();
    assert.equal(status.queued, 3);
    assert.equal(status.dropped, 2);
    // A v5 publisher whose message is dropped gets 0x97 Quota Exceeded, not a silent success.
    const publisher = await client(edge.url);
    const first = publisher.publishAsync("d/y", "refused", { qos: 1 });
    await waitFor(() => edge.bridge.status().dropped === 3, 3000, "the publish to push out one more");
    for (let i = 0; i < 3; i++) await edge.server.publish("d/x", `more${i}`, false, 1);
    await assert.rejects(first, /Quota exceeded/);
    await publisher.endAsync();
  },
});

Deno.test({
  name: "Bridge resumes a persistent remote session: messages published while it was away arrive",
  ignore,
  async fn() {
    await using remote = await startMosquitto();
    const settings = {
      address: remote.url,
      clientId: "edge-1",
      cleanStart: false,
      sessionExpiry: 3600,
      topics: ["cmd/# in 1"],
    };
    const first = await startEdge(settings);
    await connected(first.bridge);
    await delay(100); // SUBSCRIBE handled
    await first.close();
    const publisher = await client(remote.url);
    for (let i = 0; i < 5; i++) await publisher.publishAsync(`cmd/${i}`, String(i), { qos: 1 });
    const got: string[] = [];
    await using second = await startEdge(
      settings,
      {},
      (server) =>
        server.subscribe("cmd/#", 1, (_c, _s, packet) => {
          got.push(new TextDecoder().decode(packet.payload));
        }),
    );
    await waitFor(() => got.length === 5, 5000, "the messages queued for the bridge's session");
    assert.deepEqual(got, ["0", "1", "2", "3", "4"]);
    await publisher.endAsync();
    await second.close();
  },
});

Deno.test({
  name: "Bridge: every QoS 1 message our broker acknowledged reaches the remote after it is SIGKILLed",
  ignore,
  async fn() {
    await using remote = await startMosquitto({ persistence: true });
    await persistentSubscriber(remote.url, "k/#");
    const live = await collectingClient(remote.url, {
      clientId: "sub",
      clean: false,
      protocolVersion: 4,
      reconnectPeriod: 100,
    });
    await using edge = await startEdge({
      address: remote.url,
      protocolVersion: 4,
      clientId: "edge-k",
      topics: ["k/# out 1"],
    });
    await connected(edge.bridge);
    const publisher = await client(edge.url);
    const acked = new Set<string>();
    const total = 300;
    const publishing: Promise<unknown>[] = [];
    for (let i = 0; i < total; i++) {
      publishing.push(publisher.publishAsync("k/x", String(i), { qos: 1 }).then(() => acked.add(String(i))));
      if (i === 150) {
        await remote.kill("SIGKILL");
        await delay(300);
        await remote.restart();
      }
      await delay(2);
    }
    await Promise.all(publishing);
    assert.equal(acked.size, total);
    await waitFor(
      () => acked.size > 0 && [...acked].every((p) => live.got.some((m) => m.payload === p)),
      10_000,
      "every acknowledged message at the remote subscriber",
    );
    live.client.end(true);
    await publisher.endAsync();
  },
});

Deno.test({
  name: "Two of our brokers bridged both ways on # over one bridge do not echo",
  async fn() {
    const cloud = new Server();
    await cloud.addHook(new AllowHook());
    const tcp = new TCP({ id: "t", address: "127.0.0.1:0" });
    await cloud.addListener(tcp);
    await cloud.serve();
    const cloudUrl = `mqtt://${tcp.address}`;
    await using edge = await startEdge({ address: cloudUrl, topics: ["# both 2"] });
    await connected(edge.bridge);
    const atCloud = await client(cloudUrl);
    await atCloud.subscribeAsync("#", { qos: 2 });
    const cloudGot = received(atCloud);
    const atEdge = await client(edge.url);
    await atEdge.subscribeAsync("#", { qos: 2 });
    const edgeGot = received(atEdge);
    await delay(100);
    await atEdge.publishAsync("from/edge", "e", { qos: 1 });
    await atCloud.publishAsync("from/cloud", "c", { qos: 2 });
    await waitFor(() => cloudGot.length >= 2 && edgeGot.length >= 2, 5000, "both messages on both sides");
    await delay(300); // room for an echo
    const list = (got: { topic: string }[]) => got.map((m) => m.topic).sort();
    assert.deepEqual(list(cloudGot), ["from/cloud", "from/edge"]);
    assert.deepEqual(list(edgeGot), ["from/cloud", "from/edge"]);
    await atCloud.endAsync();
    await atEdge.endAsync();
    await edge.close();
    await cloud.close();
  },
});

/**
 * `/metrics`: scraped over HTTP while real MQTT clients (MQTT.js and raw sockets) make traffic,
 * parsed with a strict Prometheus text-format parser, and checked to move as the traffic flows.
 */

import assert from "node:assert/strict";
import mqtt from "../mqtt.ts";
import {
  AllowHook,
  type Hook,
  MemoryHook,
  Metrics,
  MetricsHook,
  MqttError,
  PacketType,
  Server,
  TCP,
} from "../../mod.ts";
import { closeReason, Histogram, renderMetrics } from "../../src/app/metrics.ts";
import { observabilityHandler } from "../../src/app/metrics.ts";
import { delay, RawClient, startBroker, type TestBroker, waitFor } from "../helpers.ts";
import { metric, parsePrometheus } from "./prometheus.ts";

/** A broker with a metrics hook and the observability handler on its own HTTP port. */
async function observedBroker(
  options: ConstructorParameters<typeof Server>[0] = {},
  extraHooks: Hook[] = [],
  metricsOptions: ConstructorParameters<typeof MetricsHook>[0] = {},
): Promise<
  {
    broker: TestBroker;
    metrics: MetricsHook;
    scrape: () => Promise<ReturnType<typeof parsePrometheus>>;
    close: () => Promise<void>;
  }
> {
  const metrics = new MetricsHook(metricsOptions);
  const broker = await startBroker(options, [new AllowHook(), ...extraHooks, metrics]);
  const handler = observabilityHandler(broker.server);
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request, info) => await handler(request, info) ?? new Response("Not Found", { status: 404 }),
  );
  const scrape = async () => {
    const response = await fetch(`http://127.0.0.1:${http.addr.port}/metrics`);
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    return parsePrometheus(await response.text());
  };
  return {
    broker,
    metrics,
    scrape,
    close: async () => {
      await http.shutdown();
      await broker.close();
    },
  };
}

Deno.test("the test's Prometheus parser rejects what Prometheus would", () => {
  assert.throws(() => parsePrometheus("x 1"), /newline/);
  assert.throws(() => parsePrometheus("x 1\n"), /no TYPE/);
  assert.throws(
    () => parsePrometheus('# HELP x_total h\n# TYPE x_total counter\nx_total{a="1} 1\n'),
    /unterminated/,
  );
  assert.throws(() => parsePrometheus("# HELP x h\n# TYPE x counter\nx 1\n"), /_total/);
  assert.throws(() => parsePrometheus("# HELP x h\n# TYPE x gauge\nx 1\nx 2\n"), /duplicate/);
  assert.throws(
    () =>
      parsePrometheus(
        '# HELP h h\n# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
      ),
    /cumulative/,
  );
  const ok = parsePrometheus(
    '# HELP x_total a \\\\ b\n# TYPE x_total counter\nx_total{a="q\\"\\n",b="2"} 3\n',
  );
  assert.equal(ok.get("x_total")!.help, "a \\ b");
  assert.deepEqual(ok.get("x_total")!.samples[0].labels, { a: 'q"\n', b: "2" });
});

Deno.test("Histogram counts observations at or below each bound", () => {
  const h = new Histogram([0.1, 1]);
  for (const v of [0.05, 0.1, 0.5, 3]) h.observe(v);
  assert.deepEqual(h.cumulative(), [2, 3]);
  assert.equal(h.count, 4);
  assert.ok(Math.abs(h.sum - 3.65) < 1e-9);
  assert.throws(() => new Histogram([1, 1]), RangeError);
});

Deno.test("closeReason names the reason code a connection closed with", () => {
  assert.equal(closeReason(undefined), "connection_lost");
  assert.equal(closeReason(new Error("Client disconnected: success")), "normal_disconnection");
  assert.equal(
    closeReason(new Error("Disconnected by the server: session taken over")),
    "session_taken_over",
  );
  assert.equal(
    closeReason(new Error("Disconnected by the server: administrative action")),
    "administrative_action",
  );
  assert.equal(closeReason(new Error("Keep alive timeout")), "keep_alive_timeout");
  assert.equal(closeReason(new MqttError(0x97)), "quota_exceeded");
  assert.equal(closeReason(new Error("connection reset")), "connection_lost");
});

Deno.test("renderMetrics without a metrics hook renders the $SYS totals in valid exposition format", () => {
  const families = parsePrometheus(renderMetrics(new Server()));
  assert.equal(metric(families, "mqtt_clients_connected"), 0);
  assert.equal(metric(families, "mqtt_messages_received_total"), 0);
  assert.equal(families.get("mqtt_build_info")!.samples[0].labels.version, "0.1.0");
  assert.ok(metric(families, "process_resident_memory_bytes") > 0);
});

Deno.test("/metrics counters move as MQTT traffic flows", async () => {
  const { broker, metrics, scrape, close } = await observedBroker();
  const clients: mqtt.MqttClient[] = [];
  try {
    const before = await scrape();
    assert.equal(metric(before, "mqtt_clients_connected"), 0);
    assert.equal(metric(before, "mqtt_connections_opened_total"), 0);
    for (const family of before.values()) {
      for (const sample of family.samples) {
        for (const label of Object.keys(sample.labels)) {
          assert.ok(
            ["type", "qos", "reason", "state", "hook", "le", "version"].includes(label),
            `label ${label}`,
          );
        }
      }
    }

    const sub = await mqtt.connectAsync(broker.url, {
      clientId: "sub",
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    const pub = await mqtt.connectAsync(broker.url, {
      clientId: "pub",
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    clients.push(sub, pub);
    await sub.subscribeAsync({ "m/#": { qos: 2 }, "$share/g/s/#": { qos: 0 } });
    let received = 0;
    sub.on("message", () => received++);
    for (let i = 0; i < 5; i++) await pub.publishAsync("m/a", "zero", { qos: 0 });
    for (let i = 0; i < 3; i++) await pub.publishAsync("m/b", "one", { qos: 1 });
    await pub.publishAsync("m/c", "two", { qos: 2 });
    await pub.publishAsync("m/retained", "kept", { qos: 1, retain: true });
    await waitFor(() => received === 10, 3000, "10 deliveries");
    await waitFor(() => broker.server.info.inflight === 0, 3000, "acknowledgements");

    const after = await scrape();
    assert.equal(metric(after, "mqtt_clients_connected"), 2);
    assert.equal(metric(after, "mqtt_clients_maximum"), 2);
    assert.equal(metric(after, "mqtt_sessions", { state: "online" }), 2);
    assert.equal(metric(after, "mqtt_connections_opened_total"), 2);
    assert.equal(metric(after, "mqtt_messages_received_total", { qos: "0" }), 5);
    assert.equal(metric(after, "mqtt_messages_received_total", { qos: "1" }), 4);
    assert.equal(metric(after, "mqtt_messages_received_total", { qos: "2" }), 1);
    assert.equal(metric(after, "mqtt_messages_sent_total"), 10);
    assert.equal(metric(after, "mqtt_messages_sent_total", { qos: "2" }), 1);
    assert.equal(metric(after, "mqtt_packets_received_total", { type: "connect" }), 2);
    assert.equal(metric(after, "mqtt_packets_received_total", { type: "publish" }), 10);
    assert.equal(metric(after, "mqtt_packets_received_total", { type: "subscribe" }), 1);
    assert.equal(metric(after, "mqtt_packets_sent_total", { type: "connack" }), 2);
    assert.equal(metric(after, "mqtt_packets_sent_total", { type: "puback" }), 4);
    assert.equal(metric(after, "mqtt_packets_sent_total", { type: "pubrec" }), 1);
    assert.ok(metric(after, "mqtt_sent_bytes_total", { type: "publish" }) > 10 * 5);
    assert.ok(metric(after, "mqtt_received_bytes_total") > metric(before, "mqtt_received_bytes_total"));
    assert.equal(metric(after, "mqtt_subscriptions"), 1);
    assert.equal(metric(after, "mqtt_shared_subscriptions"), 1);
    assert.equal(metric(after, "mqtt_retained_messages") - metric(before, "mqtt_retained_messages"), 1);
    assert.equal(metric(after, "mqtt_publish_delivery_seconds_count"), 10);
    assert.equal(metric(after, "mqtt_publish_delivery_seconds_bucket", { le: "+Inf" }), 10);
    assert.ok(metric(after, "mqtt_publish_delivery_seconds_bucket", { le: "0.1" }) >= 9);
    assert.equal(metric(after, "mqtt_hook_errors_total"), 0);
    assert.equal(metric(after, "mqtt_messages_inflight"), 0);
    assert.ok(metric(after, "deno_heap_used_bytes") > 0);
    assert.equal(after.get("mqtt_publish_delivery_seconds")!.type, "histogram");

    // A client that ends normally, one taken over, one disconnected by the server.
    await sub.endAsync();
    clients.shift();
    const taken = await mqtt.connectAsync(broker.url, {
      clientId: "pub",
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    clients.push(taken);
    await waitFor(() => metrics.connectionsClosed.size >= 2, 3000, "two closes");
    broker.server.disconnectClient(broker.server.clients.get("pub")!, 0x98);
    await waitFor(() => broker.server.info.clientsConnected === 0, 3000, "all closed");
    const closed = await scrape();
    assert.equal(metric(closed, "mqtt_connections_closed_total", { reason: "normal_disconnection" }), 1);
    assert.equal(metric(closed, "mqtt_connections_closed_total", { reason: "session_taken_over" }), 1);
    assert.equal(metric(closed, "mqtt_connections_closed_total", { reason: "administrative_action" }), 1);
    assert.equal(metric(closed, "mqtt_connections_opened_total"), 3);
    assert.equal(metric(closed, "mqtt_clients_connected"), 0);
    assert.equal(metric(closed, "mqtt_subscriptions"), 0);
  } finally {
    for (const c of clients) await c.endAsync(true);
    await close();
  }
});

Deno.test("/metrics counts refused connections and dropped messages by QoS and reason", async () => {
  const denyTopic: Hook = {
    id: "deny-secret",
    onPublish(_client, packet) {
      if (packet.topicName === "secret") throw new MqttError(0x87);
      return packet;
    },
  };
  const { broker, scrape, close } = await observedBroker(
    { capabilities: { maximumInflight: 2, maximumMessageExpiryInterval: 0 } },
    [denyTopic],
  );
  const raws: RawClient[] = [];
  try {
    // Refused: v3.1 with an empty client id.
    const { client: refused, connack } = await RawClient.connect(broker, "", { version: 3 });
    refused.close();
    assert.equal(connack.reasonCode, 2);

    // A subscriber that accepts only small packets, and an offline persistent session.
    const { client: small } = await RawClient.connect(broker, "small", {
      properties: { maximumPacketSize: 64 },
    });
    raws.push(small);
    small.send({
      fixedHeader: { type: PacketType.Subscribe, qos: 1 },
      packetId: 1,
      filters: [{ filter: "big", qos: 0 }],
    });
    await small.expect(PacketType.Suback);
    const { client: away } = await RawClient.connect(broker, "away", {
      connect: { clean: false },
      properties: { sessionExpiryInterval: 600 },
    });
    away.send({
      fixedHeader: { type: PacketType.Subscribe, qos: 1 },
      packetId: 1,
      filters: [{ filter: "q/#", qos: 1 }, { filter: "x", qos: 0 }],
    });
    await away.expect(PacketType.Suback);
    away.send({ fixedHeader: { type: PacketType.Disconnect }, reasonCode: 0 });
    await waitFor(() => broker.server.clients.get("away")?.closed === true, 3000, "away offline");

    const pub = await mqtt.connectAsync(broker.url, {
      clientId: "pub",
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    try {
      await pub.publishAsync("big", "x".repeat(200), { qos: 0 }); // too large for "small"
      for (let i = 0; i < 4; i++) await pub.publishAsync("q/1", "m", { qos: 1 }); // 2 queued, 2 over the limit
      await pub.publishAsync("x", "m", { qos: 0 }); // offline QoS 0 subscriber
      await pub.publishAsync("secret", "m", { qos: 1 }).catch(() => {}); // refused by a hook: 0x87
      await pub.publishAsync("$SYS/x", "m", { qos: 0 }); // clients may not publish to $ topics
      await delay(50);
    } finally {
      await pub.endAsync();
    }
    const m = await scrape();
    assert.equal(metric(m, "mqtt_connections_refused_total", { reason: "client_identifier_not_valid" }), 1);
    assert.equal(metric(m, "mqtt_messages_dropped_total", { qos: "0", reason: "too_large" }), 1);
    assert.equal(metric(m, "mqtt_messages_dropped_total", { qos: "1", reason: "queue_full" }), 2);
    assert.equal(metric(m, "mqtt_messages_dropped_total", { qos: "0", reason: "offline" }), 1);
    assert.equal(metric(m, "mqtt_messages_dropped_total", { qos: "1", reason: "acl_denied" }), 1);
    assert.equal(metric(m, "mqtt_messages_dropped_total", { qos: "0", reason: "acl_denied" }), 1);
    assert.equal(metric(m, "mqtt_messages_queued"), 2);
    assert.equal(metric(m, "mqtt_sessions", { state: "offline" }), 1);
    assert.equal(metric(m, "mqtt_sessions", { state: "online" }), 1);
    assert.equal(metric(m, "mqtt_clients_known"), 2);
  } finally {
    for (const raw of raws) raw.close();
    await close();
  }
});

Deno.test("/metrics reports storage queue depth and write latency, hook errors and event-loop lag", async () => {
  const failing: Hook = {
    id: "failing",
    onPublished() {
      throw new Error("boom");
    },
  };
  const storage = new MemoryHook();
  const { broker, metrics, scrape, close } = await observedBroker({}, [storage, failing], {
    sampleIntervalMs: 20,
  });
  try {
    const first = await scrape(); // binds the hook to the server's storage hooks
    assert.equal(metric(first, "mqtt_storage_queue_depth", { hook: storage.id }), 0);
    // A persistent session: a clean one writes nothing to storage.
    const sub = await mqtt.connectAsync(broker.url, {
      clientId: "s",
      protocolVersion: 5,
      reconnectPeriod: 0,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    try {
      await sub.subscribeAsync("st/#", { qos: 1 });
      for (let i = 0; i < 5; i++) {
        await sub.publishAsync("st/a", "v", { qos: 1 });
        await delay(5);
      }
      // Block the event loop for 150 ms: the drift sampler must notice.
      const until = performance.now() + 150;
      while (performance.now() < until) { /* busy */ }
      await delay(60);
      const m = await scrape();
      assert.ok(metric(m, "mqtt_storage_write_duration_seconds_count") >= 1);
      assert.equal(metric(m, "mqtt_hook_errors_total"), 5);
      assert.ok(metric(m, "deno_eventloop_lag_max_seconds") >= 0.1, "lag seen");
      assert.ok(metrics.history().length > 3);
    } finally {
      await sub.endAsync();
    }
  } finally {
    await close();
  }
  assert.ok(metrics.eventLoopLag >= 0);
});

Deno.test("Metrics listener serves /metrics only, with optional basic auth", async () => {
  const server = new Server();
  await server.addHook(new MetricsHook());
  const open = new Metrics({ id: "prom", address: "127.0.0.1:0" }, server);
  const locked = new Metrics({
    id: "prom2",
    address: "127.0.0.1:0",
    path: "/m",
    auth: { username: "p", password: "q" },
  }, server);
  await server.addListener(open);
  await server.addListener(locked);
  await server.addListener(new TCP({ id: "t", address: "127.0.0.1:0" }));
  await server.serve();
  try {
    const ok = await fetch(`http://${open.address}/metrics`);
    assert.equal(ok.status, 200);
    const families = parsePrometheus(await ok.text());
    assert.equal(metric(families, "mqtt_clients_connected"), 0);
    assert.ok(families.has("deno_eventloop_lag_seconds"));
    const missing = await fetch(`http://${open.address}/`);
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    const post = await fetch(`http://${open.address}/metrics`, { method: "POST" });
    assert.equal(post.status, 405);
    await post.body?.cancel();
    const denied = await fetch(`http://${locked.address}/m`);
    assert.equal(denied.status, 401);
    assert.match(denied.headers.get("www-authenticate") ?? "", /^Basic /);
    await denied.body?.cancel();
    const allowed = await fetch(`http://${locked.address}/m`, {
      headers: { authorization: "Basic " + btoa("p:q") },
    });
    assert.equal(allowed.status, 200);
    await allowed.body?.cancel();
  } finally {
    await server.close();
  }
});

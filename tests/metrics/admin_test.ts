/**
 * The REST admin API and the dashboard's access rules, over real HTTP with real MQTT clients:
 * every endpoint with and without credentials.
 */

import assert from "node:assert/strict";
import mqtt from "../mqtt.ts";
import { Buffer } from "node:buffer";
import { MetricsHook, type ObservabilityOptions } from "../../mod.ts";
import { observabilityHandler } from "../../src/app/metrics.ts";
import { delay, startBroker, type TestBroker, waitFor } from "../helpers.ts";

const AUTH = { authorization: "Basic " + btoa("admin:s3cret") };
const WRONG = { authorization: "Basic " + btoa("admin:nope") };

async function withAdmin(
  options: ObservabilityOptions,
  fn: (base: string, broker: TestBroker) => Promise<void>,
): Promise<void> {
  const broker = await startBroker({}, undefined);
  await broker.server.addHook(new MetricsHook());
  const handler = observabilityHandler(broker.server, options);
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request, info) => await handler(request, info) ?? new Response("Not Found", { status: 404 }),
  );
  try {
    await fn(`http://127.0.0.1:${http.addr.port}`, broker);
  } finally {
    await http.shutdown();
    await broker.close();
  }
}

async function call(
  url: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text);
  } catch {
    body = { text };
  }
  return { status: response.status, body, headers: response.headers };
}

const PROTECTED: [string, string][] = [
  ["GET", "/api/clients"],
  ["GET", "/api/clients/c1"],
  ["POST", "/api/clients/c1/disconnect"],
  ["DELETE", "/api/clients/c1"],
  ["GET", "/api/retained?filter=%23"],
  ["DELETE", "/api/retained/r%2F1"],
  ["GET", "/api/live"],
  ["GET", "/"],
  ["GET", "/dashboard.js"],
];

Deno.test("admin API and dashboard answer 401 without credentials and serve with them", async () => {
  await withAdmin({ username: "admin", password: "s3cret" }, async (base, broker) => {
    const c1 = await mqtt.connectAsync(broker.url, {
      clientId: "c1",
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    try {
      await c1.publishAsync("r/1", "kept", { qos: 1, retain: true });
      for (const [method, path] of PROTECTED) {
        const headers: Record<string, string> = path === "/" ? { accept: "text/html" } : {};
        const none = await call(base + path, { method, headers });
        assert.equal(none.status, 401, `${method} ${path} without credentials`);
        assert.equal(none.headers.get("www-authenticate"), 'Basic realm="broker", charset="UTF-8"');
        const wrong = await call(base + path, { method, headers: { ...headers, ...WRONG } });
        assert.equal(wrong.status, 401, `${method} ${path} with the wrong password`);
      }
      assert.equal(broker.server.clients.get("c1")?.closed, false, "nothing was done without credentials");
      assert.equal(broker.server.topics.retainedMessages("r/#").length, 1);

      // The same requests with credentials.
      const list = await call(base + "/api/clients", { headers: AUTH });
      assert.equal(list.status, 200);
      assert.equal(list.body.total, 1);
      const session = await call(base + "/api/clients/c1", { headers: AUTH });
      assert.equal(session.status, 200);
      assert.equal(session.body.id, "c1");
      const retained = await call(base + "/api/retained?filter=%23", { headers: AUTH });
      assert.equal(retained.status, 200);
      assert.deepEqual((retained.body.messages as { topic: string }[]).map((m) => m.topic), ["r/1"]);
      const live = await call(base + "/api/live", { headers: AUTH });
      assert.equal(live.status, 200);
      assert.equal((live.body.clients as { connected: number }).connected, 1);
      const page = await fetch(base + "/", { headers: { ...AUTH, accept: "text/html" } });
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<canvas id="chart-messages"/);
      const deleted = await call(base + "/api/retained/r%2F1", { method: "DELETE", headers: AUTH });
      assert.equal(deleted.status, 200);
      const disconnected = new Promise<number | undefined>((resolve) =>
        c1.once("disconnect", (packet) => resolve(packet.reasonCode))
      );
      const kicked = await call(base + "/api/clients/c1", { method: "DELETE", headers: AUTH });
      assert.equal(kicked.status, 200);
      assert.equal(await disconnected, 0x98);

      // /metrics and /api/info stay public (Prometheus and Mochi-style tools).
      const metrics = await fetch(base + "/metrics");
      assert.equal(metrics.status, 200);
      await metrics.body?.cancel();
      const info = await call(base + "/api/info");
      assert.equal(info.status, 200);
      assert.equal(info.body.threads, 1);
    } finally {
      await c1.endAsync(true);
    }
  });
});

Deno.test("without credentials the dashboard and admin API serve loopback callers only", async () => {
  await withAdmin({}, async (base, broker) => {
    const handler = observabilityHandler(broker.server);
    const remote = { remoteAddr: { transport: "tcp" as const, hostname: "192.0.2.7", port: 4000 } };
    const v6loop = { remoteAddr: { transport: "tcp" as const, hostname: "::1", port: 4000 } };
    for (const [method, path] of PROTECTED) {
      const request = () => new Request("http://broker" + path, { method, headers: { accept: "text/html" } });
      const refused = await handler(request(), remote);
      assert.equal(refused?.status, 403, `${method} ${path} from a remote address`);
      await refused?.body?.cancel();
      const unknown = await handler(request());
      assert.equal(unknown?.status, 403, `${method} ${path} from an unknown address`);
      await unknown?.body?.cancel();
    }
    const local = await handler(new Request("http://broker/api/clients"), v6loop);
    assert.equal(local?.status, 200);
    await local?.body?.cancel();
    // Not ours: left to the listener.
    assert.equal(await handler(new Request("http://broker/healthcheck"), v6loop), undefined);
    // Over real loopback HTTP.
    const list = await call(base + "/api/clients");
    assert.equal(list.status, 200);
    const metricsProtected = observabilityHandler(broker.server, { protectMetrics: true });
    const scrape = await metricsProtected(new Request("http://broker/metrics"), remote);
    assert.equal(scrape?.status, 403);
    await scrape?.body?.cancel();
  });
});

Deno.test("admin API lists clients in pages, shows a session, and disconnects with a reason code", async () => {
  await withAdmin({ username: "admin", password: "s3cret" }, async (base, broker) => {
    const clients: mqtt.MqttClient[] = [];
    try {
      for (const id of ["a", "b", "c", "d", "e"]) {
        clients.push(
          await mqtt.connectAsync(broker.url, { clientId: id, protocolVersion: 5, reconnectPeriod: 0 }),
        );
      }
      await clients[0].subscribeAsync({ "s/+": { qos: 1 }, "t/#": { qos: 0 } });
      const first = await call(base + "/api/clients?limit=2", { headers: AUTH });
      assert.equal(first.body.total, 5);
      const firstIds = (first.body.clients as { id: string }[]).map((c) => c.id);
      assert.deepEqual(firstIds, ["a", "b"]);
      const last = await call(base + "/api/clients?limit=2&offset=4", { headers: AUTH });
      assert.deepEqual((last.body.clients as { id: string }[]).map((c) => c.id), ["e"]);
      const filtered = await call(base + "/api/clients?q=c", { headers: AUTH });
      assert.equal(filtered.body.total, 1);
      const a = (first.body.clients as Record<string, unknown>[])[0];
      assert.equal(a.listener, "t1");
      assert.equal(a.protocolVersion, 5);
      assert.equal(a.subscriptions, 2);
      assert.equal(a.connected, true);
      assert.match(String(a.remote), /^127\.0\.0\.1:\d+$/);

      const session = await call(base + "/api/clients/a", { headers: AUTH });
      const subs = (session.body.subscriptionList as { filter: string; qos: number }[]).map((s) => s.filter)
        .sort();
      assert.deepEqual(subs, ["s/+", "t/#"]);
      assert.equal((await call(base + "/api/clients/nobody", { headers: AUTH })).status, 404);
      assert.equal((await call(base + "/api/clients/a", { method: "PUT", headers: AUTH })).status, 405);

      // A reason code servers may not send is refused; 0x8B is sent in a v5 DISCONNECT.
      const bad = await call(base + "/api/clients/b/disconnect", {
        method: "POST",
        headers: { ...AUTH, "content-type": "application/json" },
        body: JSON.stringify({ reasonCode: 4 }),
      });
      assert.equal(bad.status, 400);
      const gotB = new Promise<number | undefined>((resolve) =>
        clients[1].once("disconnect", (packet) => resolve(packet.reasonCode))
      );
      const kick = await call(base + "/api/clients/b/disconnect", {
        method: "POST",
        headers: { ...AUTH, "content-type": "application/json" },
        body: JSON.stringify({ reasonCode: "0x8b" }),
      });
      assert.equal(kick.status, 200);
      assert.equal(kick.body.reason, "server shutting down");
      assert.equal(await gotB, 0x8b);
      const gotC = new Promise<number | undefined>((resolve) =>
        clients[2].once("disconnect", (packet) => resolve(packet.reasonCode))
      );
      assert.equal(
        (await call(base + "/api/clients/c?reasonCode=152", { method: "DELETE", headers: AUTH })).status,
        200,
      );
      assert.equal(await gotC, 0x98);
      await waitFor(() => broker.server.info.clientsConnected === 3, 3000, "two disconnected");
      const online = await call(base + "/api/clients?state=online", { headers: AUTH });
      assert.equal(online.body.total, 3);
    } finally {
      for (const c of clients) await c.endAsync(true);
    }
  });
});

Deno.test("admin API lists retained messages by filter and deletes one without publishing", async () => {
  await withAdmin({ username: "admin", password: "s3cret" }, async (base, broker) => {
    const c = await mqtt.connectAsync(broker.url, { clientId: "p", protocolVersion: 5, reconnectPeriod: 0 });
    try {
      await c.publishAsync("home/kitchen/temp", "21.5", { qos: 1, retain: true });
      await c.publishAsync("home/hall/temp", "19", { qos: 0, retain: true });
      await c.publishAsync("office/temp", Buffer.from([0xff, 0xfe]), { qos: 1, retain: true });
      await delay(20);
      const all = await call(base + "/api/retained", { headers: AUTH });
      assert.equal(all.body.total, 3);
      const home = await call(base + "/api/retained?filter=home/%2B/temp", { headers: AUTH });
      const messages = home.body.messages as {
        topic: string;
        payload: string;
        encoding: string;
        qos: number;
      }[];
      assert.deepEqual(messages.map((m) => m.topic), ["home/hall/temp", "home/kitchen/temp"]);
      assert.equal(messages[1].payload, "21.5");
      assert.equal(messages[1].qos, 1);
      const office = await call(base + "/api/retained?filter=office/%23", { headers: AUTH });
      assert.equal((office.body.messages as { encoding: string }[])[0].encoding, "base64");
      assert.equal((await call(base + "/api/retained?filter=a/%23/b", { headers: AUTH })).status, 400);

      let received = 0;
      c.on("message", () => received++);
      await c.subscribeAsync("home/#", { qos: 0 });
      await waitFor(() => received === 2, 3000, "the two retained messages");
      received = 0;
      const before = broker.server.info.retained;
      const gone = await call(base + "/api/retained/" + encodeURIComponent("home/kitchen/temp"), {
        method: "DELETE",
        headers: AUTH,
      });
      assert.equal(gone.status, 200);
      assert.equal(broker.server.info.retained, before - 1);
      assert.equal(broker.server.topics.retained("home/kitchen/temp"), undefined);
      const again = await call(base + "/api/retained/" + encodeURIComponent("home/kitchen/temp"), {
        method: "DELETE",
        headers: AUTH,
      });
      assert.equal(again.status, 404);
      await delay(50);
      assert.equal(received, 0, "deleting a retained message publishes nothing");
    } finally {
      await c.endAsync(true);
    }
  });
});

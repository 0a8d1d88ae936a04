/**
 * A bridge's state and counters in `$SYS`, `/metrics`, the admin API and the dashboard's snapshot.
 *
 * @module
 */

import assert from "node:assert/strict";
import { AllowHook, Server, TCP } from "../../mod.ts";
import { adminHandler } from "../../src/app/admin.ts";
import { renderMetrics } from "../../src/app/prometheus.ts";
import { liveSnapshot } from "../../src/app/dashboard/dashboard.ts";
import { waitFor } from "../helpers.ts";
import { connected, startEdge } from "./setup.ts";

Deno.test("Bridge state and counters show in $SYS, /metrics, /api/bridges and the live snapshot", async () => {
  const cloud = new Server();
  await cloud.addHook(new AllowHook());
  const tcp = new TCP({ id: "t", address: "127.0.0.1:0" });
  await cloud.addListener(tcp);
  await cloud.serve();
  const sys = new Map<string, string>();
  await using edge = await startEdge({ address: `mqtt://${tcp.address}`, topics: ["m/# out 1"] }, {
    sysTopicResendInterval: 1,
  }, (server) =>
    server.subscribe("$SYS/broker/bridges/#", 9, (_c, _s, packet) => {
      sys.set(packet.topicName!, new TextDecoder().decode(packet.payload));
    }));
  await connected(edge.bridge);
  await edge.server.publish("m/1", "x", false, 1);
  await waitFor(() => edge.bridge.status().sent === 1, 3000, "the message sent");

  const metrics = renderMetrics(edge.server);
  assert.match(metrics, /mqtt_bridge_connected\{bridge="cloud"\} 1/);
  assert.match(metrics, /mqtt_bridge_messages_sent_total\{bridge="cloud"\} 1/);

  const admin = adminHandler(edge.server);
  const info = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } } as Deno.ServeHandlerInfo;
  const response = await admin(new Request("http://127.0.0.1/api/bridges"), info);
  const [status] = await response!.json();
  assert.equal(status.id, "cloud");
  assert.equal(status.connected, true);
  assert.equal(status.sent, 1);

  assert.equal(liveSnapshot(edge.server, undefined).bridges[0].state, "connected");

  await waitFor(() => sys.get("$SYS/broker/bridges/cloud/sent") === "1", 3000, "$SYS counters");
  assert.equal(sys.get("$SYS/broker/bridges/cloud/connected"), "1");
  await edge.close();
  await cloud.close();
});

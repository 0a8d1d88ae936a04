/**
 * A real headless Chromium loads a page that uses MQTT.js's browser bundle to connect over
 * WebSocket, subscribe, and receive a message published by a TCP client.
 *
 * Needs Debian's `chromium` (`apt-get install -y chromium`; `.ci/run` installs it). Without it the
 * test is skipped locally, and fails when `CI` is set.
 */

import assert from "node:assert/strict";
import { assertChromium, launchChromium, skipBrowserTests } from "./chromium.ts";
import mqtt from "../mqtt.ts";
import { AllowHook, Server, TCP, WebSocket } from "../../mod.ts";

const PAGE = (wsUrl: string) =>
  `<!doctype html>
<html><head><meta charset="utf-8"><title>mqtt over websocket</title></head>
<body>
<script src="/mqtt.min.js"></script>
<script>
  window.state = { connected: false, subscribed: false, received: null, error: null };
  const client = mqtt.connect(${
    JSON.stringify(wsUrl)
  }, { protocolVersion: 5, clientId: "browser", reconnectPeriod: 0 });
  client.on("connect", () => {
    window.state.connected = true;
    client.subscribe("browser/#", { qos: 1 }, (error) => {
      if (error) window.state.error = String(error);
      else window.state.subscribed = true;
    });
  });
  client.on("message", (topic, payload) => { window.state.received = topic + "=" + payload.toString(); });
  client.on("error", (error) => { window.state.error = String(error); });
</script>
</body></html>`;

Deno.test({
  name: "a browser's MQTT.js connects over WebSocket and receives a message published over TCP",
  ignore: skipBrowserTests,
  // Playwright keeps pipes and timers of its own around the browser process.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    assertChromium();
    const bundle = await Deno.readFile(new URL("../../node_modules/mqtt/dist/mqtt.min.js", import.meta.url));

    // The page server first: its origin goes on the WebSocket listener's allow-list.
    let wsAddress = "";
    const page = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (request) => {
      const path = new URL(request.url).pathname;
      if (path === "/mqtt.min.js") {
        return new Response(bundle, { headers: { "content-type": "text/javascript" } });
      }
      if (path === "/") {
        return new Response(PAGE(`ws://${wsAddress}/mqtt`), { headers: { "content-type": "text/html" } });
      }
      return new Response("Not Found", { status: 404 });
    });
    const origin = `http://127.0.0.1:${page.addr.port}`;

    const server = new Server();
    await server.addHook(new AllowHook());
    const tcp = new TCP({ id: "tcp", address: "127.0.0.1:0" });
    const ws = new WebSocket({ id: "ws", address: "127.0.0.1:0", allowedOrigins: [origin] });
    await server.addListener(tcp);
    await server.addListener(ws);
    await server.serve();
    wsAddress = ws.address;

    const profile = await Deno.makeTempDir({ prefix: "broker-chromium-" });
    const context = await launchChromium(profile);
    let publisher: mqtt.MqttClient | undefined;
    try {
      const tab = context.pages()[0] ?? await context.newPage();
      await tab.goto(`${origin}/`);
      await tab.waitForFunction(
        () =>
          (globalThis as unknown as { state: { subscribed: boolean; error: string | null } }).state
            .subscribed,
        undefined,
        { timeout: 10000 },
      );
      const browserClient = server.clients.get("browser");
      assert.equal(browserClient?.net.listener, "ws");

      publisher = await mqtt.connectAsync(`mqtt://${tcp.address}`, {
        reconnectPeriod: 0,
        protocolVersion: 5,
      });
      await publisher.publishAsync("browser/hello", "from tcp", { qos: 1 });
      const received = await tab.waitForFunction(
        () => (globalThis as unknown as { state: { received: string | null } }).state.received,
        undefined,
        { timeout: 10000 },
      );
      assert.equal(await received.jsonValue(), "browser/hello=from tcp");
    } finally {
      await publisher?.endAsync();
      await context.close();
      await server.close();
      await page.shutdown();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    }
  },
});

/**
 * The dashboard in a real headless Chromium: it shows the client count change as MQTT clients
 * connect, its chart updates as messages flow, and its client table disconnects a client. A
 * screenshot is saved to `tests/artifacts/dashboard.png` (and, with `UPDATE_DOCS=1`, to `docs/dashboard.png`,
 * shown in the README).
 *
 * Needs Debian's `chromium` (`apt-get install -y chromium`; `.ci/run` installs it). Without it the
 * test is skipped locally, and fails when `CI` is set.
 */

import assert from "node:assert/strict";
import { assertChromium, launchChromium, skipBrowserTests } from "../browser/chromium.ts";
import mqtt from "../mqtt.ts";
import type { Page } from "../playwright.ts";
import { AllowHook, MetricsHook, Server, TCP } from "../../mod.ts";
import { observabilityHandler } from "../../src/app/metrics.ts";

/** The test artifact (git-ignored); with UPDATE_DOCS=1 the README's copy in docs/ is replaced too. */
const SCREENSHOT = new URL("../artifacts/dashboard.png", import.meta.url);
const DOCS_SCREENSHOT = new URL("../../docs/dashboard.png", import.meta.url);

/** Waits until the element's text is `value`. */
async function waitForText(tab: Page, id: string, value: string): Promise<void> {
  await tab.waitForFunction(
    `document.getElementById(${JSON.stringify(id)}).textContent === ${JSON.stringify(value)}`,
    undefined,
    { timeout: 10000 },
  );
}

interface DashboardState {
  ticks: number;
  chartDraws: number;
  total: number;
}

Deno.test({
  name: "dashboard shows clients connecting, updates its chart, and disconnects a client from its table",
  ignore: skipBrowserTests,
  // Playwright keeps pipes and timers of its own around the browser process.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    assertChromium();

    const server = new Server();
    await server.addHook(new AllowHook());
    await server.addHook(new MetricsHook({ sampleIntervalMs: 500 }));
    const tcp = new TCP({ id: "tcp", address: "127.0.0.1:0" });
    await server.addListener(tcp);
    await server.serve();
    const handler = observabilityHandler(server);
    const http = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen() {} },
      async (request, info) => await handler(request, info) ?? new Response("Not Found", { status: 404 }),
    );
    const url = `http://127.0.0.1:${http.addr.port}/`;

    const profile = await Deno.makeTempDir({ prefix: "broker-dashboard-" });
    const context = await launchChromium(profile, { width: 1280, height: 900 });
    const clients: mqtt.MqttClient[] = [];
    let traffic: ReturnType<typeof setInterval> | undefined;
    try {
      const tab = context.pages()[0] ?? await context.newPage();
      const pageErrors: string[] = [];
      tab.on("pageerror", (error) => pageErrors.push(String(error)));
      await tab.goto(url);
      await waitForText(tab, "connected", "0");

      // Clients connect: the count on the page follows.
      const ids = ["sensor-1", "sensor-2", "sensor-3", "victim"];
      for (const clientId of ids) {
        clients.push(
          await mqtt.connectAsync(`mqtt://${tcp.address}`, {
            clientId,
            protocolVersion: 5,
            reconnectPeriod: 0,
          }),
        );
      }
      await clients[0].subscribeAsync({ "plant/#": { qos: 1 } });
      await clients[1].subscribeAsync({ "plant/+/temp": { qos: 0 }, "$share/workers/jobs/#": { qos: 1 } });
      await clients[2].publishAsync("plant/line1/status", "running", { qos: 1, retain: true });
      await waitForText(tab, "connected", "4");

      // Messages flow: the chart is redrawn with a non-zero rate.
      const chart = tab.locator("#chart-messages");
      const drawsBefore = await tab.evaluate(() =>
        (globalThis as unknown as { dashboard: DashboardState }).dashboard.chartDraws
      );
      const imageBefore = await chart.evaluate((canvas) =>
        (canvas as unknown as { toDataURL(): string }).toDataURL()
      );
      let n = 0;
      traffic = setInterval(() => {
        for (let i = 0; i < 20; i++) {
          clients[2].publish(`plant/line${i % 3}/temp`, String(20 + (n++ % 7)), { qos: 0 });
        }
      }, 50);
      await tab.waitForFunction(
        `dashboard.chartDraws > ${drawsBefore} &&
          Number((document.getElementById("chart-messages").dataset.last || "0").split(",")[0]) > 0`,
        undefined,
        { timeout: 10000 },
      );
      // Let a few seconds of traffic reach the chart before the screenshot.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      const imageAfter = await chart.evaluate((canvas) =>
        (canvas as unknown as { toDataURL(): string }).toDataURL()
      );
      assert.notEqual(imageAfter, imageBefore, "the chart was redrawn");
      const rateIn = Number(await tab.locator("#rate-in").textContent());
      assert.ok(rateIn > 0, `messages in per second on the page: ${rateIn}`);

      // The client table lists the four clients with their details.
      const row = tab.locator('tr[data-id="victim"]');
      await row.waitFor({ timeout: 10000 });
      const cells = await row.locator("td").allTextContents();
      assert.equal(cells[1], "tcp");
      assert.match(cells[2], /^127\.0\.0\.1:\d+$/);
      assert.equal(cells[3], "v5");
      const sensorRow = await tab.locator('tr[data-id="sensor-2"] td').allTextContents();
      assert.equal(sensorRow[4], "2", "subscriptions column");

      await Deno.mkdir(new URL(".", SCREENSHOT), { recursive: true });
      await tab.screenshot({ path: SCREENSHOT.pathname, fullPage: true });
      if (Deno.env.get("UPDATE_DOCS") === "1") await Deno.copyFile(SCREENSHOT, DOCS_SCREENSHOT);

      // Disconnect from the table: the client gets a v5 DISCONNECT 0x98 and the count drops.
      const victim = clients[3];
      const reason = new Promise<number | undefined>((resolve) =>
        victim.once("disconnect", (packet) => resolve(packet.reasonCode))
      );
      await row.locator("button.disconnect").click();
      assert.equal(await reason, 0x98);
      await waitForText(tab, "connected", "3");
      await row.waitFor({ state: "detached", timeout: 10000 });
      assert.equal(server.clients.get("victim")?.closed ?? true, true);
      assert.deepEqual(pageErrors, []);
    } finally {
      clearInterval(traffic);
      for (const c of clients) await c.endAsync(true);
      await context.close();
      await http.shutdown();
      await server.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    }
  },
});

/**
 * A broker for browsers: MQTT over WebSocket on `ws://localhost:1882/mqtt`, plain TCP on `:1883`
 * for other clients, and `$SYS` statistics as JSON on `http://localhost:8080/`.
 *
 * Run: `deno run -A examples/websocket/main.ts`, then open `http://localhost:8000/` (served here
 * too) to see MQTT.js in the browser subscribe and receive what `mosquitto_pub -t demo/x -m hi`
 * sends over TCP.
 */

import { AllowHook, HTTPStats, Server, TCP, WebSocket } from "../../mod.ts";

const server = new Server();
await server.addHook(new AllowHook());
await server.addListener(new TCP({ id: "tcp", address: ":1883" }));
await server.addListener(
  new WebSocket({
    id: "ws",
    address: ":1882",
    path: "/mqtt",
    // Browsers send Origin; only this page may connect. Non-browser clients send none.
    allowedOrigins: ["http://localhost:8000", "http://127.0.0.1:8000"],
    // Behind a reverse proxy on this host, believe its X-Forwarded-For header.
    trustedProxies: ["127.0.0.1"],
  }),
);
await server.addListener(new HTTPStats({ id: "stats", address: ":8080" }, server.info));
await server.serve();

const page = `<!doctype html><meta charset="utf-8"><title>MQTT over WebSocket</title>
<script src="https://unpkg.com/mqtt/dist/mqtt.min.js"></script>
<pre id="log"></pre>
<script>
  const log = (line) => document.getElementById("log").textContent += line + "\\n";
  const client = mqtt.connect("ws://" + location.hostname + ":1882/mqtt", { protocolVersion: 5 });
  client.on("connect", () => { log("connected"); client.subscribe("demo/#"); });
  client.on("message", (topic, payload) => log(topic + ": " + payload));
</script>`;
const http = Deno.serve(
  { port: 8000, onListen() {} },
  () => new Response(page, { headers: { "content-type": "text/html" } }),
);
console.error("Open http://localhost:8000/ ; Ctrl-C to stop");

const stop = () => Promise.all([server.close(), http.shutdown()]).then(() => Deno.exit(0));
Deno.addSignalListener("SIGINT", stop);
Deno.addSignalListener("SIGTERM", stop);

/**
 * The dashboard page (hand-written; no build step, no CDN).
 *
 * @module
 */

/** `index.html` of the dashboard. */
export const INDEX_HTML: string = String.raw`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>MQTT broker</title>
<link rel="stylesheet" href="dashboard.css">
</head>
<body>
<header>
  <h1>MQTT broker <span id="version"></span></h1>
  <span id="status" class="status">connecting…</span>
  <span class="uptime">up <b id="uptime">–</b></span>
</header>
<main>
  <section class="tiles" aria-label="Counters">
    <div class="tile"><span class="label">Connected clients</span><b id="connected">–</b><small>max <span id="maximum">–</span></small></div>
    <div class="tile"><span class="label">Sessions</span><b id="sessions">–</b><small><span id="offline">–</span> offline</small></div>
    <div class="tile"><span class="label">Messages in /s</span><b id="rate-in">–</b><small><span id="received">–</span> total</small></div>
    <div class="tile"><span class="label">Messages out /s</span><b id="rate-out">–</b><small><span id="sent">–</span> total</small></div>
    <div class="tile"><span class="label">Dropped</span><b id="dropped">–</b><small>in flight <span id="inflight">–</span>, queued <span id="queued">–</span></small></div>
    <div class="tile"><span class="label">Subscriptions</span><b id="subscriptions">–</b><small><span id="shared">–</span> shared</small></div>
    <div class="tile"><span class="label">Retained</span><b id="retained">–</b><small>messages</small></div>
    <div class="tile"><span class="label">Memory</span><b id="memory">–</b><small>loop lag <span id="lag">–</span></small></div>
  </section>
  <section class="charts">
    <figure>
      <figcaption>Messages per second <span class="key in">in</span> <span class="key out">out</span></figcaption>
      <canvas id="chart-messages" width="600" height="180"></canvas>
    </figure>
    <figure>
      <figcaption>Connected clients</figcaption>
      <canvas id="chart-clients" width="600" height="180"></canvas>
    </figure>
  </section>
  <section class="nodes" id="nodes-section" hidden>
    <h2>Cluster <small>this node: <span id="node-id"></span></small></h2>
    <table>
      <thead><tr><th>Node</th><th>State</th><th>Connections</th><th>Messages/s</th></tr></thead>
      <tbody id="nodes"></tbody>
    </table>
  </section>
  <section class="bridges" id="bridges-section" hidden>
    <h2>Bridges</h2>
    <table>
      <thead><tr><th>Bridge</th><th>Remote</th><th>State</th><th>Queued</th><th>In flight</th><th>Sent</th><th>Received</th><th>Dropped</th><th>Last error</th></tr></thead>
      <tbody id="bridges"></tbody>
    </table>
  </section>
  <section class="clients">
    <h2>Clients <small id="clients-total"></small></h2>
    <div class="toolbar">
      <input id="filter" type="search" placeholder="filter by id or address" aria-label="Filter clients">
      <button id="prev" type="button">‹ Prev</button>
      <span id="page">–</span>
      <button id="next" type="button">Next ›</button>
    </div>
    <table>
      <thead><tr><th>Client id</th><th>Listener</th><th>Remote address</th><th>Protocol</th><th>Subs</th><th>In flight</th><th>Connected since</th><th></th></tr></thead>
      <tbody id="clients"></tbody>
    </table>
    <pre id="session" hidden></pre>
  </section>
</main>
<script src="dashboard.js"></script>
</body>
</html>
`;

/**
 * The dashboard's script: polls `api/live` every second, draws two canvas charts, fills the
 * counters, and pages through `api/clients` with a disconnect button per row. Plain browser
 * JavaScript, no dependencies. `window.dashboard` exposes its state to tests.
 *
 * @module
 */

/** `dashboard.js` of the dashboard. */
export const DASHBOARD_JS: string = String.raw`"use strict";
(function () {
  var PAGE_SIZE = 10;
  var KEEP_MS = 5 * 60 * 1000;
  var state = { ticks: 0, chartDraws: 0, points: [], last: 0, offset: 0, total: 0, filter: "", live: null, error: null };
  window.dashboard = state;

  function $(id) { return document.getElementById(id); }
  function text(id, value) { $(id).textContent = value; }
  function fmt(n) {
    if (n >= 1e9) return (n / 1e9).toFixed(1) + "G";
    if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
    if (n >= 1e4) return (n / 1e3).toFixed(1) + "k";
    return String(Math.round(n * 10) / 10);
  }
  function bytes(n) {
    var units = ["B", "KiB", "MiB", "GiB"], i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + units[i];
  }
  function duration(s) {
    var d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m " + (s % 60) + "s";
  }
  function since(ms) {
    if (!ms) return "–";
    var d = new Date(ms);
    return d.toLocaleDateString() + " " + d.toLocaleTimeString();
  }

  function rates() {
    var out = { t: [], inRate: [], outRate: [], clients: [] };
    var p = state.points;
    for (var i = 0; i < p.length; i++) {
      out.t.push(p[i].t);
      out.clients.push(p[i].connected);
      if (i === 0) { out.inRate.push(0); out.outRate.push(0); continue; }
      var dt = Math.max(0.001, (p[i].t - p[i - 1].t) / 1000);
      out.inRate.push(Math.max(0, (p[i].received - p[i - 1].received) / dt));
      out.outRate.push(Math.max(0, (p[i].sent - p[i - 1].sent) / dt));
    }
    return out;
  }

  function draw(canvas, times, series) {
    var ratio = window.devicePixelRatio || 1;
    var w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
    if (canvas.width !== Math.round(w * ratio)) { canvas.width = Math.round(w * ratio); canvas.height = Math.round(h * ratio); }
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    var left = 44, bottom = 20, top = 8, right = 8;
    var max = 1;
    series.forEach(function (s) { s.values.forEach(function (v) { if (v > max) max = v; }); });
    max = niceMax(max * 1.1 / 4) * 4;
    var now = times.length ? times[times.length - 1] : Date.now();
    var span = Math.max(60000, now - (times.length ? times[0] : now));
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#6b7384";
    ctx.strokeStyle = "#e2e5ea";
    ctx.lineWidth = 1;
    for (var g = 0; g <= 4; g++) {
      var y = top + (h - top - bottom) * (1 - g / 4);
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(w - right, y); ctx.stroke();
      ctx.fillText(fmt(max * g / 4), 4, y + 4);
    }
    ctx.fillText("-" + Math.round(span / 1000) + " s", left, h - 4);
    ctx.fillText("now", w - right - 22, h - 4);
    series.forEach(function (s) {
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 2;
      ctx.beginPath();
      for (var i = 0; i < s.values.length; i++) {
        var x = left + (w - left - right) * (1 - (now - times[i]) / span);
        var y = top + (h - top - bottom) * (1 - s.values[i] / max);
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      }
      ctx.stroke();
    });
    canvas.dataset.points = String(times.length);
    canvas.dataset.last = series.map(function (s) { return s.values.length ? s.values[s.values.length - 1] : 0; }).join(",");
    state.chartDraws++;
  }
  function niceMax(v) {
    var p = Math.pow(10, Math.floor(Math.log10(v)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * p >= v) return steps[i] * p;
    return 10 * p;
  }

  function render(live) {
    var css = getComputedStyle(document.documentElement);
    text("version", live.version);
    text("uptime", duration(live.uptime));
    text("connected", fmt(live.clients.connected));
    text("maximum", fmt(live.clients.maximum));
    text("sessions", fmt(live.sessions.online + live.sessions.offline));
    text("offline", fmt(live.sessions.offline));
    text("received", fmt(live.messages.received));
    text("sent", fmt(live.messages.sent));
    text("dropped", fmt(live.messages.dropped));
    text("inflight", fmt(live.messages.inflight));
    text("queued", fmt(live.messages.queued));
    text("subscriptions", fmt(live.subscriptions));
    text("shared", fmt(live.sharedSubscriptions));
    text("retained", fmt(live.retained));
    text("memory", bytes(live.memory.rss));
    text("lag", live.eventLoopLag === null ? "–" : (live.eventLoopLag * 1000).toFixed(1) + " ms");
    var r = rates();
    text("rate-in", fmt(r.inRate.length ? r.inRate[r.inRate.length - 1] : 0));
    text("rate-out", fmt(r.outRate.length ? r.outRate[r.outRate.length - 1] : 0));
    draw($("chart-messages"), r.t, [
      { values: r.inRate, color: css.getPropertyValue("--in").trim() || "#2f6fdf" },
      { values: r.outRate, color: css.getPropertyValue("--out").trim() || "#e07b22" },
    ]);
    draw($("chart-clients"), r.t, [{ values: r.clients, color: css.getPropertyValue("--clients").trim() || "#2a9d6a" }]);
    renderBridges(live.bridges || []);
    renderNodes(live.cluster);
  }

  function renderNodes(cluster) {
    $("nodes-section").hidden = !cluster;
    if (!cluster) return;
    text("node-id", cluster.nodeId);
    var body = $("nodes");
    body.textContent = "";
    cluster.nodes.forEach(function (n) {
      var row = document.createElement("tr");
      if (n.id === cluster.nodeId) row.className = "self";
      [n.id, n.alive ? "alive" : "dead", fmt(n.connections), fmt(n.messagesPerSecond)].forEach(function (value) {
        var cell = document.createElement("td");
        cell.textContent = value;
        row.appendChild(cell);
      });
      body.appendChild(row);
    });
  }

  function renderBridges(bridges) {
    $("bridges-section").hidden = bridges.length === 0;
    var body = $("bridges");
    body.textContent = "";
    bridges.forEach(function (b) {
      var row = document.createElement("tr");
      [b.id, b.address, b.state, fmt(b.queued), fmt(b.inflight), fmt(b.sent), fmt(b.received), fmt(b.dropped), b.lastError]
        .forEach(function (value) {
          var cell = document.createElement("td");
          cell.textContent = value;
          row.appendChild(cell);
        });
      body.appendChild(row);
    });
  }

  function poll() {
    fetch("api/live?since=" + state.last, { cache: "no-store" }).then(function (res) {
      if (!res.ok) throw new Error("HTTP " + res.status);
      return res.json();
    }).then(function (live) {
      state.live = live;
      live.history.forEach(function (p) { if (p.t > state.last) { state.points.push(p); state.last = p.t; } });
      var cutoff = live.time - KEEP_MS;
      while (state.points.length && state.points[0].t < cutoff) state.points.shift();
      render(live);
      state.ticks++;
      state.error = null;
      $("status").textContent = "live";
      $("status").className = "status";
      return loadClients();
    }).catch(function (error) {
      state.error = String(error);
      $("status").textContent = "offline: " + error.message;
      $("status").className = "status down";
    });
  }

  function loadClients() {
    var url = "api/clients?state=online&offset=" + state.offset + "&limit=" + PAGE_SIZE + "&q=" + encodeURIComponent(state.filter);
    return fetch(url, { cache: "no-store" }).then(function (res) { return res.json(); }).then(function (page) {
      state.total = page.total;
      if (state.offset > 0 && state.offset >= page.total) { state.offset = Math.max(0, page.total - PAGE_SIZE); }
      text("clients-total", page.total + " connected");
      var pages = Math.max(1, Math.ceil(page.total / PAGE_SIZE));
      text("page", (Math.floor(state.offset / PAGE_SIZE) + 1) + " / " + pages);
      $("prev").disabled = state.offset === 0;
      $("next").disabled = state.offset + PAGE_SIZE >= page.total;
      var body = $("clients");
      body.textContent = "";
      page.clients.forEach(function (c) {
        var tr = document.createElement("tr");
        tr.dataset.id = c.id;
        [c.id, c.listener, c.remote, "v" + (c.protocolVersion === 5 ? "5" : c.protocolVersion === 4 ? "3.1.1" : "3.1"),
          c.subscriptions, c.inflight, since(c.connectedAt)].forEach(function (v, i) {
          var td = document.createElement("td");
          td.textContent = String(v);
          if (i === 0) { td.className = "id"; td.title = "Show the session"; td.onclick = function () { showSession(c.id); }; }
          tr.appendChild(td);
        });
        var td = document.createElement("td");
        var button = document.createElement("button");
        button.type = "button";
        button.className = "disconnect";
        button.textContent = "Disconnect";
        button.onclick = function () { disconnect(c.id, button); };
        td.appendChild(button);
        tr.appendChild(td);
        body.appendChild(tr);
      });
    });
  }

  function showSession(id) {
    fetch("api/clients/" + encodeURIComponent(id), { cache: "no-store" }).then(function (res) { return res.json(); })
      .then(function (session) { var pre = $("session"); pre.hidden = false; pre.textContent = JSON.stringify(session, null, 2); });
  }

  function disconnect(id, button) {
    button.disabled = true;
    fetch("api/clients/" + encodeURIComponent(id) + "/disconnect", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ reasonCode: 0x98 }),
    }).then(function () { return loadClients(); });
  }

  $("prev").onclick = function () { state.offset = Math.max(0, state.offset - PAGE_SIZE); loadClients(); };
  $("next").onclick = function () { state.offset += PAGE_SIZE; loadClients(); };
  $("filter").oninput = function (e) { state.filter = e.target.value; state.offset = 0; loadClients(); };
  poll();
  setInterval(poll, 1000);
})();
`;

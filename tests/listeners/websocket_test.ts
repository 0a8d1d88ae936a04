/**
 * The WebSocket listener with raw clients: frame boundaries, subprotocols, paths, origins,
 * X-Forwarded-For, text frames and shutdown.
 */

import assert from "node:assert/strict";
import { AllowHook, type Packet, PacketType, Server, WebSocket, type WebSocketConfig } from "../../mod.ts";
import { ByteWriter, decodePacket, encodePacket, FRAME_READY, PacketFramer } from "../../src/packets/mod.ts";
import { connectPacket, waitFor } from "../helpers.ts";

async function startWs(config: Partial<WebSocketConfig> = {}) {
  const server = new Server();
  await server.addHook(new AllowHook());
  const ws = new WebSocket({ id: "ws", address: "127.0.0.1:0", ...config });
  await server.addListener(ws);
  await server.serve();
  return { server, ws, port: Number(ws.address.split(":").pop()), close: () => server.close() };
}

function encode(...packets: Packet[]): Uint8Array {
  const out = new ByteWriter(256);
  for (const packet of packets) encodePacket(packet, 5, out);
  return out.toBytes().slice();
}

/** A browser-style WebSocket client that decodes the MQTT packets it receives. */
class WsClient {
  readonly socket: globalThis.WebSocket;
  readonly packets: Packet[] = [];
  readonly #framer = new PacketFramer();
  closed = false;

  constructor(url: string, protocols: string[] = ["mqtt"]) {
    this.socket = new globalThis.WebSocket(url, protocols);
    this.socket.binaryType = "arraybuffer";
    this.socket.onmessage = (event) => {
      this.#framer.push(new Uint8Array(event.data as ArrayBuffer));
      while (this.#framer.next() === FRAME_READY) {
        const packet = decodePacket(this.#framer.header, this.#framer.body, 5);
        if (typeof packet !== "number") {
          if (packet.payload) packet.payload = packet.payload.slice();
          this.packets.push(packet);
        }
      }
    };
    this.socket.onclose = () => this.closed = true;
  }

  opened(): Promise<void> {
    if (this.socket.readyState === this.socket.OPEN) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.socket.onopen = () => resolve();
      this.socket.onerror = (e) => reject(new Error(`WebSocket failed: ${(e as ErrorEvent).message}`));
    });
  }

  async waitForTypes(types: number[]): Promise<void> {
    await waitFor(() => this.packets.length >= types.length, 3000, `packets ${types}`);
    assert.deepEqual(this.packets.map((p) => p.fixedHeader.type), types);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const closed = new Promise((resolve) => this.socket.addEventListener("close", resolve));
    this.socket.close();
    await closed;
  }
}

/** Sends an HTTP upgrade request over raw TCP and returns the status and the open socket. */
async function rawUpgrade(
  port: number,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; head: string; conn: Deno.TcpConn }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: 127.0.0.1:${port}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  await conn.write(new TextEncoder().encode(lines.join("\r\n") + "\r\n\r\n"));
  let head = "";
  const buffer = new Uint8Array(4096);
  while (!head.includes("\r\n\r\n")) {
    const n = await conn.read(buffer);
    if (n === null) break;
    head += new TextDecoder().decode(buffer.subarray(0, n));
  }
  return { status: Number(head.split(" ")[1]), head, conn };
}

/** A masked binary WebSocket frame (client to server), payload under 126 bytes. */
function clientFrame(payload: Uint8Array): Uint8Array {
  assert.ok(payload.length < 126);
  const frame = new Uint8Array(6 + payload.length);
  frame[0] = 0x82;
  frame[1] = 0x80 | payload.length;
  frame.set(payload, 6); // mask key 0,0,0,0: payload unchanged
  return frame;
}

Deno.test("WebSocket listener reassembles a packet split over frames and splits frames holding several packets", async () => {
  const broker = await startWs();
  const client = new WsClient(`ws://127.0.0.1:${broker.port}/mqtt`);
  try {
    await client.opened();
    assert.equal(client.socket.protocol, "mqtt");
    const connect = encode(connectPacket("frames", 5));
    // CONNECT in three frames, one of them a single byte.
    client.socket.send(connect.subarray(0, 1));
    client.socket.send(connect.subarray(1, 5));
    client.socket.send(connect.subarray(5));
    await client.waitForTypes([PacketType.Connack]);
    // SUBSCRIBE, a PUBLISH to it and PINGREQ in one frame; then a PUBLISH split across two frames.
    client.socket.send(encode(
      { fixedHeader: { type: PacketType.Subscribe }, packetId: 1, filters: [{ filter: "f/#", qos: 0 }] },
      {
        fixedHeader: { type: PacketType.Publish },
        topicName: "f/1",
        payload: new TextEncoder().encode("one"),
      },
      { fixedHeader: { type: PacketType.Pingreq } },
    ));
    const second = encode({
      fixedHeader: { type: PacketType.Publish },
      topicName: "f/2",
      payload: new TextEncoder().encode("two"),
    });
    client.socket.send(second.subarray(0, 3));
    client.socket.send(second.subarray(3));
    await client.waitForTypes([
      PacketType.Connack,
      PacketType.Suback,
      PacketType.Publish,
      PacketType.Pingresp,
      PacketType.Publish,
    ]);
    const payloads = client.packets.filter((p) => p.fixedHeader.type === PacketType.Publish)
      .map((p) => `${p.topicName}=${new TextDecoder().decode(p.payload)}`);
    assert.deepEqual(payloads, ["f/1=one", "f/2=two"]);
  } finally {
    await client.close();
    await broker.close();
  }
});

Deno.test("WebSocket listener accepts the configured path, / and mqttv3.1, and refuses others", async () => {
  const broker = await startWs({ path: "/broker" });
  try {
    const onRoot = await rawUpgrade(broker.port, "/", { "Sec-WebSocket-Protocol": "mqtt" });
    onRoot.conn.close();
    assert.equal(onRoot.status, 101);
    const old = await rawUpgrade(broker.port, "/broker", { "Sec-WebSocket-Protocol": "mqttv3.1" });
    old.conn.close();
    assert.equal(old.status, 101);
    assert.match(old.head, /sec-websocket-protocol: mqttv3\.1/i);
    const wrongPath = await rawUpgrade(broker.port, "/mqtt", { "Sec-WebSocket-Protocol": "mqtt" });
    wrongPath.conn.close();
    assert.equal(wrongPath.status, 404);
    const wrongProtocol = await rawUpgrade(broker.port, "/broker", { "Sec-WebSocket-Protocol": "chat" });
    wrongProtocol.conn.close();
    assert.equal(wrongProtocol.status, 400);
    const plain = await fetch(`http://127.0.0.1:${broker.port}/broker`);
    await plain.body?.cancel();
    assert.equal(plain.status, 426);
  } finally {
    await broker.close();
  }
});

Deno.test("WebSocket listener refuses origins outside the allow-list", async () => {
  const broker = await startWs({ allowedOrigins: ["https://app.example.com"] });
  try {
    const allowed = await rawUpgrade(broker.port, "/mqtt", {
      "Sec-WebSocket-Protocol": "mqtt",
      Origin: "https://app.example.com",
    });
    allowed.conn.close();
    assert.equal(allowed.status, 101);
    const refused = await rawUpgrade(broker.port, "/mqtt", {
      "Sec-WebSocket-Protocol": "mqtt",
      Origin: "https://evil.example.com",
    });
    refused.conn.close();
    assert.equal(refused.status, 403);
  } finally {
    await broker.close();
  }
});

Deno.test("WebSocket listener takes the client address from X-Forwarded-For only from trusted proxies", async () => {
  const trusting = await startWs({ trustedProxies: ["127.0.0.1"] });
  const untrusting = await startWs();
  try {
    for (const [broker, id] of [[trusting, "proxied"], [untrusting, "direct"]] as const) {
      const { status, conn } = await rawUpgrade(broker.port, "/mqtt", {
        "Sec-WebSocket-Protocol": "mqtt",
        "X-Forwarded-For": "203.0.113.7, 127.0.0.1",
      });
      assert.equal(status, 101);
      await conn.write(clientFrame(encode(connectPacket(id, 5))));
      await waitFor(() => broker.server.clients.get(id)?.state.connected === true, 3000, `${id} connected`);
      const remote = broker.server.clients.get(id)!.net.remote;
      if (id === "proxied") assert.equal(remote, "203.0.113.7:0");
      else assert.match(remote, /^127\.0\.0\.1:\d+$/);
      conn.close();
    }
  } finally {
    await trusting.close();
    await untrusting.close();
  }
});

Deno.test("WebSocket listener closes a connection that sends a text frame", async () => {
  const broker = await startWs();
  const client = new WsClient(`ws://127.0.0.1:${broker.port}/mqtt`);
  try {
    await client.opened();
    client.socket.send("not binary");
    await waitFor(() => client.closed, 3000, "the socket to close");
  } finally {
    await client.close();
    await broker.close();
  }
});

Deno.test("WebSocket clients get DISCONNECT 0x8B when the server closes", async () => {
  const broker = await startWs();
  const client = new WsClient(`ws://127.0.0.1:${broker.port}/mqtt`);
  await client.opened();
  client.socket.send(encode(connectPacket("stays", 5)));
  await client.waitForTypes([PacketType.Connack]);
  await broker.close();
  await waitFor(() => client.closed, 3000, "the socket to close");
  assert.deepEqual(client.packets.map((p) => p.fixedHeader.type), [
    PacketType.Connack,
    PacketType.Disconnect,
  ]);
  assert.equal(client.packets[1].reasonCode, 0x8b);
  await client.close();
});

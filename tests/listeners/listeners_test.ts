/**
 * HTTP stats and health check, Unix socket files, per-listener limits and policies, client
 * certificate usernames, and the mock listener.
 */

import assert from "node:assert/strict";
import mqtt from "../mqtt.ts";
import {
  AllowHook,
  HTTPHealthCheck,
  HTTPStats,
  type Packet,
  PacketType,
  Server,
  TCP,
  UnixSock,
} from "../../mod.ts";
import { ByteWriter, decodePacket, encodePacket, FRAME_READY, PacketFramer } from "../../src/packets/mod.ts";
import { MockListener } from "../../listeners/mock.ts";
import { connectPacket, delay, waitFor } from "../helpers.ts";
import { testCerts } from "./certs.ts";

const MOCHI_FIELDS = [
  "version",
  "started",
  "time",
  "uptime",
  "bytes_received",
  "bytes_sent",
  "clients_connected",
  "clients_disconnected",
  "clients_maximum",
  "clients_total",
  "messages_received",
  "messages_sent",
  "messages_dropped",
  "retained",
  "inflight",
  "inflight_dropped",
  "subscriptions",
  "packets_received",
  "packets_sent",
  "memory_alloc",
  "threads",
];

async function getJson(url: string): Promise<Record<string, number | string>> {
  const response = await fetch(url);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type") ?? "", /application\/json/);
  return await response.json();
}

Deno.test("HTTPStats serves the $SYS info with Mochi's field names and moving counters", async () => {
  const server = new Server();
  await server.addHook(new AllowHook());
  const tcp = new TCP({ id: "t1", address: "127.0.0.1:0" });
  const stats = new HTTPStats({ id: "stats", address: "127.0.0.1:0" }, server.info);
  await server.addListener(tcp);
  await server.addListener(stats);
  await server.serve();
  try {
    const before = await getJson(`http://${stats.address}/`);
    assert.deepEqual(Object.keys(before).sort(), [...MOCHI_FIELDS].sort());
    const client = await mqtt.connectAsync(`mqtt://${tcp.address}`, {
      reconnectPeriod: 0,
      protocolVersion: 5,
    });
    await client.subscribeAsync("stats/#");
    await client.publishAsync("stats/a", "x", { qos: 1 });
    await waitFor(() => server.info.messagesSent > 0, 3000, "a delivery");
    const after = await getJson(`http://${stats.address}/`);
    await client.endAsync();
    assert.equal(after.clients_connected, 1);
    assert.ok((after.bytes_received as number) > (before.bytes_received as number));
    assert.ok((after.packets_received as number) > (before.packets_received as number));
    assert.ok((after.messages_received as number) > (before.messages_received as number));
    const health = await fetch(`http://${stats.address}/healthcheck`);
    await health.body?.cancel();
    assert.equal(health.status, 200);
    const post = await fetch(`http://${stats.address}/`, { method: "POST" });
    await post.body?.cancel();
    assert.equal(post.status, 405);
  } finally {
    await server.close();
  }
});

Deno.test("HTTPHealthCheck answers GET /healthcheck with 200 and other methods with 405", async () => {
  const server = new Server();
  const health = new HTTPHealthCheck({ id: "health", address: "127.0.0.1:0" });
  await server.addListener(health);
  await server.serve();
  try {
    const status = async (method: string, path = "/healthcheck") => {
      const response = await fetch(`http://${health.address}${path}`, { method });
      await response.body?.cancel();
      return response.status;
    };
    assert.equal(await status("GET"), 200);
    assert.equal(await status("POST"), 405);
    assert.equal(await status("DELETE"), 405);
    assert.equal(await status("GET", "/other"), 404);
  } finally {
    await server.close();
  }
});

Deno.test("UnixSock removes a stale socket file, refuses to remove a regular file, and cleans up", async () => {
  const dir = await Deno.makeTempDir({ prefix: "broker-unix-" });
  try {
    const path = `${dir}/stale.sock`;
    // A process killed while listening leaves its socket file behind (a clean close removes it).
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `const l = Deno.listen({ transport: "unix", path: ${
          JSON.stringify(path)
        } }); console.log("ready"); await l.accept();`,
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const reader = child.stdout.getReader();
    await reader.read();
    child.kill("SIGKILL");
    await child.status;
    reader.releaseLock();
    await child.stdout.cancel();
    assert.ok(Deno.lstatSync(path).isSocket);
    const unix = new UnixSock({ id: "u1", address: path });
    await unix.init();
    await unix.close();
    assert.throws(() => Deno.lstatSync(path), Deno.errors.NotFound);

    const regular = `${dir}/regular.txt`;
    Deno.writeTextFileSync(regular, "keep me");
    const refusing = new UnixSock({ id: "u2", address: regular });
    assert.throws(() => refusing.init(), /not a socket/);
    assert.equal(Deno.readTextFileSync(regular), "keep me");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Opens a raw connection, sends CONNECT and returns the first packet (or undefined if closed). */
async function rawConnect(
  port: number,
  clientId: string,
  username?: string,
): Promise<{ conn: Deno.TcpConn; reply: Packet | undefined }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const out = new ByteWriter(128);
  encodePacket(connectPacket(clientId, 5, username ? { username } : {}), 5, out);
  await conn.write(out.toBytes()).catch(() => 0);
  const framer = new PacketFramer();
  const buffer = new Uint8Array(1024);
  for (;;) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return { conn, reply: undefined };
    framer.push(buffer.subarray(0, n));
    if (framer.next() === FRAME_READY) {
      const packet = decodePacket(framer.header, framer.body, 5);
      assert.notEqual(typeof packet, "number");
      return { conn, reply: packet as Packet };
    }
  }
}

Deno.test("TCP listener refuses connections beyond its maxConnections and accepts again when one closes", async () => {
  const server = new Server();
  await server.addHook(new AllowHook());
  const tcp = new TCP({ id: "limited", address: "127.0.0.1:0", maxConnections: 2 });
  await server.addListener(tcp);
  await server.serve();
  const port = Number(tcp.address.split(":").pop());
  const open: Deno.TcpConn[] = [];
  try {
    for (const id of ["c1", "c2"]) {
      const { conn, reply } = await rawConnect(port, id);
      open.push(conn);
      assert.equal(reply?.fixedHeader.type, PacketType.Connack);
    }
    const third = await rawConnect(port, "c3");
    third.conn.close();
    assert.equal(third.reply, undefined);
    assert.equal(tcp.connections.refused, 1);
    open.shift()!.close();
    await waitFor(() => tcp.connections.open === 1, 3000, "a slot to free");
    const fourth = await rawConnect(port, "c4");
    open.push(fourth.conn);
    assert.equal(fourth.reply?.fixedHeader.type, PacketType.Connack);
  } finally {
    for (const conn of open) conn.close();
    await server.close();
  }
});

Deno.test("a listener with allowAnonymous false refuses clients without a username; others accept them", async () => {
  const server = new Server();
  await server.addHook(new AllowHook());
  const closed = new TCP({ id: "closed", address: "127.0.0.1:0", allowAnonymous: false });
  const open = new TCP({ id: "open", address: "127.0.0.1:0" });
  await server.addListener(closed);
  await server.addListener(open);
  await server.serve();
  const portOf = (l: TCP) => Number(l.address.split(":").pop());
  const conns: Deno.TcpConn[] = [];
  try {
    const anonymous = await rawConnect(portOf(closed), "anon");
    conns.push(anonymous.conn);
    assert.equal(anonymous.reply?.fixedHeader.type, PacketType.Connack);
    assert.equal(anonymous.reply?.reasonCode, 0x87);
    const named = await rawConnect(portOf(closed), "named", "alice");
    conns.push(named.conn);
    assert.equal(named.reply?.reasonCode, 0);
    const elsewhere = await rawConnect(portOf(open), "anon2");
    conns.push(elsewhere.conn);
    assert.equal(elsewhere.reply?.reasonCode, 0);
    // MQTT.js v3.1.1 gets return code 5 (not authorized).
    await assert.rejects(
      mqtt.connectAsync(`mqtt://${closed.address}`, { reconnectPeriod: 0, protocolVersion: 4 }),
      /Not authorized/i,
    );
  } finally {
    for (const conn of conns) conn.close();
    await server.close();
  }
});

Deno.test("clientCertAsUsername makes the client certificate's Common Name the username", async () => {
  const certs = await testCerts();
  const server = new Server();
  const usernames: string[] = [];
  await server.addHook({
    id: "record",
    onConnectAuthenticate: (client) => {
      usernames.push(client.properties.username);
      return true;
    },
    onACLCheck: () => true,
  });
  const mtls = new TCP({
    id: "mtls",
    address: "127.0.0.1:0",
    tls: {
      cert: certs.cert,
      key: certs.key,
      ca: certs.ca,
      requireClientCert: true,
      clientCertAsUsername: true,
    },
  });
  await server.addListener(mtls);
  await server.serve();
  try {
    const client = await mqtt.connectAsync(`mqtts://${mtls.address}`, {
      ca: certs.ca,
      cert: certs.clientCert,
      key: certs.clientKey,
      username: "claimed",
      reconnectPeriod: 0,
      protocolVersion: 5,
    });
    await client.endAsync();
    assert.deepEqual(usernames, ["client1"]);
  } finally {
    await server.close();
  }
});

Deno.test("TCP listener with the deno TLS engine (Deno.listenTls) serves TLS without client certificates", async () => {
  const certs = await testCerts();
  const server = new Server();
  await server.addHook(new AllowHook());
  const tls = new TCP({
    id: "tls",
    address: "127.0.0.1:0",
    tls: { cert: certs.cert, key: certs.key, engine: "deno" },
  });
  await server.addListener(tls);
  await server.serve();
  try {
    const client = await mqtt.connectAsync(`mqtts://${tls.address}`, {
      ca: certs.ca,
      reconnectPeriod: 0,
      protocolVersion: 5,
    });
    const got = new Promise<string>((resolve) => client.on("message", (_t, p) => resolve(p.toString())));
    await client.subscribeAsync("n/#");
    await client.publishAsync("n/1", "over deno tls");
    assert.equal(await got, "over deno tls");
    await client.endAsync();
  } finally {
    await server.close();
  }
  assert.throws(
    () =>
      new TCP({
        id: "bad",
        address: ":0",
        tls: { cert: certs.cert, key: certs.key, requireClientCert: true },
      }),
    /need a CA/,
  );
});

Deno.test("MockListener carries a CONNECT/CONNACK and PINGREQ/PINGRESP round trip in memory", async () => {
  const server = new Server();
  await server.addHook(new AllowHook());
  const mock = new MockListener({ id: "mock" });
  await server.addListener(mock);
  await server.serve();
  assert.ok(mock.initialised);
  const conn = mock.connect("10.0.0.1:1234");
  try {
    const out = new ByteWriter(128);
    encodePacket(connectPacket("memory", 5), 5, out);
    encodePacket({ fixedHeader: { type: PacketType.Pingreq } }, 5, out);
    await conn.write(out.toBytes());
    const framer = new PacketFramer();
    const buffer = new Uint8Array(256);
    const types: number[] = [];
    while (types.length < 2) {
      const n = await conn.read(buffer);
      assert.notEqual(n, null);
      framer.push(buffer.subarray(0, n!));
      while (framer.next() === FRAME_READY) types.push(framer.header >> 4);
    }
    assert.deepEqual(types, [PacketType.Connack, PacketType.Pingresp]);
    const client = server.clients.get("memory")!;
    assert.equal(client.net.listener, "mock");
    assert.equal(client.net.remote, "10.0.0.1:1234");
  } finally {
    conn.close();
    await delay(10);
    await server.close();
  }
  assert.ok(mock.closed);
});

/**
 * MQTT.js clients over every transport, each publishing to a subscriber on another listener.
 */

import assert from "node:assert/strict";
import mqtt from "../mqtt.ts";
import { AllowHook, Server, TCP, UnixSock, WebSocket } from "../../mod.ts";
import { waitFor } from "../helpers.ts";
import { testCerts } from "./certs.ts";

interface Broker {
  server: Server;
  dir: string;
  tcp: string;
  tls: string;
  mtls: string;
  ws: string;
  wss: string;
  unix: string;
  close(): Promise<void>;
}

async function startAll(): Promise<Broker> {
  const certs = await testCerts();
  const dir = await Deno.makeTempDir({ prefix: "broker-unix-" });
  const server = new Server();
  await server.addHook(new AllowHook());
  const tls = { cert: `${certs.dir}/server.crt`, key: `${certs.dir}/server.key` };
  const listeners = {
    tcp: new TCP({ id: "tcp", address: "127.0.0.1:0" }),
    tls: new TCP({ id: "tls", address: "127.0.0.1:0", tls }),
    mtls: new TCP({
      id: "mtls",
      address: "127.0.0.1:0",
      tls: { cert: certs.cert, key: certs.key, ca: certs.ca, requireClientCert: true },
    }),
    ws: new WebSocket({ id: "ws", address: "127.0.0.1:0" }),
    wss: new WebSocket({ id: "wss", address: "127.0.0.1:0", tls }),
    unix: new UnixSock({ id: "unix", address: `${dir}/mqtt.sock` }),
  };
  for (const listener of Object.values(listeners)) await server.addListener(listener);
  await server.serve();
  return {
    server,
    dir,
    tcp: `mqtt://${listeners.tcp.address}`,
    tls: `mqtts://${listeners.tls.address}`,
    mtls: `mqtts://${listeners.mtls.address}`,
    ws: `ws://${listeners.ws.address}/mqtt`,
    wss: `wss://${listeners.wss.address}/mqtt`,
    unix: listeners.unix.address,
    close: async () => {
      await server.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

type Transport = "tcp" | "tls" | "mtls" | "ws" | "wss" | "unix";

async function connect(broker: Broker, transport: Transport, clientId: string): Promise<mqtt.MqttClient> {
  const certs = await testCerts();
  const base: mqtt.IClientOptions = {
    clientId,
    protocolVersion: 5,
    reconnectPeriod: 0,
    connectTimeout: 3000,
  };
  switch (transport) {
    case "unix":
      return mqtt.connectAsync({ ...base, protocol: "mqtt", unixSocket: true, path: broker.unix });
    case "tls":
    case "wss":
      return mqtt.connectAsync(broker[transport], { ...base, ca: certs.ca });
    case "mtls":
      return mqtt.connectAsync(broker.mtls, {
        ...base,
        ca: certs.ca,
        cert: certs.clientCert,
        key: certs.clientKey,
      });
    default:
      return mqtt.connectAsync(broker[transport], base);
  }
}

const pairs: [Transport, Transport][] = [
  ["tcp", "ws"],
  ["ws", "tcp"],
  ["tls", "unix"],
  ["wss", "tls"],
  ["mtls", "wss"],
  ["unix", "mtls"],
];

Deno.test("listeners carry messages between TCP, TLS, mutual TLS, WebSocket, WSS and Unix socket clients", async (t) => {
  const broker = await startAll();
  try {
    for (const [from, to] of pairs) {
      await t.step(`${from} publisher -> ${to} subscriber`, async () => {
        const subscriber = await connect(broker, to, `sub-${to}-${from}`);
        const publisher = await connect(broker, from, `pub-${from}-${to}`);
        try {
          const received: string[] = [];
          subscriber.on("message", (topic, payload) => received.push(`${topic}=${payload}`));
          await subscriber.subscribeAsync(`x/${from}`, { qos: 1 });
          await publisher.publishAsync(`x/${from}`, `hello from ${from}`, { qos: 1 });
          await waitFor(() => received.length === 1, 3000, `message ${from} -> ${to}`);
          assert.deepEqual(received, [`x/${from}=hello from ${from}`]);
          const listenerOf = (id: string) => broker.server.clients.get(id)?.net.listener;
          assert.equal(listenerOf(`sub-${to}-${from}`), to);
          assert.equal(listenerOf(`pub-${from}-${to}`), from);
        } finally {
          await publisher.endAsync();
          await subscriber.endAsync();
        }
      });
    }
  } finally {
    await broker.close();
  }
});

Deno.test("TLS listener refuses a client without a certificate when one is required", async () => {
  const broker = await startAll();
  const certs = await testCerts();
  try {
    await assert.rejects(
      mqtt.connectAsync(broker.mtls, {
        ca: certs.ca,
        reconnectPeriod: 0,
        connectTimeout: 2000,
        protocolVersion: 5,
      }),
    );
  } finally {
    await broker.close();
  }
});

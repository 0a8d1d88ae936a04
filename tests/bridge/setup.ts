/**
 * Bridge test setup: one of our brokers with a bridge, and MQTT.js clients to any broker URL.
 *
 * @module
 */

import mqtt from "../mqtt.ts";
import { AllowHook, Bridge, type BridgeConfig, type Options, Server, TCP } from "../../mod.ts";
import { waitFor } from "../helpers.ts";

/** Our broker with one bridge. */
export interface Edge {
  /** The server. */
  server: Server;
  /** The bridge. */
  bridge: Bridge;
  /** `mqtt://127.0.0.1:PORT` */
  url: string;
  /** Closes the server (and so the bridge). */
  close(): Promise<void>;
  /** `await using` support. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Bridge settings for tests: fast reconnects unless given. */
export type TestBridgeConfig = Partial<BridgeConfig> & Pick<BridgeConfig, "address" | "topics">;

/**
 * Starts our broker on a free port with a bridge (id `cloud` unless given), before serving.
 *
 * @param config The bridge settings.
 * @param options Server options.
 * @param beforeServe Runs after the hooks are added and before `serve()` (inline subscriptions).
 * @returns The running broker.
 */
export async function startEdge(
  config: TestBridgeConfig,
  options: Options = {},
  beforeServe?: (server: Server) => Promise<void> | void,
): Promise<Edge> {
  const server = new Server({ inlineClient: true, sysTopicResendInterval: 0, ...options });
  await server.addHook(new AllowHook());
  const bridge = new Bridge(server, {
    id: "cloud",
    reconnectDelayMin: 0.05,
    reconnectDelayMax: 0.3,
    ...config,
  });
  await server.addHook(bridge);
  const tcp = new TCP({ id: "t1", address: "127.0.0.1:0" });
  await server.addListener(tcp);
  await beforeServe?.(server);
  await server.serve();
  const close = () => server.close();
  return { server, bridge, url: `mqtt://${tcp.address}`, close, [Symbol.asyncDispose]: close };
}

/**
 * Waits until a bridge is connected.
 *
 * @param bridge The bridge.
 * @param timeoutMs How long to wait.
 */
export async function connected(bridge: Bridge, timeoutMs = 5000): Promise<void> {
  await waitFor(() => bridge.status().connected, timeoutMs, `bridge ${bridge.config.id} connected`);
}

/**
 * Connects an MQTT.js client (v5 unless told) to a URL.
 *
 * @param url The broker.
 * @param options MQTT.js options.
 * @returns The connected client.
 */
export function client(url: string, options: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 3000, ...options });
}

/**
 * Connects an MQTT.js client that collects messages from the start (a resumed session's queued
 * messages can arrive before `connectAsync` resolves).
 *
 * @param url The broker.
 * @param options MQTT.js options.
 * @returns The client and the list it fills.
 */
export async function collectingClient(
  url: string,
  options: mqtt.IClientOptions = {},
): Promise<{ client: mqtt.MqttClient; got: Received[] }> {
  const c = mqtt.connect(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 3000, ...options });
  const got = received(c);
  await new Promise<void>((resolve, reject) => {
    c.once("connect", () => resolve());
    c.once("error", reject);
  });
  return { client: c, got };
}

/** A received message. */
export interface Received {
  /** The topic. */
  topic: string;
  /** The payload as text. */
  payload: string;
  /** The QoS it arrived with. */
  qos: number;
  /** The retain flag. */
  retain: boolean;
}

/**
 * Collects what a client receives.
 *
 * @param c The client.
 * @returns The list it fills.
 */
export function received(c: mqtt.MqttClient): Received[] {
  const list: Received[] = [];
  c.on(
    "message",
    (topic, payload, packet) =>
      list.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain }),
  );
  return list;
}

/**
 * Test helpers for the cluster: a real `redis-server` and broker nodes as real child processes
 * (the CLI with `--cluster`), each on a free TCP port.
 *
 * @module
 */

import mqtt from "../mqtt.ts";
import { waitFor } from "../helpers.ts";
import { type RedisServer, startRedis } from "../storage/redis_server.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** A broker node running as a child process. */
export interface Node {
  /** Its node id. */
  readonly id: string;
  /** `mqtt://127.0.0.1:PORT` */
  readonly url: string;
  /** Its HTTP stats address (`http://127.0.0.1:PORT`), when started with `info`. */
  readonly info: string | undefined;
  /** Everything it logged so far. */
  output(): string;
  /** Sends a signal (SIGTERM by default) and waits for the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
  /** Sends a signal and returns at once (SIGSTOP, SIGCONT). */
  signal(signal: Deno.Signal): void;
  /** Its process id. */
  readonly pid: number;
}

/** Options of {@linkcode startNode}. */
export interface NodeOptions {
  /** Also serve HTTP stats on a free port. */
  info?: boolean;
  /** More CLI arguments. */
  args?: string[];
  /** Do not wait until it listens. */
  noWait?: boolean;
  /** More environment variables (a test fault: see `hooks/cluster/test_fault.ts`). */
  env?: Record<string, string>;
}

/** How long a node may take to stop on a signal before it is killed and the stop fails. */
const STOP_TIMEOUT_MS = 20_000;

/**
 * Starts a broker node: `src/cli.ts --cluster redis://ADDRESS --node-id ID` on a free port.
 *
 * @param redis The Redis address (`host:port`).
 * @param id The node id.
 * @param options Options.
 * @returns The running node, once it listens.
 */
export async function startNode(redis: string, id: string, options: NodeOptions = {}): Promise<Node> {
  // Port 0, then the bound ports from the log: a port picked free beforehand can be taken meanwhile (by
  // an outgoing connection's ephemeral port, for one) before the node binds it.
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "src/app/cli.ts",
      "--tcp",
      "127.0.0.1:0",
      "--ws",
      "off",
      "--info",
      options.info ? "127.0.0.1:0" : "off",
      "--cluster",
      `redis://${redis}`,
      "--node-id",
      id,
      ...(options.args ?? []),
    ],
    cwd: ROOT,
    env: options.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
  };
  const reading = Promise.all([read(child.stdout), read(child.stderr)]);
  let code: number | undefined;
  const status = child.status.then((s) => code = s.code);
  const ports = new Map<string, string>();
  const bound = (protocol: string): string | undefined => {
    let port = ports.get(protocol);
    if (port === undefined) {
      port = new RegExp(`Listener \\S+ \\(${protocol}\\) on 127\\.0\\.0\\.1:(\\d+)`).exec(text)?.[1];
      if (port !== undefined) ports.set(protocol, port);
    }
    return port;
  };
  const node: Node = {
    id,
    get url() {
      return `mqtt://127.0.0.1:${bound("tcp")}`;
    },
    get info() {
      return options.info ? `http://127.0.0.1:${bound("http")}` : undefined;
    },
    output: () => text,
    pid: child.pid,
    signal(signal: Deno.Signal) {
      if (code === undefined) child.kill(signal);
    },
    async stop(signal: Deno.Signal = "SIGTERM") {
      if (code === undefined) {
        try {
          child.kill(signal);
        } catch {
          // exited meanwhile
        }
      }
      // A graceful stop that hangs is a fault of the broker: kill it, and say so with its log.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const hung = await Promise.race([
        status.then(() => false),
        new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS)),
      ]);
      clearTimeout(timer);
      if (hung) child.kill("SIGKILL");
      await status;
      await reading;
      if (hung) {
        throw new Error(
          `Node ${id} did not stop within ${STOP_TIMEOUT_MS} ms of ${signal}:\n${text.slice(-3000)}`,
        );
      }
      return code!;
    },
  };
  if (options.noWait) return node;
  try {
    await waitFor(() => text.includes("cli: Broker ") || code !== undefined, 20_000, `node ${id} to start`);
  } catch (error) {
    await node.stop("SIGKILL");
    throw error;
  }
  if (code !== undefined) {
    await reading;
    throw new Error(`Node ${id} exited with ${code}:\n${text}`);
  }
  return node;
}

/**
 * Starts several nodes at the same moment.
 *
 * @param redis The Redis address.
 * @param ids Their ids.
 * @param options Options for each.
 * @returns The nodes, in the order of `ids`.
 */
export function startNodes(redis: string, ids: string[], options: NodeOptions = {}): Promise<Node[]> {
  return Promise.all(ids.map((id) => startNode(redis, id, options)));
}

/** Stops nodes (SIGTERM), ignoring ones already stopped. */
export async function stopNodes(nodes: Node[]): Promise<void> {
  await Promise.all(nodes.map((node) => node.stop()));
}

/**
 * Connects an MQTT.js client to a node (no automatic reconnection).
 *
 * @param node The node.
 * @param clientId The client id.
 * @param protocolVersion 4 (MQTT 3.1.1) or 5.
 * @param options More MQTT.js options.
 * @returns The connected client.
 */
export function connect(
  node: Node,
  clientId: string,
  protocolVersion: 4 | 5 = 5,
  options: mqtt.IClientOptions = {},
): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(node.url, { clientId, protocolVersion, reconnectPeriod: 0, ...options });
}

/** A client on its way in (see {@linkcode connecting}). */
export interface Connecting {
  /** The client. */
  readonly client: mqtt.MqttClient;
  /** The payloads it received, as text, in order. */
  readonly got: string[];
  /** Its CONNACK, when it comes. */
  readonly connack: Promise<mqtt.IConnackPacket>;
}

/**
 * Starts connecting an MQTT.js client to a node without waiting for the CONNACK (no automatic
 * reconnection, errors ignored: the node may die meanwhile), listening from the start, so that the queued
 * messages that follow the CONNACK at once are not missed.
 *
 * @param node The node.
 * @param clientId The client id.
 * @param options More MQTT.js options (protocol version 5 unless given).
 * @returns The client, what it receives, and its CONNACK.
 */
export function connecting(node: Node, clientId: string, options: mqtt.IClientOptions = {}): Connecting {
  const client = mqtt.connect(node.url, { clientId, protocolVersion: 5, reconnectPeriod: 0, ...options });
  const got: string[] = [];
  client.on("error", () => {});
  client.on("message", (_topic, payload) => got.push(String(payload)));
  const connack = new Promise<mqtt.IConnackPacket>((resolve) => client.once("connect", resolve));
  return { client, got, connack };
}

/** What {@linkcode withCluster} hands its body. */
export interface Cluster {
  /** The redis-server. */
  readonly redis: RedisServer;
  /** The nodes started, in the order of their ids; push a node started later and it is stopped too. */
  readonly nodes: Node[];
  /** Push every MQTT.js client here: each is ended (forcibly) before the nodes stop. */
  readonly clients: mqtt.MqttClient[];
}

/** Options of {@linkcode withCluster}: those of each node, and more. */
export interface ClusterOptions extends NodeOptions {
  /** Options of the redis-server (`startRedis`). */
  redis?: Parameters<typeof startRedis>[0];
  /** When the body fails, print each node's log lines that match this before the tear-down. */
  logOnFailure?: RegExp;
}

/**
 * Runs a test body on a cluster: starts a redis-server and the nodes `ids`, then tears everything down
 * whatever happens: resumes any process stopped with SIGSTOP, ends the clients in `clients`, stops every
 * node in `nodes` (SIGTERM) and the redis-server. A failure of the body is the one reported; a failing
 * tear-down is then only logged (and is thrown when the body passed).
 *
 * @param ids The ids of the nodes to start, at the same moment (none is fine).
 * @param options Options of each node, of the redis-server, and what to log on failure.
 * @param body The test, given the redis-server, the nodes and the list of clients to end.
 * @returns When the body and the tear-down are done.
 */
export async function withCluster(
  ids: string[],
  options: ClusterOptions,
  body: (cluster: Cluster) => Promise<void>,
): Promise<void>;
/**
 * Runs a test body on a cluster with default options (see the other overload).
 *
 * @param ids The ids of the nodes to start.
 * @param body The test.
 * @returns When the body and the tear-down are done.
 */
export async function withCluster(ids: string[], body: (cluster: Cluster) => Promise<void>): Promise<void>;
export async function withCluster(
  ids: string[],
  optionsOrBody: ClusterOptions | ((cluster: Cluster) => Promise<void>),
  maybeBody?: (cluster: Cluster) => Promise<void>,
): Promise<void> {
  const options = typeof optionsOrBody === "function" ? {} : optionsOrBody;
  const body = typeof optionsOrBody === "function" ? optionsOrBody : maybeBody!;
  const { redis: redisOptions, logOnFailure, ...nodeOptions } = options;
  const redis = await startRedis(redisOptions);
  const cluster: Cluster = { redis, nodes: [], clients: [] };
  let failure: { error: unknown } | undefined;
  try {
    // Each node that started is kept, so that it is stopped even when another fails to start.
    const started = await Promise.allSettled(ids.map((id) => startNode(redis.address, id, nodeOptions)));
    for (const result of started) if (result.status === "fulfilled") cluster.nodes.push(result.value);
    for (const result of started) if (result.status === "rejected") throw result.reason;
    await body(cluster);
  } catch (error) {
    failure = { error };
    if (logOnFailure) {
      for (const node of cluster.nodes) {
        console.log(node.id, node.output().split("\n").filter((line) => logOnFailure.test(line)).join("\n"));
      }
    }
  }
  const errors: unknown[] = [];
  const attempt = async (step: () => unknown) => {
    try {
      await step();
    } catch (error) {
      errors.push(error);
    }
  };
  // A process left stopped (SIGSTOP) would hang its own stop and the others'.
  for (const child of [redis, ...cluster.nodes]) {
    try {
      child.signal("SIGCONT");
    } catch {
      // exited meanwhile
    }
  }
  await Promise.all(cluster.clients.map((client) => client.endAsync(true).catch(() => {})));
  await attempt(() => stopNodes(cluster.nodes));
  await attempt(() => redis.stop());
  if (failure) {
    for (const error of errors) console.error("The tear-down failed too:", error);
    throw failure.error;
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, "The tear-down failed");
}

/** A message store that outlives its client (MQTT.js closes the stores in `end`): one session's state across connections. */
export class KeptStore extends mqtt.Store {
  override close(callback?: () => void): void {
    callback?.();
  }
}

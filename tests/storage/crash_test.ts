/**
 * Crash tests with real processes: the broker runs as a child process on Deno KV (and again on
 * Redis); one persistent v5 subscriber is offline (its messages queue), another is online and
 * acknowledges each message a few milliseconds late (so that messages are in flight to it, sent and
 * not acknowledged, at any moment); a publisher streams 5,000 QoS 1 and 1,000 QoS 2 messages and
 * 200 retained ones; the broker gets SIGKILL at a seeded random point of the stream and is started
 * again on the same store. Every message the broker acknowledged must reach both subscribers (the
 * offline one QoS 2 exactly once) and every acknowledged retained message must be there.
 *
 * The seed is printed; set `CRASH_SEED` to replay a run. `CRASH_DURABILITY=async` runs the brokers
 * with asynchronous durability, as a check that the test does catch lost messages (it should fail).
 *
 * @module
 */

import assert from "node:assert/strict";
import mqtt from "../mqtt.ts";
import { redisAvailable, redisRequired, startRedis } from "./redis_server.ts";
import { seededRandom, waitFor } from "../helpers.ts";

const QOS1 = 5000;
const QOS2 = 1000;
const RETAINED = 200;
const WINDOW = 200;
const SEED = Number(Deno.env.get("CRASH_SEED") ?? Math.floor(Math.random() * 2 ** 31));
const DURABILITY = Deno.env.get("CRASH_DURABILITY") ?? "sync";
const config = new URL("../../deno.json", import.meta.url).pathname;
const entry = new URL("./crash_broker.ts", import.meta.url).pathname;

/** A broker child process. */
class BrokerProcess {
  readonly #child: Deno.ChildProcess;
  readonly port: number;

  private constructor(child: Deno.ChildProcess, port: number) {
    this.#child = child;
    this.port = port;
  }

  static async start(args: string[]): Promise<BrokerProcess> {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", config, entry, "--durability", DURABILITY, ...args],
      stdout: "piped",
      stderr: "inherit",
      stdin: "null",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    try {
      while (!text.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`The broker exited before it was ready: ${text}`);
        text += value;
      }
    } catch (error) {
      child.kill("SIGKILL");
      await child.status;
      throw error;
    } finally {
      await reader.cancel();
    }
    const match = /READY (\d+)/.exec(text);
    if (!match) throw new Error(`Unexpected broker output: ${text}`);
    return new BrokerProcess(child, Number(match[1]));
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async kill(signal: Deno.Signal): Promise<void> {
    try {
      this.#child.kill(signal);
    } catch {
      // already gone
    }
    await this.#child.status;
  }
}

function connect(url: string, options: mqtt.IClientOptions): Promise<mqtt.MqttClient> {
  return mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5000, ...options });
}

async function crashRun(brokerArgs: string[]): Promise<void> {
  const rand = seededRandom(SEED);
  const total = QOS1 + QOS2 + RETAINED;
  const killAt = Math.floor(total * (0.1 + 0.8 * rand()));
  console.log(`crash seed ${SEED}: SIGKILL after ${killAt} of ${total} acknowledgements`);

  let broker = await BrokerProcess.start(brokerArgs);
  try {
    const sub = await connect(broker.url, {
      clientId: "sub",
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    await sub.subscribeAsync({ "c/1": { qos: 1 }, "c/2": { qos: 2 } });
    await sub.endAsync();
    // Online through the stream, acknowledging late: what it received counts, in both connections.
    const liveReceived = new Set<string>();
    const lateAcks = new Set<ReturnType<typeof setTimeout>>();
    const live = await connect(broker.url, {
      clientId: "live",
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
      customHandleAcks: (_topic, payload, packet, done) => {
        const timer = setTimeout(() => {
          lateAcks.delete(timer);
          done(0);
          // A QoS 2 message is the client's once it sent PUBREC: after a crash only its PUBREL
          // comes again, and MQTT.js (no stored state in a new client) has no message to emit then.
          if (packet.qos === 2) liveReceived.add(payload.toString());
        }, 1 + Math.floor(rand() * 5));
        lateAcks.add(timer);
      },
    });
    live.on("message", (_topic, payload) => liveReceived.add(payload.toString()));
    live.on("error", () => {});
    await live.subscribeAsync({ "c/1": { qos: 1 }, "c/2": { qos: 2 } });

    // The stream: QoS 1, QoS 2 and retained messages interleaved, at most WINDOW unacknowledged.
    const messages: { topic: string; payload: string; qos: 1 | 2; retain: boolean }[] = [];
    for (let i = 0; i < QOS1; i++) messages.push({ topic: "c/1", payload: `q1-${i}`, qos: 1, retain: false });
    for (let i = 0; i < QOS2; i++) {
      messages.splice(i * 6 + 5, 0, { topic: "c/2", payload: `q2-${i}`, qos: 2, retain: false });
    }
    for (let i = 0; i < RETAINED; i++) {
      messages.splice(i * 30 + 17, 0, { topic: `r/${i}`, payload: `r-${i}`, qos: 1, retain: true });
    }
    const acked = new Set<string>();
    const pub = await connect(broker.url, { clientId: "pub" });
    pub.on("error", () => {});
    let killed: Promise<void> | undefined;
    await new Promise<void>((resolve) => {
      let next = 0;
      let outstanding = 0;
      const pump = () => {
        while (!killed && outstanding < WINDOW && next < messages.length) {
          const m = messages[next++];
          outstanding++;
          pub.publishAsync(m.topic, m.payload, { qos: m.qos, retain: m.retain }).then(() => {
            if (killed) return; // an ack read after the kill was sent before it: counting it is still right
            acked.add(m.payload);
            outstanding--;
            if (acked.size >= killAt) {
              killed = broker.kill("SIGKILL");
              resolve();
            } else pump();
          }, () => {});
        }
      };
      pump();
    });
    await killed;
    pub.end(true);
    live.end(true);
    for (const timer of lateAcks) clearTimeout(timer);
    console.log(`live subscriber: ${liveReceived.size} received before the kill`);
    assert.ok(acked.size >= killAt && acked.size < total, `acked ${acked.size}`);

    broker = await BrokerProcess.start(brokerArgs);
    const received = new Map<string, number>();
    const sub2 = await new Promise<mqtt.MqttClient>((resolve, reject) => {
      const client = mqtt.connect(broker.url, {
        protocolVersion: 5,
        reconnectPeriod: 0,
        clientId: "sub",
        clean: false,
        properties: { sessionExpiryInterval: 3600 },
      });
      client.on("message", (_topic, payload) => {
        const text = payload.toString();
        received.set(text, (received.get(text) ?? 0) + 1);
      });
      client.once("connect", (connack) => {
        if (!connack.sessionPresent) reject(new Error("The session was not restored"));
        resolve(client);
      });
      client.once("error", reject);
    });
    // Listening before the CONNACK: the resent messages come right after it.
    const live2 = mqtt.connect(broker.url, {
      protocolVersion: 5,
      reconnectPeriod: 0,
      clientId: "live",
      clean: false,
      properties: { sessionExpiryInterval: 3600 },
    });
    live2.on("message", (_topic, payload) => liveReceived.add(payload.toString()));
    try {
      const connack = await new Promise<mqtt.IConnackPacket>((resolve, reject) => {
        live2.once("connect", resolve);
        live2.once("error", reject);
      });
      assert.equal(connack.sessionPresent, true, "the online subscriber's session was restored");
      const missing = () => [...acked].filter((p) => !p.startsWith("r-") && !received.has(p));
      await waitFor(() => missing().length === 0, 30_000, "every acknowledged message").catch((error) => {
        throw new Error(`${error.message}: ${missing().length} missing, e.g. ${missing().slice(0, 5)}`);
      });
      const twice = [...received].filter(([p, n]) => p.startsWith("q2-") && n > 1);
      assert.deepEqual(twice, [], "QoS 2 exactly once");
      const liveMissing = () => [...acked].filter((p) => !p.startsWith("r-") && !liveReceived.has(p));
      await waitFor(() => liveMissing().length === 0, 30_000, "every acknowledged message, online").catch(
        (error) => {
          throw new Error(
            `${error.message}: ${liveMissing().length} missing, e.g. ${liveMissing().slice(0, 5)}`,
          );
        },
      );
    } finally {
      await sub2.endAsync();
      await live2.endAsync();
    }

    const reader = await connect(broker.url, { clientId: "reader" });
    try {
      const retained = new Set<string>();
      reader.on("message", (_topic, payload, packet) => {
        if (packet.retain) retained.add(payload.toString());
      });
      await reader.subscribeAsync("r/#", { qos: 1 });
      const expected = [...acked].filter((p) => p.startsWith("r-"));
      await waitFor(
        () => expected.every((p) => retained.has(p)),
        10_000,
        "every acknowledged retained message",
      );
    } finally {
      await reader.endAsync();
    }
  } finally {
    await broker.kill("SIGTERM");
  }
}

Deno.test("A broker on Deno KV killed with SIGKILL mid-stream loses no acknowledged message", async () => {
  const dir = await Deno.makeTempDir({ prefix: "broker-crash-" });
  try {
    await crashRun(["--backend", "kv", "--path", `${dir}/crash.kv`]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "A broker on Redis killed with SIGKILL mid-stream loses no acknowledged message",
  ignore: !(await redisAvailable()) && !redisRequired(),
}, async () => {
  const redis = await startRedis({ appendonly: true });
  try {
    await crashRun(["--backend", "redis", "--address", redis.address, "--prefix", "crash:"]);
  } finally {
    await redis.stop();
  }
});

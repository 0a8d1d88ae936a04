/**
 * The cluster under fire: a real `redis-server`, three broker nodes as child processes, and MQTT.js
 * clients (v5 and v3.1.1) that connect to random nodes, move between them, subscribe (plain and
 * shared), publish QoS 0/1/2 and retained messages, and carry wills; every few seconds one random node
 * is SIGKILLed (and started again) or SIGSTOPped past its lease (and continued). Then it checks:
 *
 * 1. every QoS 1 message the broker PUBACKed reached, at least once, every persistent subscriber
 *    subscribed before it was published (they never unsubscribe);
 * 2. every QoS 2 message the broker PUBRECed reached each of them exactly once (and no QoS 2 message,
 *    acknowledged or not, reached anyone twice);
 * 3. every will of a connection that ended without a clean DISCONNECT (its node killed or stopped)
 *    was delivered exactly once, and no will of a clean disconnect was delivered;
 * 4. no client id had two live connections (on two nodes) in two samples a second apart;
 * 5. no shared-subscription message was delivered to two members of the group, except as MQTT 5.0
 *    §4.8.2 allows: a member's session ended (v5 shared members sometimes move with a clean start) after it
 *    received the message and before the other member did, and the member cannot have acknowledged it
 *    (its broker confirmed no clean end of the connection that got it, or that connection's node had a
 *    fault before the session ended: the acknowledgement may be lost; or the message arrived after the
 *    member wrote its DISCONNECT, so its PUBACK followed the DISCONNECT and was never read);
 * 6. once every session has ended or expired and the nodes have stopped, Redis holds nothing but
 *    the retained-message version counter.
 *
 * Everything random comes from one seed; a failure prints the seed and the first violation.
 *
 * @module
 */

import mqtt from "../mqtt.ts";
import { startRedis } from "../storage/redis_server.ts";
import { KeptStore, type Node, startNode } from "../cluster/nodes.ts";
import { seededRandom } from "../helpers.ts";

/** Options of {@linkcode runChaos}. */
export interface ChaosOptions {
  /** How long the faults go on, in seconds. */
  seconds: number;
  /** How many MQTT clients. */
  clients: number;
  /** The random seed. */
  seed: number;
  /** Messages per second per publisher (default 1). */
  rate?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

/** What {@linkcode runChaos} found. */
export interface ChaosReport {
  /** The seed. */
  seed: number;
  /** Counts: messages, deliveries, faults, wills, samples. */
  stats: Record<string, number>;
  /** The faults injected, in order (`t+12.3s kill b`). */
  faults: string[];
  /** Every invariant broken, first first (empty: all held). */
  violations: string[];
  /** A printable summary. */
  text: string;
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Ends a client with a DISCONNECT, giving up (closing the socket) after a while. */
async function endClient(client: mqtt.MqttClient, options?: mqtt.IDisconnectPacket): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    client.endAsync(false, options).catch(() => {}),
    new Promise<void>((resolve) => timer = setTimeout(resolve, 2000)),
  ]);
  clearTimeout(timer);
  if (!client.disconnected) client.end(true);
}
/**
 * Sends a DISCONNECT (reason 0) without half-closing the socket, and waits for the broker to close it: a
 * clean end is confirmed only by the broker's close (in a cluster it closes once the clean end is stored).
 *
 * @returns When the socket closed (ms since epoch), or undefined when it did not within 3 s (then forced).
 */
async function disconnectCleanly(client: mqtt.MqttClient): Promise<number | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const closedAt = await new Promise<number | undefined>((resolve) => {
    if (client.disconnected || !client.connected) return resolve(undefined);
    // A v5 broker that closes for another reason says why first (keep alive timeout 0x8D, say): the
    // DISCONNECT sent may not have been read, so the end is not confirmed clean.
    client.once("disconnect", (packet) => (packet.reasonCode ?? 0) !== 0 && resolve(undefined));
    // Closed by the broker (its end of the stream came first), not by the client itself (its keep alive
    // gave up, say: a reset that can discard the DISCONNECT before the broker reads it).
    let ended = false;
    client.stream.once("end", () => ended = true);
    client.once("close", () => resolve(ended ? Date.now() : undefined));
    timer = setTimeout(() => resolve(undefined), 3000);
    client.stream.write(new Uint8Array([0xe0, 0x00]));
  });
  clearTimeout(timer);
  if (!client.disconnected) client.end(true);
  return closedAt;
}
const LEASE_MS = 2500;

interface NodeSlot {
  id: string;
  node: Node;
  state: "up" | "down" | "stopped";
  /** Every stretch it was down or stopped: [from, to] (ms since epoch). */
  faulted: [number, number][];
}

/** Each node's options: `CHAOS_NODE_ARGS` adds CLI arguments (say `--log-level debug`, with `CHAOS_LOGS`). */
const nodeOptions = { info: true, args: Deno.env.get("CHAOS_NODE_ARGS")?.split(" ").filter(Boolean) };

interface Sent {
  qos: 0 | 1 | 2;
  shared: boolean;
  retain: boolean;
  sentAt: number;
  /** The node its publisher was connected to. */
  node: string;
  acked: boolean;
}

/** One connection of a persistent subscriber (for the shared-group check). */
export interface MemberConnection {
  /** Its node ("" until it is known). */
  node: string;
  /** When it was attempted (before its CONNACK). */
  from: number;
  /** When the member wrote its DISCONNECT (a move). */
  disconnectAt?: number;
  /** When the broker closed it after its DISCONNECT: everything the member sent on it was read. */
  closedAt?: number;
}

/** A shared message received by a member. */
export interface SharedReceipt {
  /** The member's client id. */
  member: string;
  /** When it arrived. */
  at: number;
  /** The connection it arrived on. */
  connection: MemberConnection;
  /** How it came, to explain a second member's copy: node, packet id, DUP. */
  how?: string;
  /**
   * It arrived after the member wrote its DISCONNECT: its PUBACK followed the DISCONNECT on the wire, and
   * the broker reads nothing after a DISCONNECT (nothing may follow one [MQTT-3.14.4-1]): the member never
   * acknowledged it.
   */
  afterDisconnect?: boolean;
}

/**
 * Invariant 5: a shared message reaches one member of its group, except as MQTT 5.0 §4.8.2 allows. A member
 * that got a message after another member did is allowed only as a hand-off: the other's session ended after
 * it got the message (and after every receipt of it before this member's) and before this member got it, and
 * the other cannot have acknowledged it: no copy of it arrived before the member wrote its DISCONNECT on a
 * connection that ended cleanly (the broker closed it after that DISCONNECT, so it had read the PUBACK sent
 * before) on a node that then had no fault until that session's end (a node that died or stalled past its
 * lease may have lost the acknowledgement). A copy that arrived after the member wrote its DISCONNECT was
 * PUBACKed after it, which the broker never reads (nothing may follow a DISCONNECT [MQTT-3.14.4-1]):
 * unacknowledged, it goes on when the
 * session ends, as §4.8.2 says it should.
 *
 * @param receipts Each message's receipts, in order.
 * @param sessionEnds Each member's session ends: [the clean-start connection attempted, its CONNACK].
 * @param faulted Whether a node was down or stopped at any moment between two times.
 * @param rel Formats a time for the messages.
 * @param explain A member's connections, for the messages.
 * @returns The violations, how many deliveries were hand-offs the spec allows, and those of them that
 *   were allowed only because the member's copy arrived after its DISCONNECT (`afterDisconnect`, described).
 */
export function sharedViolations(
  receipts: ReadonlyMap<string, readonly SharedReceipt[]>,
  sessionEnds: ReadonlyMap<string, readonly [number, number][]>,
  faulted: (node: string, from: number, to: number) => boolean,
  rel: (time: number) => string = String,
  explain: (member: string) => string = () => "",
): { violations: string[]; handedOff: number; afterDisconnect: string[] } {
  const violations: string[] = [];
  const afterDisconnect: string[] = [];
  let handedOff = 0;
  const acknowledged = (receipt: SharedReceipt, sessionEndedBy: number, evenAfterDisconnect = false) =>
    (evenAfterDisconnect || !receipt.afterDisconnect) &&
    receipt.connection.closedAt !== undefined && receipt.connection.closedAt < sessionEndedBy &&
    !faulted(receipt.connection.node, receipt.connection.from, sessionEndedBy);
  for (const [messageId, got] of receipts) {
    const firsts = new Map<string, number>(); // member -> first receipt, in order
    for (const receipt of got) if (!firsts.has(receipt.member)) firsts.set(receipt.member, receipt.at);
    const members = [...firsts.keys()];
    for (let i = 1; i < members.length; i++) {
      const later = members[i];
      const laterAt = firsts.get(later)!;
      let allowed = true;
      for (const earlier of members.slice(0, i)) {
        const before = got.filter((r) => r.member === earlier && r.at < laterAt);
        const lastAt = Math.max(...before.map((r) => r.at));
        const ends = (sessionEnds.get(earlier) ?? []).filter(([from]) => from > lastAt && from < laterAt);
        const unacknowledged = (evenAfterDisconnect: boolean) =>
          ends.some(([, to]) => !before.some((r) => acknowledged(r, to, evenAfterDisconnect)));
        const copies = () =>
          `(copies: ${got.map((r) => `${r.member} ${rel(r.at)} ${r.how ?? ""}`).join(", ")}; ${earlier}: ${
            explain(earlier)
          }; ${later}: ${explain(later)})`;
        if (unacknowledged(false)) {
          if (!unacknowledged(true)) {
            afterDisconnect.push(
              `Shared message ${messageId} went from ${earlier} to ${later}: ${earlier} got it after it wrote its ` +
                `DISCONNECT, and ended its session ${copies()}`,
            );
          }
          continue;
        }
        allowed = false;
        violations.push(
          `Shared message ${messageId} delivered to ${members.length} members (${members.join(", ")}): ` +
            `${later} got it at ${rel(laterAt)} though ${earlier} (got it at ${
              rel(lastAt)
            }) had no session end that left it unacknowledged in between ${copies()}`,
        );
      }
      if (allowed) handedOff++;
    }
  }
  return { violations, handedOff, afterDisconnect };
}

interface Incarnation {
  node: string;
  /** When its CONNACK arrived. */
  connectedAt: number;
  /** Set when the client sent DISCONNECT itself. */
  cleanAt?: number;
  /** When the broker closed the socket after that DISCONNECT (undefined: it did not within 3 s). */
  closedAt?: number;
  /** Closed by the connection dropping. */
  lost?: boolean;
}

/**
 * Runs the chaos test.
 *
 * @param options Duration, clients, seed.
 * @returns The report (its `violations` empty when every invariant held).
 */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const rand = seededRandom(options.seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)];
  const log = options.log ?? (() => {});
  const start = Date.now();
  const at = () => `t+${((Date.now() - start) / 1000).toFixed(1)}s`;
  const violations: string[] = [];
  const faults: string[] = [];
  const stats: Record<string, number> = {};
  const count = (key: string, n = 1) => stats[key] = (stats[key] ?? 0) + n;

  const redis = await startRedis();
  const slots: NodeSlot[] = [];
  const lives: Node[] = [];
  const clients = new Set<mqtt.MqttClient>();
  let running = true;
  try {
    for (
      const node of await Promise.all(
        ["a", "b", "c"].map((id) => startNode(redis.address, id, nodeOptions)),
      )
    ) {
      slots.push({ id: node.id, node, state: "up", faulted: [] });
      lives.push(node);
    }
    const up = () => slots.filter((slot) => slot.state === "up");

    /** Connects to a random live node, retrying until it works (or the run ends). */
    const connect = async (
      clientId: string,
      version: 4 | 5,
      options: mqtt.IClientOptions | (() => mqtt.IClientOptions),
      avoid?: string,
      onMessage?: (topic: string, payload: Uint8Array, packet: mqtt.IPublishPacket, node: string) => void,
    ): Promise<{ client: mqtt.MqttClient; slot: NodeSlot; extra: mqtt.IClientOptions } | undefined> => {
      for (let attempt = 0; attempt < 200; attempt++) {
        const candidates = up().filter((slot) => slot.id !== avoid);
        const slot = candidates.length ? pick(candidates) : pick(slots);
        // Options made per attempt: a will topic of its own (an attempt that fails after its CONNACK
        // ends a connection the broker accepted, whose will is then due).
        const extra = typeof options === "function" ? options() : options;
        try {
          const client = mqtt.connect(slot.node.url, {
            clientId,
            protocolVersion: version,
            reconnectPeriod: 0,
            connectTimeout: 3000,
            keepalive: 3,
            ...extra,
          });
          // Listening before the CONNACK: a resumed session's queued messages follow it at once (in the
          // same read), before a listener added after `connectAsync` would be.
          if (onMessage) {
            client.on("message", (topic, payload, packet) => onMessage(topic, payload, packet, slot.id));
          }
          await new Promise<void>((resolve, reject) => {
            client.once("connect", () => resolve());
            client.once("error", reject);
            client.once("close", () => reject(new Error("closed before CONNACK")));
          }).catch((error) => {
            client.end(true);
            throw error;
          });
          client.on("error", () => {});
          clients.add(client);
          client.once("close", () => clients.delete(client));
          return { client, slot, extra };
        } catch {
          await delay(200 + rand() * 300);
        }
      }
      return undefined;
    };

    // ---------------------------------------------------------------------------------------------
    // Persistent subscribers (plain, QoS 2) and shared-group members (QoS 1).

    const sent = new Map<string, Sent>();
    const plainReceived = new Map<string, Map<string, number>>(); // subscriber -> id -> times
    const qos2Copies = new Map<string, string[]>(); // "subscriber id" -> how each copy came
    const subscribedAt = new Map<string, number>();
    const sharedReceipts = new Map<string, SharedReceipt[]>(); // message id -> receipts, in order
    // Member -> its sessions' ends: [the clean-start connection attempted, its CONNACK].
    const sessionEnds = new Map<string, [number, number][]>();
    // Whether members end their sessions: a generator of its own, so the rest of the run stays as the seed makes it.
    const endRand = seededRandom(options.seed + 1_000_003);
    const history = new Map<string, string[]>();
    const rel = (time: number) => `t+${((time - start) / 1000).toFixed(1)}s`;
    const persistent: { id: string; version: 4 | 5; stop: () => Promise<void> }[] = [];

    const persistentClient = (id: string, version: 4 | 5, filter: string, qos: 1 | 2, shared: boolean) => {
      const incomingStore = new KeptStore();
      const outgoingStore = new KeptStore();
      let current: mqtt.MqttClient | undefined;
      let stopped = false;
      let first = true;
      let renew = false; // the next connection starts a new session (a v5 member ends its session)
      let connection: MemberConnection = { node: "", from: Date.now() };
      const onMessage = (_topic: string, payload: Uint8Array, packet: mqtt.IPublishPacket, node: string) => {
        const messageId = new TextDecoder().decode(payload);
        if (shared) {
          let receipts = sharedReceipts.get(messageId);
          if (!receipts) sharedReceipts.set(messageId, receipts = []);
          receipts.push({
            member: id,
            at: Date.now(),
            connection,
            how: `on ${node} (packet id ${packet.messageId}${packet.dup ? ", DUP" : ""}${
              connection.disconnectAt === undefined ? "" : ", after its DISCONNECT"
            })`,
            afterDisconnect: connection.disconnectAt !== undefined,
          });
          if (connection.disconnectAt !== undefined) count("sharedAfterDisconnect");
          return;
        }
        const received = plainReceived.get(id)!;
        received.set(messageId, (received.get(messageId) ?? 0) + 1);
        if (packet.qos === 2 && received.get(messageId)! > 1) count("qos2Duplicates");
        // How each copy came (kept for QoS 2, to explain a duplicate).
        if (packet.qos === 2) {
          const key = `${id} ${messageId}`;
          const copies = qos2Copies.get(key) ?? [];
          qos2Copies.set(key, copies);
          copies.push(`${at()} on ${node} (packet id ${packet.messageId}${packet.dup ? ", DUP" : ""})`);
        }
      };
      if (!shared) plainReceived.set(id, new Map());
      const loop = async () => {
        let avoid: string | undefined;
        while (!stopped) {
          // A v3.1.1 session with CleanSession=1 ends with its connection [MQTT-3.1.2-6]: a persistent
          // v3.1.1 subscriber uses 0 from the start (Redis starts empty, so nothing stale is resumed).
          connection = { node: "", from: Date.now() };
          const connected = await connect(
            id,
            version,
            {
              clean: (first || renew) && version === 5,
              incomingStore,
              outgoingStore,
              ...(version === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}),
            },
            avoid,
            onMessage,
          );
          if (!connected) continue;
          if (stopped) { // stopped while connecting: nobody else ends this one
            connected.client.end(true);
            break;
          }
          const { client, slot } = connected;
          current = client;
          connection.node = slot.id;
          if (renew) {
            (sessionEnds.get(id) ?? sessionEnds.set(id, []).get(id)!).push([connection.from, Date.now()]);
            count("sharedSessionsEnded");
          }
          const events = history.get(id) ?? [];
          history.set(id, events);
          events.push(`${at()} on ${slot.id}${first || renew ? " (new)" : ""}`);
          client.once("close", () => events.push(`${at()} closed`));
          if (first || renew) {
            try {
              await client.subscribeAsync(filter, { qos });
              if (!shared) subscribedAt.set(id, Date.now());
              first = false;
              renew = false;
            } catch {
              client.end(true);
              continue;
            }
          }
          count("sessionsResumed");
          const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
          const move = delay(8000 + rand() * 15000).then(() => "move" as const);
          const result = await Promise.race([closed.then(() => "closed" as const), move]);
          if (result === "move" && !stopped) {
            count("moves");
            if (!shared) await endClient(client);
            else {
              // A member's clean end is confirmed by the broker's close (its acknowledgements were read).
              // Set in the same turn as the DISCONNECT is written: a message handled after it is PUBACKed after it.
              connection.disconnectAt = Date.now();
              connection.closedAt = await disconnectCleanly(client);
              // A v5 member sometimes comes back with a clean start: its session ends, and what it had
              // not acknowledged goes to another member [MQTT 5.0 §4.8.2].
              renew = version === 5 && endRand() < 0.3;
            }
            avoid = slot.id;
          } else avoid = undefined;
          await closed;
          if (!stopped) await delay(100 + rand() * 400);
        }
      };
      const looping = loop();
      persistent.push({
        id,
        version,
        stop: async () => {
          stopped = true;
          current?.end(true);
          await looping;
        },
      });
    };

    // ---------------------------------------------------------------------------------------------
    // Will carriers: clean sessions with a will each connection (a fresh topic per connection).

    const incarnations = new Map<string, Incarnation>(); // will topic -> how it ended
    const willsReceived = new Map<string, number>();
    const willStops: (() => Promise<void>)[] = [];

    const willClient = (id: string, version: 4 | 5) => {
      let stopped = false;
      let generation = 0;
      let current: { client: mqtt.MqttClient; incarnation: Incarnation } | undefined;
      const loop = async () => {
        let avoid: string | undefined;
        while (!stopped) {
          const connected = await connect(id, version, () => {
            const topic = `chaos/will/${id}/${++generation}`;
            const delaySeconds = version === 5 && rand() < 0.3 ? 1 : 0;
            return {
              clean: true,
              will: {
                topic,
                payload: topic,
                qos: 2,
                retain: false,
                ...(version === 5 ? { properties: { willDelayInterval: delaySeconds } } : {}),
              },
            };
          }, avoid);
          if (!connected) continue;
          const topic = connected.extra.will!.topic;
          if (stopped) { // stopped while connecting: nobody else ends this one
            connected.client.end(true);
            break;
          }
          const { client, slot } = connected;
          const incarnation: Incarnation = { node: slot.id, connectedAt: Date.now() };
          current = { client, incarnation };
          incarnations.set(topic, incarnation);
          const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
          const move = delay(6000 + rand() * 14000).then(() => "move" as const);
          const result = await Promise.race([closed.then(() => "closed" as const), move]);
          if (result === "move" && !stopped) {
            incarnation.cleanAt = Date.now();
            incarnation.closedAt = await disconnectCleanly(client);
            avoid = slot.id;
          } else {
            if (!stopped) incarnation.lost = true;
            avoid = undefined;
          }
          await closed;
        }
      };
      const looping = loop();
      willStops.push(async () => {
        stopped = true;
        if (current?.client.connected) {
          current.incarnation.cleanAt = Date.now();
          current.incarnation.closedAt = await disconnectCleanly(current.client);
        }
        await looping;
      });
    };

    // ---------------------------------------------------------------------------------------------
    // Publishers: clean sessions, a message every 1/rate s, acknowledgements seen on the wire.

    const publisherStops: (() => Promise<void>)[] = [];
    const retainedTopics = new Set<string>();
    const publisher = (index: number, version: 4 | 5) => {
      const id = `pub-${index}`;
      let stopped = false;
      let seq = 0;
      let current: mqtt.MqttClient | undefined;
      const loop = async () => {
        while (!stopped) {
          const connected = await connect(id, version, { clean: true });
          if (!connected) continue;
          if (stopped) { // stopped while connecting: nobody else ends this one
            connected.client.end(true);
            break;
          }
          const { client, slot } = connected;
          current = client;
          const byPacketId = new Map<number, string>();
          client.on("packetsend", (packet) => {
            if (packet.cmd === "publish" && packet.qos > 0) {
              byPacketId.set(
                packet.messageId!,
                typeof packet.payload === "string"
                  ? packet.payload
                  : new TextDecoder().decode(packet.payload),
              );
            }
          });
          client.on("packetreceive", (packet) => {
            if (packet.cmd !== "puback" && packet.cmd !== "pubrec") return;
            const messageId = byPacketId.get(packet.messageId!);
            const record = messageId ? sent.get(messageId) : undefined;
            // A refusal (reason code 0x80 and up) acknowledges nothing.
            if (record && (packet.reasonCode ?? 0) < 0x80) record.acked = true;
          });
          let moveAt = Date.now() + 5000 + rand() * 20000;
          while (!stopped && client.connected) {
            await delay((1000 / (options.rate ?? 1)) * (0.5 + rand()));
            if (!client.connected || stopped) break;
            if (Date.now() > moveAt) {
              count("moves");
              await endClient(client);
              moveAt = Infinity;
              break;
            }
            const roll = rand();
            const messageId = `${id}:${++seq}`;
            let topic = `chaos/m/${id}`;
            let qos: 0 | 1 | 2 = roll < 0.35 ? 0 : roll < 0.6 ? 1 : 2;
            let retain = false;
            let shared = false;
            if (roll >= 0.8 && roll < 0.92) {
              topic = `chaos/s/${id}`;
              qos = 1;
              shared = true;
            } else if (roll >= 0.92) {
              topic = `chaos/r/${id}`;
              qos = 1;
              retain = true;
              retainedTopics.add(topic);
            }
            sent.set(messageId, { qos, shared, retain, sentAt: Date.now(), node: slot.id, acked: false });
            count(`published.qos${qos}${shared ? ".shared" : ""}${retain ? ".retained" : ""}`);
            client.publish(topic, messageId, { qos, retain }, () => {});
          }
          await endClient(client);
        }
      };
      const looping = loop();
      publisherStops.push(async () => {
        stopped = true;
        await looping;
        current?.end(true);
      });
    };

    // ---------------------------------------------------------------------------------------------
    // The cast.

    const total = Math.max(8, options.clients);
    const subscribers = Math.max(2, Math.round(total * 0.25));
    const members = Math.max(2, Math.round(total * 0.1));
    const carriers = Math.max(2, Math.round(total * 0.2));
    const watchers = 1;
    const publishers = Math.max(1, total - subscribers - members - carriers - watchers);
    stats.clients = subscribers + members + carriers + watchers + publishers;
    // The will watcher: a persistent QoS 2 subscriber, exactly once by construction.
    {
      const incomingStore = new KeptStore();
      const outgoingStore = new KeptStore();
      let first = true;
      let stopped = false;
      let current: mqtt.MqttClient | undefined;
      const loop = async () => {
        while (!stopped) {
          const connected = await connect(
            "will-watcher",
            5,
            {
              clean: first,
              incomingStore,
              outgoingStore,
              properties: { sessionExpiryInterval: 600 },
            },
            undefined,
            (topic) => willsReceived.set(topic, (willsReceived.get(topic) ?? 0) + 1),
          );
          if (!connected) continue;
          if (stopped) { // stopped while connecting: nobody else ends this one
            connected.client.end(true);
            break;
          }
          current = connected.client;
          if (first) {
            await current.subscribeAsync("chaos/will/#", { qos: 2 });
            first = false;
          }
          await new Promise<void>((resolve) => current!.once("close", () => resolve()));
          if (!stopped) await delay(200);
        }
      };
      const looping = loop();
      persistent.push({
        id: "will-watcher",
        version: 5,
        stop: async () => {
          stopped = true;
          current?.end(true);
          await looping;
        },
      });
      while (first) await delay(50);
    }
    for (let i = 0; i < subscribers; i++) persistentClient(`sub-${i}`, i % 2 ? 4 : 5, "chaos/m/#", 2, false);
    for (let i = 0; i < members; i++) {
      persistentClient(`member-${i}`, i % 2 ? 4 : 5, "$share/g/chaos/s/#", 1, true);
    }
    for (let i = 0; i < carriers; i++) willClient(`will-${i}`, i % 2 ? 4 : 5);
    await delay(1500);
    for (let i = 0; i < publishers; i++) publisher(i, i % 2 ? 4 : 5);
    log(
      `${at()} ${stats.clients} clients: ${subscribers} subscribers, ${members} shared members, ` +
        `${carriers} with wills, ${publishers} publishers; seed ${options.seed}`,
    );

    // ---------------------------------------------------------------------------------------------
    // The sampler: a client id online on two nodes, twice with the same connections, is a violation.

    const sampler = (async () => {
      let suspects = new Map<string, string>();
      while (running) {
        await delay(1000);
        const seen = new Map<string, string[]>();
        await Promise.all(
          up().map(async (slot) => {
            try {
              const response = await fetch(`${slot.node.info}/api/clients?state=online&limit=1000`, {
                signal: AbortSignal.timeout(800),
              });
              const body = await response.json() as {
                clients: { id: string; remote: string; connectedAt: number }[];
              };
              for (const client of body.clients) {
                const list = seen.get(client.id) ?? [];
                list.push(`${slot.id}@${client.remote}@${client.connectedAt}`);
                seen.set(client.id, list);
              }
            } catch {
              // a node stopped meanwhile
            }
          }),
        );
        count("samples");
        const next = new Map<string, string>();
        for (const [id, where] of seen) {
          if (where.length < 2) continue;
          const key = where.sort().join(" ");
          if (suspects.get(id) === key) {
            violations.push(`${at()} client id ${id} has two live connections: ${key}`);
          }
          next.set(id, key);
        }
        suspects = next;
      }
    })();

    // ---------------------------------------------------------------------------------------------
    // The faults.

    const end = start + options.seconds * 1000;
    while (Date.now() < end) {
      await delay(3000 + rand() * 4000);
      if (Date.now() >= end) break;
      const slot = pick(slots);
      if (rand() < 0.5) {
        faults.push(`${at()} SIGKILL ${slot.id}`);
        log(faults.at(-1)!);
        slot.state = "down";
        const from = Date.now();
        await slot.node.stop("SIGKILL");
        await delay(300 + rand() * 1500);
        slot.node = await startNode(redis.address, slot.id, nodeOptions);
        lives.push(slot.node);
        slot.state = "up";
        slot.faulted.push([from, Date.now()]);
        count("kills");
      } else {
        faults.push(`${at()} SIGSTOP ${slot.id}`);
        log(faults.at(-1)!);
        slot.state = "stopped";
        const from = Date.now();
        slot.node.signal("SIGSTOP");
        await delay(LEASE_MS + 1000 + rand() * 2500);
        slot.node.signal("SIGCONT");
        slot.faulted.push([from, Date.now()]);
        slot.state = "up";
        count("stops");
      }
    }

    // ---------------------------------------------------------------------------------------------
    // Quiet down, then check.

    log(`${at()} faults over; settling`);
    await Promise.all(publisherStops.map((stop) => stop()));
    log(`${at()} publishers stopped`);
    let last = -1;
    for (let i = 0; i < 40; i++) {
      await delay(500);
      let delivered = 0;
      for (const received of plainReceived.values()) delivered += received.size;
      for (const receipts of sharedReceipts.values()) {
        delivered += new Set(receipts.map((r) => r.member)).size;
      }
      delivered += willsReceived.size;
      if (delivered === last && i >= 10) break;
      last = delivered;
    }
    running = false;
    await sampler;
    log(`${at()} checking`);

    // 1 and 2: plain subscribers.
    for (const [subscriber, received] of plainReceived) {
      const since = subscribedAt.get(subscriber) ?? Infinity;
      for (const [messageId, record] of sent) {
        if (record.shared || record.retain || record.qos === 0) continue;
        const times = received.get(messageId) ?? 0;
        count(`checked.qos${record.qos}`);
        if (record.qos === 2 && times > 1) {
          violations.push(
            `QoS 2 message ${messageId} (sent ${
              rel(record.sentAt)
            } on ${record.node}) delivered ${times} times to ${subscriber}: ${
              qos2Copies.get(`${subscriber} ${messageId}`)?.join(", ")
            } (${history.get(subscriber)?.join(", ")})`,
          );
        } else if (record.acked && record.sentAt > since && times === 0) {
          violations.push(
            `QoS ${record.qos} message ${messageId} (${record.qos === 1 ? "PUBACKed" : "PUBRECed"}, sent ${
              rel(record.sentAt)
            } on ${record.node}) never reached ${subscriber} (${history.get(subscriber)?.join(", ")})`,
          );
        }
      }
      for (const [messageId, times] of received) count("deliveries", times), void messageId;
    }
    // 3: wills.
    for (const [topic, incarnation] of incarnations) {
      const times = willsReceived.get(topic) ?? 0;
      const faulted = slots.find((slot) => slot.id === incarnation.node)!;
      if (incarnation.lost) {
        count("willsExpected");
        if (times !== 1) {
          violations.push(`Will ${topic} (connection on ${incarnation.node} lost) delivered ${times} times`);
        }
      } else if (incarnation.cleanAt !== undefined) {
        // A clean end is confirmed when the broker closed the socket after the DISCONNECT (it does so once
        // the clean end is stored) and its node had no fault from the connection to that close: a killed
        // node's sockets close too, and a node stopped past its lease was claimed (its wills sent) before
        // it read the DISCONNECT. Otherwise the will may have been due: at most once.
        const { connectedAt, closedAt } = incarnation;
        const confirmed = closedAt !== undefined &&
          !faulted.faulted.some(([from, to]) => from <= closedAt && to >= connectedAt);
        if (confirmed) count("cleanEndsConfirmed");
        if (confirmed ? times > 0 : times > 1) {
          violations.push(
            `Will ${topic} delivered ${times} times after a clean disconnect from ${incarnation.node} (${
              confirmed ? `confirmed by its close at ${rel(closedAt!)}` : "not confirmed"
            })`,
          );
        }
      }
    }
    stats.willsDelivered = [...willsReceived.values()].reduce((a, b) => a + b, 0);
    // 5: shared groups (see sharedViolations).
    const faultedBetween = (node: string, from: number, to: number) =>
      slots.find((slot) => slot.id === node)?.faulted.some(([start, end]) => start <= to && end >= from) ??
        true;
    const shared = sharedViolations(
      sharedReceipts,
      sessionEnds,
      faultedBetween,
      rel,
      (member) => history.get(member)?.join(", ") ?? "",
    );
    violations.push(...shared.violations);
    count("sharedDelivered", sharedReceipts.size);
    if (shared.handedOff > 0) count("sharedHandedOff", shared.handedOff);
    if (shared.afterDisconnect.length > 0) {
      count("sharedHandedOffAfterDisconnect", shared.afterDisconnect.length);
      for (const line of shared.afterDisconnect) log(`  allowed: ${line}`);
    }
    for (const [messageId, record] of sent) {
      if (record.shared && record.acked && !sharedReceipts.has(messageId)) count("sharedAckedNotDelivered");
      if (record.acked) count(`acked.qos${record.qos}`);
    }

    // 6: sessions end (v5: expiry set to 1 s at DISCONNECT; v3.1.1: a clean session), nodes stop.
    log(`${at()} ending every session`);
    await Promise.all(willStops.map((stop) => stop()));
    await Promise.all(persistent.map((client) => client.stop()));
    await Promise.all(persistent.map(async ({ id, version }) => {
      const connected = await connect(id, version, {
        clean: version === 4,
        ...(version === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}),
      });
      if (!connected) return;
      if (version === 5) {
        await endClient(connected.client, { cmd: "disconnect", properties: { sessionExpiryInterval: 1 } });
      } else await endClient(connected.client);
    }));
    {
      const cleaner = await connect("retained-cleaner", 5, { clean: true });
      for (const topic of retainedTopics) {
        await cleaner?.client.publishAsync(topic, "", { qos: 1, retain: true });
      }
      if (cleaner) await endClient(cleaner.client);
    }
    await delay(3000);
    await Promise.all(slots.map((slot) => slot.node.stop("SIGTERM")));
    const keys = await redisKeys(redis.port);
    // The retained version and the cluster's generation stay (they tell a Redis that lost its data).
    const kept = new Set(["mqtt:cluster:retained:version", "mqtt:cluster:generation"]);
    const leftover = keys.filter((key) => !kept.has(key));
    stats.redisKeysLeft = leftover.length;
    if (leftover.length > 0) {
      violations.push(
        `${leftover.length} keys left in Redis after every session ended: ${leftover.slice(0, 8).join(", ")}`,
      );
    }
  } finally {
    running = false;
    for (const client of clients) client.end(true);
    for (const slot of slots) {
      if (slot.state === "stopped") slot.node.signal("SIGCONT");
      await slot.node.stop("SIGKILL");
    }
    await redis.stop();
    const dump = Deno.env.get("CHAOS_LOGS");
    if (dump) {
      await Deno.writeTextFile(
        dump,
        lives.map((node, i) => `==== ${node.id} life ${i}\n${node.output()}`).join("\n"),
      );
    }
  }
  stats.faults = faults.length;
  const lines = [
    `chaos: seed ${options.seed}, ${options.seconds} s, ${stats.clients} clients, ${faults.length} faults`,
    `  faults: ${faults.join("; ")}`,
    `  stats: ${Object.entries(stats).sort().map(([k, v]) => `${k}=${v}`).join(" ")}`,
    violations.length === 0
      ? "  every invariant held"
      : `  ${violations.length} violations; first (seed ${options.seed}): ${violations[0]}`,
  ];
  return { seed: options.seed, stats, faults, violations, text: lines.join("\n") };
}

/** Every key in a Redis (through redis-cli). */
async function redisKeys(port: number): Promise<string[]> {
  const out = await new Deno.Command("redis-cli", { args: ["-p", String(port), "--scan"], stdout: "piped" })
    .output();
  return new TextDecoder().decode(out.stdout).split("\n").filter((line) => line !== "");
}

/**
 * The soak test's broker, run as a child process so that its heap holds only the broker (the soak's
 * clients and its ledger of expected deliveries live in the parent). Start it with
 * `--v8-flags=--expose-gc`: it prints `@soak {"port":N}` once listening, then answers each line on
 * stdin with one `@soak {...}` line on stdout:
 *
 * - `stats`: the broker's counters (clients, subscriptions, in-flight messages, trie nodes, ...);
 * - `gc`: the same after forcing garbage collection, with the heap size;
 * - `held`: up to 10 sessions that still hold outbound messages (for diagnosing a failed drain);
 * - `close`: closes the broker, answers `{"closed":true}` and exits.
 *
 * ```sh
 * deno run -A --v8-flags=--expose-gc tests/soak/broker_process.ts
 * ```
 *
 * @module
 */

import { AllowHook, Server, TCP } from "../../mod.ts";

/** What `stats` and `gc` answer. */
export interface BrokerStats {
  /** Sessions the broker knows (connected or not): `server.clients.count`. */
  clients: number;
  /** Connected clients: `server.info.clientsConnected`. */
  connected: number;
  /** Non-shared subscriptions: `server.topics.subscriptionCount`. */
  subscriptions: number;
  /** Shared subscriptions: `server.topics.sharedSubscriptionCount`. */
  sharedSubscriptions: number;
  /** Shared groups: `server.topics.sharedGroups.size`. */
  sharedGroups: number;
  /** Outbound QoS 1/2 messages in flight: `server.info.inflight`. */
  inflight: number;
  /** Outbound QoS 1/2 messages held by all sessions, in flight or queued (pending). */
  held: number;
  /** Inbound QoS 2 packet ids awaiting PUBREL, over all sessions. */
  inboundQos2: number;
  /** Subscription-trie nodes: `server.topics.nodeCount`. */
  nodeCount: number;
  /** Retained messages: `server.topics.retainedCount`. */
  retained: number;
  /** Retained-trie nodes: `server.topics.retainedNodeCount`. */
  retainedNodes: number;
  /** Messages dropped (QoS 0 to offline or slow clients, full queues): `server.info.messagesDropped`. */
  messagesDropped: number;
  /** `Deno.memoryUsage().heapUsed`, after forced garbage collection for `gc`. */
  heapUsed: number;
  /** `Deno.memoryUsage().rss`. */
  rss: number;
  /** Whether `gc()` was available and called. */
  collected: boolean;
}

const encoder = new TextEncoder();

function answer(value: unknown): Promise<void> {
  return Deno.stdout.write(encoder.encode(`@soak ${JSON.stringify(value)}\n`)).then(() => {});
}

function stats(server: Server, collected: boolean): BrokerStats {
  let held = 0;
  let inboundQos2 = 0;
  for (const client of server.clients.values()) {
    held += client.state.inflight.size;
    inboundQos2 += client.state.inflight.inboundQos2.size;
  }
  const memory = Deno.memoryUsage();
  return {
    clients: server.clients.count,
    connected: server.info.clientsConnected,
    subscriptions: server.topics.subscriptionCount,
    sharedSubscriptions: server.topics.sharedSubscriptionCount,
    sharedGroups: server.topics.sharedGroups.size,
    inflight: server.info.inflight,
    held,
    inboundQos2,
    nodeCount: server.topics.nodeCount,
    retained: server.topics.retainedCount,
    retainedNodes: server.topics.retainedNodeCount,
    messagesDropped: server.info.messagesDropped,
    heapUsed: memory.heapUsed,
    rss: memory.rss,
    collected,
  };
}

/** Sessions still holding outbound messages: for diagnosing a failed drain. */
function held(server: Server): unknown[] {
  const out = [];
  for (const client of server.clients.values()) {
    const inflight = client.state.inflight;
    if (inflight.size === 0) continue;
    out.push({
      id: client.id,
      closed: client.closed,
      version: client.properties.protocolVersion,
      receiveMaximum: client.properties.receiveMaximum,
      outbound: [...inflight.outbound.entries()].slice(0, 5).map(([id, p]) =>
        `${id}:${p.fixedHeader.type === 3 ? "PUBLISH" : "PUBREL"}`
      ),
      outboundCount: inflight.outbound.size,
      pending: inflight.pending.length,
    });
    if (out.length >= 10) break;
  }
  return out;
}

/** Full collections, with turns in between so that finalizers and pending promises settle. */
async function collect(): Promise<boolean> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return false;
  for (let i = 0; i < 4; i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

if (import.meta.main) {
  const server = new Server();
  await server.addHook(new AllowHook());
  const tcp = new TCP({ id: "soak", address: "127.0.0.1:0" });
  await server.addListener(tcp);
  await server.serve();
  await answer({ port: Number(tcp.address.split(":").pop()) });
  let pending = "";
  const decoder = new TextDecoder();
  loop: for await (const chunk of Deno.stdin.readable) {
    pending += decoder.decode(chunk, { stream: true });
    for (let at = pending.indexOf("\n"); at >= 0; at = pending.indexOf("\n")) {
      const command = pending.slice(0, at).trim();
      pending = pending.slice(at + 1);
      if (command === "stats") await answer(stats(server, false));
      else if (command === "gc") await answer(stats(server, await collect()));
      else if (command === "held") await answer(held(server));
      else if (command === "close") break loop;
      else await answer({ error: `Unknown command "${command}"` });
    }
  }
  await server.close();
  await answer({ closed: true });
  Deno.exit(0);
}

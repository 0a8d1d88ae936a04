/**
 * The REST admin API: list clients, show a client's session, disconnect a client (v5 DISCONNECT
 * with a reason code), list retained messages by filter, delete a retained message. Also the
 * access check shared with the dashboard: HTTP basic auth when credentials are set, loopback
 * callers only when they are not.
 *
 * Routes (all JSON):
 *
 * | method | path | does |
 * | --- | --- | --- |
 * | GET | `/api/clients?offset=&limit=&listener=&q=` | a page of clients: `{ total, offset, limit, clients }` |
 * | GET | `/api/clients/{id}` | one client's session |
 * | POST | `/api/clients/{id}/disconnect` | disconnects it; body or query `reasonCode` (default 0x98) |
 * | DELETE | `/api/clients/{id}?reasonCode=` | the same |
 * | GET | `/api/retained?filter=&limit=` | retained messages matching a filter (default `#`) |
 * | DELETE | `/api/retained/{topic}` | removes a retained message (the topic URL-encoded) |
 *
 * @module
 */

import { findBridges } from "../../hooks/bridge/bridge.ts";
import type { Packet } from "../packets/types.ts";
import { PacketType } from "../packets/types.ts";
import { reasonName } from "../packets/reason_codes.ts";
import { parseFilter } from "../topics.ts";
import type { Client } from "../client.ts";
import type { Server } from "../server.ts";
import type { Info } from "../system.ts";

/** Who may use the dashboard and the admin API. */
export interface AccessOptions {
  /** The basic-auth user name; with `password`, every request must carry them. */
  username?: string;
  /** The basic-auth password. */
  password?: string;
  /** The realm in the `WWW-Authenticate` challenge; `"broker"` by default. */
  realm?: string;
}

/** Connection details of a request, as `Deno.serve` passes them. */
export interface RequestInfo {
  /** The caller's address. */
  remoteAddr: { hostname: string } | Deno.Addr;
}

/** An HTTP handler that answers the requests it knows and returns undefined for the others. */
export type PartialHandler = (request: Request, info?: RequestInfo) => Promise<Response | undefined>;

const NO_STORE = { "cache-control": "no-store" };

/**
 * The body of `/api/info`: the `$SYS` info with Mochi's field names, plus, in a cluster, this
 * node's id (`node_id`) and every node (`cluster_nodes`: id, alive, connections, messages per second).
 *
 * @param info The server's info.
 * @returns What to serialize.
 */
export function infoBody(info: Info): unknown {
  const cluster = info.cluster;
  if (!cluster) return info;
  return { ...info.toJSON(), node_id: cluster.nodeId, cluster_nodes: cluster.nodes() };
}

/**
 * A JSON response.
 *
 * @param body The value to serialize.
 * @param status The HTTP status.
 * @returns The response.
 */
export function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...NO_STORE },
  });
}

function problem(status: number, message: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ error: message }), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...NO_STORE, ...headers },
  });
}

/**
 * Whether an address is a loopback address (`127.0.0.0/8`, `::1`, `::ffff:127.x.x.x`).
 *
 * @param hostname The address.
 * @returns True for loopback.
 */
export function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, "");
  return host === "::1" || host.startsWith("127.") || host.startsWith("::ffff:127.") || host === "localhost";
}

/**
 * Checks a request against the access options: with credentials set, HTTP basic auth must match
 * (401 with a challenge otherwise); without them, only loopback callers are served (403).
 *
 * @param request The request.
 * @param info Its connection details (no details: treated as a remote caller).
 * @param options The credentials.
 * @returns Undefined when allowed, or the refusal to send.
 *
 * @example Basic auth
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkAccess } from "./admin.ts";
 *
 * const credentials = { username: "a", password: "b" };
 * const request = new Request("http://x/api/clients", { headers: { authorization: "Basic " + btoa("a:b") } });
 * assert.equal(checkAccess(request, undefined, credentials), undefined); // allowed
 *
 * const anonymous = new Request("http://x/api/clients");
 * assert.equal(checkAccess(anonymous, undefined, credentials)?.status, 401);
 * ```
 */
export function checkAccess(
  request: Request,
  info: RequestInfo | undefined,
  options: AccessOptions,
): Response | undefined {
  if (options.username !== undefined && options.password !== undefined) {
    const header = request.headers.get("authorization") ?? "";
    const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
    let given = "";
    if (match) {
      try {
        given = new TextDecoder().decode(Uint8Array.from(atob(match[1]), (c) => c.charCodeAt(0)));
      } catch {
        given = "";
      }
    }
    if (timingSafeEqual(given, `${options.username}:${options.password}`)) return undefined;
    return problem(401, "Authentication required", {
      "www-authenticate": `Basic realm="${options.realm ?? "broker"}", charset="UTF-8"`,
    });
  }
  const remote = info?.remoteAddr as { hostname?: string } | undefined;
  if (remote?.hostname !== undefined && isLoopback(remote.hostname)) return undefined;
  return problem(403, "The dashboard and admin API serve loopback callers only unless credentials are set");
}

function timingSafeEqual(a: string, b: string): boolean {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  let diff = x.length ^ y.length;
  for (let i = 0; i < y.length; i++) diff |= (x[i] ?? 0) ^ y[i];
  return diff === 0;
}

/** A client in the clients list. */
export interface ClientSummary {
  /** The client id. */
  id: string;
  /** The listener it came through. */
  listener: string;
  /** Its remote `host:port`. */
  remote: string;
  /** 3, 4 or 5. */
  protocolVersion: number;
  /** The user name. */
  username: string;
  /** Whether it is connected now. */
  connected: boolean;
  /** Its number of subscriptions. */
  subscriptions: number;
  /** QoS 1/2 messages in flight to it. */
  inflight: number;
  /** QoS 1/2 messages queued for it. */
  queued: number;
  /** When it connected, ms since the epoch. */
  connectedAt: number;
  /** When it disconnected, ms since the epoch (0 while connected). */
  disconnectedAt: number;
}

/**
 * A client's list entry.
 *
 * @param client The client.
 * @returns Its summary.
 */
export function clientSummary(client: Client): ClientSummary {
  const inflight = client.state.inflight;
  return {
    id: client.id,
    listener: client.net.listener,
    remote: client.net.remote,
    protocolVersion: client.properties.protocolVersion,
    username: client.properties.username,
    connected: !client.closed,
    subscriptions: client.state.subscriptions.size,
    inflight: inflight.outbound.size,
    queued: inflight.pending.length,
    connectedAt: client.state.connectedAt,
    disconnectedAt: client.state.disconnectedAt,
  };
}

/**
 * A client's session in detail: the summary, what it asked for in CONNECT, its subscriptions and
 * its in-flight messages (ids and topics, no payloads).
 *
 * @param client The client.
 * @returns A plain object for `JSON.stringify`.
 */
export function clientSession(client: Client): Record<string, unknown> {
  const p = client.properties;
  const inflight = client.state.inflight;
  const message = (packet: Packet) => ({
    packetId: packet.packetId,
    type: packet.fixedHeader.type === PacketType.Pubrel ? "pubrel" : "publish",
    topic: packet.topicName,
    qos: packet.fixedHeader.qos ?? 0,
    size: packet.payload?.length ?? 0,
  });
  return {
    ...clientSummary(client),
    clean: p.clean,
    keepAlive: p.keepAlive,
    sessionExpiryInterval: p.sessionExpiryInterval,
    expiresAt: client.state.expiresAt,
    receiveMaximum: p.receiveMaximum,
    maximumPacketSize: p.maximumPacketSize,
    topicAliasMaximum: p.topicAliasMaximum,
    will: p.will
      ? { topic: p.will.topicName, qos: p.will.fixedHeader.qos ?? 0, delay: p.willDelayInterval }
      : null,
    subscriptionList: [...client.state.subscriptions.values()].map((s) => ({
      filter: s.filter,
      qos: s.qos,
      noLocal: s.noLocal ?? false,
      retainAsPublished: s.retainAsPublished ?? false,
      retainHandling: s.retainHandling ?? 0,
      identifier: s.identifier,
    })),
    inflightMessages: [...inflight.outbound.values()].map(message),
    queuedMessages: firstOf(inflight.pending, 100).map(message),
    inboundQos2: [...inflight.inboundQos2],
    lastReceived: client.lastReceived,
  };
}

function firstOf<T>(items: Iterable<T>, n: number): T[] {
  const out: T[] = [];
  for (const item of items) {
    if (out.length >= n) break;
    out.push(item);
  }
  return out;
}

/** DISCONNECT reason codes a server may send (spec table 3-10 less the client-only 0x04). */
const SERVER_DISCONNECT_CODES = new Set([
  0x00,
  0x80,
  0x81,
  0x82,
  0x83,
  0x87,
  0x89,
  0x8b,
  0x8d,
  0x8e,
  0x8f,
  0x90,
  0x93,
  0x94,
  0x95,
  0x96,
  0x97,
  0x98,
  0x99,
  0x9a,
  0x9b,
  0x9c,
  0x9d,
  0x9e,
  0x9f,
  0xa0,
  0xa1,
  0xa2,
]);

/** The reason code the admin API disconnects with by default: 0x98 Administrative action. */
export const ADMIN_DISCONNECT_CODE = 0x98;

/** A retained message as the admin API lists it. */
export interface RetainedSummary {
  /** The topic. */
  topic: string;
  /** Its QoS. */
  qos: number;
  /** The payload as text when it is UTF-8, else base64. */
  payload: string;
  /** `"utf8"` or `"base64"`. */
  encoding: "utf8" | "base64";
  /** Payload bytes. */
  size: number;
  /** When it was published, ms since the epoch. */
  created: number;
  /** When it expires, ms since the epoch (0: never). */
  expiry: number;
}

const MAX_PAYLOAD_SHOWN = 4096;

function retainedSummary(packet: Packet): RetainedSummary {
  const payload = packet.payload ?? new Uint8Array();
  const shown = payload.subarray(0, MAX_PAYLOAD_SHOWN);
  let text: string | undefined;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(shown);
  } catch {
    text = undefined;
  }
  return {
    topic: packet.topicName ?? "",
    qos: packet.fixedHeader.qos ?? 0,
    payload: text ?? btoa(String.fromCharCode(...shown)),
    encoding: text === undefined ? "base64" : "utf8",
    size: payload.length,
    created: packet.created ?? 0,
    expiry: packet.expiry ?? 0,
  };
}

function intParam(url: URL, name: string, fallback: number, max: number): number {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === "") return fallback;
  const n = Number(raw);
  return Number.isInteger(n) && n >= 0 ? Math.min(n, max) : fallback;
}

/** Reads `reasonCode` from the query or a JSON/form body: a number, `"0x98"` or `"152"`. */
async function reasonCodeOf(request: Request, url: URL): Promise<number | string> {
  let raw: unknown = url.searchParams.get("reasonCode") ?? undefined;
  if (raw === undefined && request.body) {
    const text = await request.text();
    if (text.trim() !== "") {
      try {
        raw = (JSON.parse(text) as { reasonCode?: unknown }).reasonCode;
      } catch {
        raw = new URLSearchParams(text).get("reasonCode") ?? undefined;
      }
    }
  }
  if (raw === undefined || raw === null || raw === "") return ADMIN_DISCONNECT_CODE;
  const code = typeof raw === "number" ? raw : Number(String(raw));
  if (!Number.isInteger(code) || !SERVER_DISCONNECT_CODES.has(code)) {
    return `Reason code "${String(raw)}" is not one a server may send in DISCONNECT`;
  }
  return code;
}

/**
 * Removes a retained message the way the server does (storage hooks hear of it through
 * `onRetainMessage` with result -1), without publishing anything to subscribers.
 *
 * @param server The server.
 * @param topic The topic name.
 * @returns True when a message was removed.
 */
export function deleteRetained(server: Server, topic: string): boolean {
  const existing = server.topics.retained(topic);
  if (!existing) return false;
  const cleared: Packet = {
    fixedHeader: { type: PacketType.Publish, qos: existing.fixedHeader.qos, retain: true },
    topicName: topic,
    payload: new Uint8Array(),
  };
  const result = server.topics.retain(cleared);
  if (result === -1) server.hooks.onRetainMessage(adminClient(server), cleared, -1);
  return result === -1;
}

const ADMIN_CLIENTS = new WeakMap<Server, Client>();

/** An inline client that stands for the admin API in hook calls. */
function adminClient(server: Server): Client {
  let client = ADMIN_CLIENTS.get(server);
  if (!client) ADMIN_CLIENTS.set(server, client = server.newClient(null, "admin", "admin", true));
  return client;
}

/**
 * Creates the admin API handler. It answers `/api/clients...` and `/api/retained...` (after the
 * access check) and returns undefined for any other path, so it composes with other handlers.
 *
 * @param server The server.
 * @param options The credentials.
 * @returns The handler.
 *
 * @example Listing clients
 * ```ts
 * import assert from "node:assert/strict";
 * import { Server } from "../../mod.ts";
 * import { adminHandler } from "./admin.ts";
 *
 * const handler = adminHandler(new Server(), { username: "admin", password: "secret" });
 * const response = await handler(new Request("http://localhost/api/clients", {
 *   headers: { authorization: "Basic " + btoa("admin:secret") },
 * }));
 * assert.equal(response?.status, 200);
 * assert.equal((await response!.json()).total, 0);
 * assert.equal(await handler(new Request("http://localhost/other")), undefined); // not an admin path
 * ```
 */
export function adminHandler(server: Server, options: AccessOptions = {}): PartialHandler {
  return async (request, info) => {
    const url = new URL(request.url);
    const path = url.pathname;
    if (path === "/api/bridges") {
      const refused = checkAccess(request, info, options);
      if (refused) return refused;
      if (request.method !== "GET" && request.method !== "HEAD") return notAllowed("GET, HEAD");
      return json(findBridges(server).map((bridge) => bridge.status()));
    }
    if (!path.startsWith("/api/clients") && !path.startsWith("/api/retained")) return undefined;
    if (path !== "/api/clients" && path !== "/api/retained" && !/^\/api\/(clients|retained)\//.test(path)) {
      return undefined;
    }
    const refused = checkAccess(request, info, options);
    if (refused) return refused;
    const method = request.method;

    if (path === "/api/clients") {
      if (method !== "GET" && method !== "HEAD") return notAllowed("GET, HEAD");
      const offset = intParam(url, "offset", 0, Number.MAX_SAFE_INTEGER);
      const limit = intParam(url, "limit", 50, 1000);
      const listener = url.searchParams.get("listener");
      const q = url.searchParams.get("q")?.toLowerCase();
      const state = url.searchParams.get("state"); // "online" | "offline"
      const all = server.clients.list().filter((c) =>
        !c.net.inline && (listener === null || c.net.listener === listener) &&
        (!q || c.id.toLowerCase().includes(q) || c.net.remote.includes(q)) &&
        (state === null || (state === "online") === !c.closed)
      );
      return json({
        total: all.length,
        offset,
        limit,
        clients: all.slice(offset, offset + limit).map(clientSummary),
      });
    }

    if (path.startsWith("/api/clients/")) {
      let rest = path.slice("/api/clients/".length);
      const disconnect = rest.endsWith("/disconnect");
      if (disconnect) rest = rest.slice(0, -"/disconnect".length);
      let id: string;
      try {
        id = decodeURIComponent(rest);
      } catch {
        return problem(400, `Client id "${rest}" is not URL-encoded correctly`);
      }
      const client = server.clients.get(id);
      if (!client || client.net.inline) return problem(404, `No client with id "${id}"`);
      if (disconnect && method !== "POST") return notAllowed("POST");
      if (!disconnect && (method === "GET" || method === "HEAD")) return json(clientSession(client));
      if (!disconnect && method !== "DELETE") return notAllowed("GET, HEAD, DELETE");
      const code = await reasonCodeOf(request, url);
      if (typeof code === "string") return problem(400, code);
      if (client.closed) return problem(409, `Client "${id}" is not connected`);
      server.disconnectClient(client, code);
      return json({ id, disconnected: true, reasonCode: code, reason: reasonName(code) });
    }

    if (path === "/api/retained") {
      if (method !== "GET" && method !== "HEAD") return notAllowed("GET, HEAD");
      const filter = url.searchParams.get("filter") || "#";
      const parsed = parseFilter(filter);
      if (!parsed || parsed.group !== undefined) return problem(400, `Topic filter "${filter}" is not valid`);
      const limit = intParam(url, "limit", 100, 1000);
      const messages = server.topics.retainedMessages(filter);
      messages.sort((a, b) => (a.topicName! < b.topicName! ? -1 : 1));
      return json({
        filter,
        total: messages.length,
        messages: messages.slice(0, limit).map(retainedSummary),
      });
    }

    // /api/retained/{topic}
    if (method !== "DELETE") return notAllowed("DELETE");
    const raw = path.slice("/api/retained/".length);
    let topic: string;
    try {
      topic = decodeURIComponent(raw);
    } catch {
      return problem(400, `Topic "${raw}" is not URL-encoded correctly`);
    }
    if (!deleteRetained(server, topic)) return problem(404, `No retained message on topic "${topic}"`);
    return json({ topic, deleted: true });
  };
}

function notAllowed(allow: string): Response {
  return problem(405, "Method not allowed", { allow });
}

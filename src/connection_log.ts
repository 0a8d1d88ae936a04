/**
 * One `info` line per connect, disconnect and refusal, as Mosquitto logs them: the client id, the
 * listener, the remote address and the protocol version, then why.
 *
 * An application that configured LogTape with its own sink for the broker's `info` records (our
 * CLI) may hand that sink to {@linkcode setConnectionLogSink}: these lines then go to it directly,
 * as the same records, without LogTape's dispatch, which cost about 6 µs and 5 KB of garbage per line
 * in a connect storm (a third of what the broker allocated per connect).
 *
 * @module
 */

import type { LogRecord, Sink } from "@logtape/logtape";
import type { Client } from "./client.ts";
import { logger } from "./logger.ts";

const log = logger("server");
const CATEGORY: readonly string[] = Object.freeze(["x-broker", "server"]);
const TEMPLATE = "Client {client} {what} (listener {listener}, remote {remote}, MQTT {version}): {reason}";

const PROTOCOL_NAMES: Record<number, string> = { 3: "3.1", 4: "3.1.1", 5: "5.0" };

let direct: Sink | undefined;

/**
 * Sends the connection lines straight to `sink`, as the records LogTape would make of them (same
 * category, level, message parts, properties), or back through LogTape with `undefined`. Only for
 * an application that configured LogTape itself so that the `x-broker` category's `info` records go
 * to this one sink: filters and other sinks are not consulted.
 *
 * @param sink The sink, or `undefined`.
 *
 * @example The same line, without LogTape's dispatch
 * ```ts
 * import assert from "node:assert/strict";
 * import type { LogRecord } from "@logtape/logtape";
 * import type { Client } from "./client.ts";
 * import { logConnection, setConnectionLogSink } from "./connection_log.ts";
 *
 * const records: LogRecord[] = [];
 * setConnectionLogSink((record) => void records.push(record));
 * const client = {
 *   id: "c1",
 *   net: { listener: "t1", remote: "127.0.0.1:5555" },
 *   properties: { protocolVersion: 5 },
 * } as unknown as Client;
 * logConnection("connected", client, "new session");
 * setConnectionLogSink(undefined);
 * assert.equal(
 *   records[0].message.join(""),
 *   "Client c1 connected (listener t1, remote 127.0.0.1:5555, MQTT 5.0): new session",
 * );
 * ```
 */
export function setConnectionLogSink(sink: Sink | undefined): void {
  direct = sink;
}

/**
 * Logs a connection's start, end or refusal at `info`.
 *
 * @param what What happened.
 * @param client The client.
 * @param reason Why: the session state, the disconnect's cause or the refusal's reason code.
 */
export function logConnection(
  what: "connected" | "disconnected" | "refused",
  client: Client,
  reason: string,
): void {
  const id = client.id || "(no id)";
  const version = PROTOCOL_NAMES[client.properties.protocolVersion] ?? client.properties.protocolVersion;
  const { listener, remote } = client.net;
  if (direct !== undefined) {
    const record: LogRecord = {
      category: CATEGORY,
      level: "info",
      message: [
        "Client ",
        id,
        " ",
        what,
        " (listener ",
        listener,
        ", remote ",
        remote,
        ", MQTT ",
        version,
        "): ",
        reason,
        "",
      ],
      rawMessage: TEMPLATE,
      timestamp: Date.now(),
      properties: { client: id, what, listener, remote, version, reason },
    };
    direct(record);
    return;
  }
  if (!log.isEnabledFor("info")) return;
  log.info(TEMPLATE, { client: id, what, listener, remote, version, reason });
}

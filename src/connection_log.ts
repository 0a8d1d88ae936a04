/**
 * One `info` line per connect, disconnect and refusal, as Mosquitto logs them: the client id, the
 * listener, the remote address and the protocol version, then why.
 *
 * @module
 */

import type { Client } from "./client.ts";
import { logger } from "./logger.ts";

const log = logger("server");

const PROTOCOL_NAMES: Record<number, string> = { 3: "3.1", 4: "3.1.1", 5: "5.0" };

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
  if (!log.isEnabledFor("info")) return;
  log.info("Client {client} {what} (listener {listener}, remote {remote}, MQTT {version}): {reason}", {
    client: client.id || "(no id)",
    what,
    listener: client.net.listener,
    remote: client.net.remote,
    version: PROTOCOL_NAMES[client.properties.protocolVersion] ?? client.properties.protocolVersion,
    reason,
  });
}

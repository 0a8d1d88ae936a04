/**
 * Bridges: connect this broker to other MQTT brokers (edge to cloud) with Mosquitto-style `topic`
 * rules.
 *
 * @example A bridge's settings
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseTopicRule } from "./mod.ts";
 * assert.equal(parseTopicRule("commands/# in 1").direction, "in");
 * ```
 *
 * @module
 */

export { Bridge, findBridges } from "./bridge.ts";
export type { BridgeState, BridgeStatus } from "./bridge.ts";
export {
  BridgeConfigError,
  parseTopicRule,
  reconnectDelay,
  resolveBridgeConfig,
  rewriteTopic,
  topicMatches,
} from "./rules.ts";
export type { BridgeConfig, BridgeDirection, BridgeTls, BridgeTopic, ResolvedBridgeConfig } from "./rules.ts";
export { ConnectRefusedError, MqttConnection } from "./mqtt_client.ts";
export type { MqttConnectOptions, PacketHandler } from "./mqtt_client.ts";
export { Outbox } from "./outbox.ts";
export type { OutgoingMessage } from "./outbox.ts";
export { dial } from "./transport.ts";

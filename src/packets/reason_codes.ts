/**
 * MQTT v5 reason codes, their names, and the mapping to v3 CONNACK return codes.
 *
 * @module
 */

/** Every MQTT v5 reason code, by name. Some values have several names (spec table 2-6). */
export const ReasonCode = {
  Success: 0x00,
  NormalDisconnection: 0x00,
  GrantedQoS0: 0x00,
  GrantedQoS1: 0x01,
  GrantedQoS2: 0x02,
  DisconnectWithWill: 0x04,
  NoMatchingSubscribers: 0x10,
  NoSubscriptionExisted: 0x11,
  ContinueAuthentication: 0x18,
  ReAuthenticate: 0x19,
  UnspecifiedError: 0x80,
  MalformedPacket: 0x81,
  ProtocolError: 0x82,
  ImplementationSpecificError: 0x83,
  UnsupportedProtocolVersion: 0x84,
  ClientIdentifierNotValid: 0x85,
  BadUserNameOrPassword: 0x86,
  NotAuthorized: 0x87,
  ServerUnavailable: 0x88,
  ServerBusy: 0x89,
  Banned: 0x8a,
  ServerShuttingDown: 0x8b,
  BadAuthenticationMethod: 0x8c,
  KeepAliveTimeout: 0x8d,
  SessionTakenOver: 0x8e,
  TopicFilterInvalid: 0x8f,
  TopicNameInvalid: 0x90,
  PacketIdentifierInUse: 0x91,
  PacketIdentifierNotFound: 0x92,
  ReceiveMaximumExceeded: 0x93,
  TopicAliasInvalid: 0x94,
  PacketTooLarge: 0x95,
  MessageRateTooHigh: 0x96,
  QuotaExceeded: 0x97,
  AdministrativeAction: 0x98,
  PayloadFormatInvalid: 0x99,
  RetainNotSupported: 0x9a,
  QoSNotSupported: 0x9b,
  UseAnotherServer: 0x9c,
  ServerMoved: 0x9d,
  SharedSubscriptionsNotSupported: 0x9e,
  ConnectionRateExceeded: 0x9f,
  MaximumConnectTime: 0xa0,
  SubscriptionIdentifiersNotSupported: 0xa1,
  WildcardSubscriptionsNotSupported: 0xa2,
} as const;

/** A reason code value. */
export type ReasonCode = number;

/** v3.1/v3.1.1 CONNACK return codes. */
export const V3ConnackCode = {
  Accepted: 0,
  UnacceptableProtocolVersion: 1,
  IdentifierRejected: 2,
  ServerUnavailable: 3,
  BadUserNameOrPassword: 4,
  NotAuthorized: 5,
} as const;

/** v3 SUBACK failure return code. */
export const V3SubackFailure = 0x80;

const NAMES: Record<number, string> = {
  0x00: "success",
  0x01: "granted qos 1",
  0x02: "granted qos 2",
  0x04: "disconnect with will message",
  0x10: "no matching subscribers",
  0x11: "no subscription existed",
  0x18: "continue authentication",
  0x19: "re-authenticate",
  0x80: "unspecified error",
  0x81: "malformed packet",
  0x82: "protocol error",
  0x83: "implementation specific error",
  0x84: "unsupported protocol version",
  0x85: "client identifier not valid",
  0x86: "bad user name or password",
  0x87: "not authorized",
  0x88: "server unavailable",
  0x89: "server busy",
  0x8a: "banned",
  0x8b: "server shutting down",
  0x8c: "bad authentication method",
  0x8d: "keep alive timeout",
  0x8e: "session taken over",
  0x8f: "topic filter invalid",
  0x90: "topic name invalid",
  0x91: "packet identifier in use",
  0x92: "packet identifier not found",
  0x93: "receive maximum exceeded",
  0x94: "topic alias invalid",
  0x95: "packet too large",
  0x96: "message rate too high",
  0x97: "quota exceeded",
  0x98: "administrative action",
  0x99: "payload format invalid",
  0x9a: "retain not supported",
  0x9b: "qos not supported",
  0x9c: "use another server",
  0x9d: "server moved",
  0x9e: "shared subscriptions not supported",
  0x9f: "connection rate exceeded",
  0xa0: "maximum connect time",
  0xa1: "subscription identifiers not supported",
  0xa2: "wildcard subscriptions not supported",
};

/**
 * The human-readable name of a reason code.
 *
 * @param code The reason code.
 * @returns Its name, or `"unknown reason code 0x.."`.
 *
 * @example Naming a code
 * ```ts
 * import assert from "node:assert/strict";
 * import { reasonName } from "./reason_codes.ts";
 *
 * assert.equal(reasonName(0x87), "not authorized");
 * ```
 */
export function reasonName(code: number): string {
  return NAMES[code] ?? `unknown reason code 0x${code.toString(16).padStart(2, "0")}`;
}

/**
 * Whether a reason code reports a failure (0x80 and above).
 *
 * @param code The reason code.
 * @returns True for error codes.
 */
export function isError(code: number): boolean {
  return code >= 0x80;
}

/**
 * Maps a v5 CONNACK reason code to the v3 return code (0-5), so a v3 client only ever sees codes
 * it understands.
 *
 * @param code A v5 CONNACK reason code.
 * @returns The v3.1.1 return code.
 *
 * @example Mapping a refusal
 * ```ts
 * import assert from "node:assert/strict";
 * import { toV3ConnackCode } from "./reason_codes.ts";
 *
 * assert.equal(toV3ConnackCode(0x86), 4); // bad user name or password
 * ```
 */
export function toV3ConnackCode(code: number): number {
  switch (code) {
    case 0x00:
      return V3ConnackCode.Accepted;
    case 0x84:
      return V3ConnackCode.UnacceptableProtocolVersion;
    case 0x85:
      return V3ConnackCode.IdentifierRejected;
    case 0x86:
      return V3ConnackCode.BadUserNameOrPassword;
    case 0x87:
    case 0x8a:
      return V3ConnackCode.NotAuthorized;
    default:
      return V3ConnackCode.ServerUnavailable;
  }
}

/** An error carrying an MQTT reason code, thrown only at API boundaries (never on the packet path). */
export class MqttError extends Error {
  /** The reason code that describes the failure. */
  readonly reasonCode: number;

  /**
   * Creates an error for a reason code.
   *
   * @param reasonCode The reason code.
   * @param message An optional message; the code's name by default.
   */
  constructor(reasonCode: number, message?: string) {
    super(message ?? reasonName(reasonCode));
    this.name = "MqttError";
    this.reasonCode = reasonCode;
  }
}

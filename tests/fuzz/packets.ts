/**
 * Random but valid MQTT packets, in the normalized form `decodePacket` returns (PUBLISH always has
 * `dup`, `qos` and `retain`; v5 acks, DISCONNECT and AUTH always have `reasonCode`; subscriptions
 * always have all four options), so that decoding their encoding must give them back.
 *
 * @module
 */

import { type Packet, PacketType, type Properties, type ProtocolVersion } from "../../src/packets/mod.ts";
import type { Rng } from "./rng.ts";

const WORDS = [
  "a",
  "b",
  "sensor",
  "temp",
  "€",
  "ü",
  "x y",
  "\u{1F600}",
  "$SYS",
  "long".repeat(20),
  "",
  "\uFEFF",
];

/** A random non-empty UTF-8 string without U+0000, wildcards or surrogate halves. */
function text(rng: Rng, allowEmpty = false): string {
  const n = rng.range(allowEmpty ? 0 : 1, 3);
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(rng.pick(WORDS));
  const s = parts.join(rng.pick(["", "-"]));
  return s === "" && !allowEmpty ? "t" : s;
}

/** A random topic name of one to four levels, without wildcards. */
export function topicName(rng: Rng): string {
  const levels: string[] = [];
  const n = rng.range(1, 4);
  for (let i = 0; i < n; i++) levels.push(text(rng, i > 0));
  return levels.join("/");
}

/** A random topic filter (wildcards allowed; the codec does not check filter syntax). */
function topicFilter(rng: Rng): string {
  const levels: string[] = [];
  const n = rng.range(1, 4);
  for (let i = 0; i < n; i++) levels.push(rng.chance(0.2) ? "+" : text(rng, true));
  if (rng.chance(0.2)) levels.push("#");
  return levels.join("/");
}

function id(rng: Rng): number {
  return rng.chance(0.1) ? rng.pick([1, 0xffff, 0x100, 0x80]) : rng.range(1, 0xffff);
}

function u32(rng: Rng): number {
  return rng.chance(0.2) ? rng.pick([0, 1, 0xffffffff, 0x7fffffff]) : rng.u32();
}

type Maker = (rng: Rng, properties: Properties) => void;

/** Property makers by name; `packetTypes` says where each may appear. */
const MAKERS: [name: keyof Properties, targets: (number | "will")[], make: Maker][] = [
  ["payloadFormatIndicator", [3, "will"], (r, p) => p.payloadFormatIndicator = r.int(2)],
  ["messageExpiryInterval", [3, "will"], (r, p) => p.messageExpiryInterval = u32(r)],
  ["contentType", [3, "will"], (r, p) => p.contentType = text(r, true)],
  ["responseTopic", [3, "will"], (r, p) => p.responseTopic = topicName(r)],
  ["correlationData", [3, "will"], (r, p) => p.correlationData = r.bytes(r.int(20))],
  ["sessionExpiryInterval", [1, 2, 14], (r, p) => p.sessionExpiryInterval = u32(r)],
  ["assignedClientIdentifier", [2], (r, p) => p.assignedClientIdentifier = text(r)],
  ["serverKeepAlive", [2], (r, p) => p.serverKeepAlive = r.int(0x10000)],
  ["authenticationMethod", [1, 2, 15], (r, p) => p.authenticationMethod = text(r)],
  ["requestProblemInformation", [1], (r, p) => p.requestProblemInformation = r.int(2)],
  ["willDelayInterval", ["will"], (r, p) => p.willDelayInterval = u32(r)],
  ["requestResponseInformation", [1], (r, p) => p.requestResponseInformation = r.int(2)],
  ["responseInformation", [2], (r, p) => p.responseInformation = text(r, true)],
  ["serverReference", [2, 14], (r, p) => p.serverReference = text(r)],
  ["reasonString", [2, 4, 5, 6, 7, 9, 11, 14, 15], (r, p) => p.reasonString = text(r, true)],
  ["receiveMaximum", [1, 2], (r, p) => p.receiveMaximum = r.range(1, 0xffff)],
  ["topicAliasMaximum", [1, 2], (r, p) => p.topicAliasMaximum = r.int(0x10000)],
  ["topicAlias", [3], (r, p) => p.topicAlias = r.range(1, 0xffff)],
  ["maximumQoS", [2], (r, p) => p.maximumQoS = r.int(2)],
  ["retainAvailable", [2], (r, p) => p.retainAvailable = r.int(2)],
  ["maximumPacketSize", [1, 2], (r, p) => p.maximumPacketSize = r.range(1, 0xffffffff)],
  ["wildcardSubscriptionAvailable", [2], (r, p) => p.wildcardSubscriptionAvailable = r.int(2)],
  ["subscriptionIdentifierAvailable", [2], (r, p) => p.subscriptionIdentifierAvailable = r.int(2)],
  ["sharedSubscriptionAvailable", [2], (r, p) => p.sharedSubscriptionAvailable = r.int(2)],
];

/** Random v5 properties for a target, or undefined (no properties) about a third of the time. */
function properties(rng: Rng, target: number | "will"): Properties | undefined {
  if (rng.chance(0.35)) return undefined;
  const p: Properties = {};
  for (const [, targets, make] of MAKERS) {
    if (targets.includes(target) && rng.chance(0.3)) make(rng, p);
  }
  if (target === 1 || target === 2 || target === 15) {
    // Authentication Data needs an Authentication Method (spec 3.1.2.11.10).
    if (p.authenticationMethod !== undefined && rng.chance(0.5)) {
      p.authenticationData = rng.bytes(rng.int(10));
    }
  }
  if ((target === 3 || target === 8) && rng.chance(0.3)) {
    const n = target === 3 ? rng.range(1, 3) : 1;
    p.subscriptionIdentifier = [];
    for (let i = 0; i < n; i++) p.subscriptionIdentifier.push(rng.range(1, 268_435_455));
  }
  if (target !== 12 && target !== 13 && rng.chance(0.3)) {
    p.userProperties = [];
    const n = rng.range(1, 3);
    for (let i = 0; i < n; i++) p.userProperties.push([text(rng, true), text(rng, true)]);
  }
  return Object.keys(p).length === 0 ? undefined : p;
}

function withProperties(packet: Packet, version: ProtocolVersion, rng: Rng, target: number): Packet {
  if (version !== 5) return packet;
  const p = properties(rng, target);
  if (p !== undefined) packet.properties = p;
  return packet;
}

/**
 * A random valid packet of any type that the protocol level has, in decoded form.
 *
 * @param rng The random source.
 * @param version The protocol level.
 * @returns The packet.
 */
export function randomPacket(rng: Rng, version: ProtocolVersion): Packet {
  const type = (version === 5 ? rng.range(1, 15) : rng.range(1, 14)) as PacketType;
  switch (type) {
    case PacketType.Connect: {
      const willFlag = rng.chance(0.4);
      const username = rng.chance(0.4) ? text(rng, true) : undefined;
      const password = (version === 5 || username !== undefined) && rng.chance(0.4)
        ? rng.bytes(rng.int(12))
        : undefined;
      const packet: Packet = {
        fixedHeader: { type: PacketType.Connect },
        protocolVersion: version,
        connect: {
          protocolName: version === 3 ? "MQIsdp" : "MQTT",
          protocolVersion: version,
          clean: rng.chance(0.5),
          keepAlive: rng.int(0x10000),
          clientId: rng.chance(0.2) ? "" : text(rng),
          willFlag,
        },
      };
      const connect = packet.connect!;
      if (willFlag) {
        if (version === 5) {
          const will = properties(rng, "will");
          if (will !== undefined) connect.willProperties = will;
        }
        connect.willTopic = topicName(rng);
        connect.willPayload = rng.bytes(rng.int(30));
        connect.willQos = rng.int(3) as 0 | 1 | 2;
        connect.willRetain = rng.chance(0.5);
      }
      if (username !== undefined) connect.username = username;
      if (password !== undefined) connect.password = password;
      return withProperties(packet, version, rng, type);
    }
    case PacketType.Connack: {
      const packet: Packet = {
        fixedHeader: { type },
        sessionPresent: version !== 3 && rng.chance(0.5),
        reasonCode: version === 5 ? rng.pick([0, 0x80, 0x84, 0x86, 0x87, 0x9c]) : rng.int(6),
      };
      return withProperties(packet, version, rng, type);
    }
    case PacketType.Publish: {
      const qos = rng.int(3) as 0 | 1 | 2;
      const packet: Packet = {
        fixedHeader: { type, dup: qos > 0 && rng.chance(0.3), qos, retain: rng.chance(0.3) },
        topicName: topicName(rng),
      };
      if (qos > 0) packet.packetId = id(rng);
      withProperties(packet, version, rng, type);
      if (version === 5 && packet.properties?.topicAlias !== undefined && rng.chance(0.5)) {
        packet.topicName = "";
      }
      packet.payload = rng.bytes(rng.chance(0.05) ? rng.range(128, 20_000) : rng.int(40));
      return packet;
    }
    case PacketType.Puback:
    case PacketType.Pubrec:
    case PacketType.Pubrel:
    case PacketType.Pubcomp: {
      const packet: Packet = { fixedHeader: { type }, packetId: id(rng) };
      if (version === 5) packet.reasonCode = rng.pick([0, 0, 0x10, 0x80, 0x92, 0x97]);
      return withProperties(packet, version, rng, type);
    }
    case PacketType.Subscribe: {
      const packet: Packet = { fixedHeader: { type }, packetId: id(rng) };
      withProperties(packet, version, rng, type);
      const identifier = packet.properties?.subscriptionIdentifier?.[0];
      const n = rng.range(1, 4);
      packet.filters = [];
      for (let i = 0; i < n; i++) {
        const shared = version === 5 && rng.chance(0.1);
        const filter = shared ? `$share/g/${topicFilter(rng)}` : topicFilter(rng);
        packet.filters.push({
          filter,
          qos: rng.int(3) as 0 | 1 | 2,
          noLocal: version === 5 && !shared && rng.chance(0.3),
          retainAsPublished: version === 5 && rng.chance(0.3),
          retainHandling: version === 5 ? rng.int(3) as 0 | 1 | 2 : 0,
          ...(identifier !== undefined ? { identifier } : {}),
        });
      }
      return packet;
    }
    case PacketType.Suback:
    case PacketType.Unsuback: {
      const packet: Packet = { fixedHeader: { type }, packetId: id(rng) };
      withProperties(packet, version, rng, type);
      if (type === PacketType.Suback || version === 5) {
        packet.reasonCodes = [];
        const n = rng.range(1, 5);
        for (let i = 0; i < n; i++) packet.reasonCodes.push(rng.pick([0, 1, 2, 0x11, 0x80, 0x87, 0x8f]));
      }
      return packet;
    }
    case PacketType.Unsubscribe: {
      const packet: Packet = { fixedHeader: { type }, packetId: id(rng) };
      withProperties(packet, version, rng, type);
      packet.filters = [];
      const n = rng.range(1, 4);
      for (let i = 0; i < n; i++) packet.filters.push({ filter: topicFilter(rng), qos: 0 });
      return packet;
    }
    case PacketType.Pingreq:
    case PacketType.Pingresp:
      return { fixedHeader: { type } };
    default: { // DISCONNECT, AUTH
      const packet: Packet = { fixedHeader: { type } };
      if (version === 5) {
        packet.reasonCode = type === PacketType.Auth
          ? rng.pick([0, 0x18, 0x19])
          : rng.pick([0, 4, 0x80, 0x8e]);
      }
      return withProperties(packet, version, rng, type);
    }
  }
}

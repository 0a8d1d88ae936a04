/**
 * Acknowledgements of a client's QoS 1/2 publishes: PUBACK, or PUBREC with the inbound QoS 2 state,
 * sent durably and in the order the publishes came ([MQTT-4.6.0-2]), also when an inline subscriber
 * (a bridge) holds one until the message is safe elsewhere.
 *
 * @module
 */

import type { Packet } from "./packets/types.ts";
import { PacketType } from "./packets/types.ts";
import { ReasonCode } from "./packets/reason_codes.ts";
import type { Client } from "./client.ts";
import type { Hooks } from "./hooks.ts";
import type { ResolvedOptions } from "./options.ts";
import type { AckHold } from "./inline.ts";

/** What publish acknowledgements need from the server. */
export interface PublishAckHost {
  /** The server's options. */
  readonly options: ResolvedOptions;
  /** The hook dispatcher. */
  readonly hooks: Hooks;
  /** Sends an acknowledgement once what it promises is durable. */
  sendDurable(client: Client, packet: Packet): void;
}

/**
 * Sends the acknowledgements of client publishes for one server.
 *
 * @example A QoS 0 publish needs no acknowledgement
 * ```ts
 * import assert from "node:assert/strict";
 * import { Server } from "../mod.ts";
 * const server = new Server({ inlineClient: true });
 * await server.publish("a/b", "x", false, 0); // the server's own publishes are never acknowledged
 * assert.equal(server.info.messagesReceived, 0);
 * ```
 */
export class PublishAcks {
  readonly #host: PublishAckHost;
  /** The last held acknowledgement of each client that has one pending (keeps its acks in order). */
  readonly #tails = new Map<Client, Promise<void>>();

  /**
   * Creates the sender.
   *
   * @param host The server's parts it uses.
   */
  constructor(host: PublishAckHost) {
    this.#host = host;
  }

  /**
   * Acknowledges a client's QoS 1/2 PUBLISH (PUBACK, or PUBREC and the inbound QoS 2 state), after
   * any holds and durably; nothing for QoS 0 or for an inline client.
   *
   * @param client The publisher.
   * @param packet Its PUBLISH.
   * @param code The reason code.
   * @param holds Promises of inline subscribers that hold the ack.
   */
  send(client: Client, packet: Packet, code: number, holds?: AckHold[]): void {
    const qos = packet.fixedHeader.qos ?? 0;
    // An inline client has no connection to ack to, and must keep no QoS 2 state for injected packets.
    if (qos === 0 || client.net.inline) return;
    const inherit = !this.#host.options.capabilities.compatibilities.noInheritedPropertiesOnAck &&
      packet.properties?.userProperties;
    const properties = inherit ? { userProperties: packet.properties!.userProperties } : undefined;
    if (qos === 1) {
      this.inOrder(client, {
        fixedHeader: { type: PacketType.Puback },
        packetId: packet.packetId,
        reasonCode: code,
        properties,
      }, holds);
      return;
    }
    const pubrec: Packet = {
      fixedHeader: { type: PacketType.Pubrec },
      packetId: packet.packetId,
      reasonCode: code,
      properties,
    };
    // A refused QoS 2 publish ends with the PUBREC; an accepted one waits for PUBREL.
    if (code < 0x80) {
      client.state.inflight.inboundQos2.add(packet.packetId!);
      this.#host.hooks.onQosPublish(client, pubrec, Date.now(), 0);
    }
    this.inOrder(client, pubrec, holds);
  }

  /**
   * Sends a PUBACK or PUBREC, after the holds of inline subscribers and after this client's earlier
   * held acks ([MQTT-4.6.0-2] acks go in the order the publishes came). One size check when nothing
   * is held.
   *
   * @param client The publisher.
   * @param ack The PUBACK or PUBREC.
   * @param holds Promises of inline subscribers that hold it.
   */
  inOrder(client: Client, ack: Packet, holds: AckHold[] | undefined): void {
    const tail = this.#tails.size > 0 ? this.#tails.get(client) : undefined;
    if (holds === undefined && tail === undefined) return this.#host.sendDurable(client, ack);
    const waits: AckHold[] = holds ?? [];
    if (tail) waits.push(tail);
    const next: Promise<void> = Promise.allSettled(waits).then((results) => {
      if (this.#tails.get(client) === next) this.#tails.delete(client);
      let refused = 0;
      for (const result of results) {
        const code = result.status === "fulfilled" ? result.value : ReasonCode.UnspecifiedError;
        if (typeof code === "number" && code >= 0x80 && refused === 0) refused = code;
      }
      if (refused !== 0 && (ack.reasonCode ?? 0) < 0x80) {
        if (ack.fixedHeader.type === PacketType.Pubrec) {
          client.state.inflight.inboundQos2.delete(ack.packetId!); // a refused QoS 2 flow ends here
          this.#host.hooks.onQosComplete(client, ack);
        }
        if (client.properties.protocolVersion === 5) ack.reasonCode = refused;
      }
      this.#host.sendDurable(client, ack);
    });
    this.#tails.set(client, next);
  }
}

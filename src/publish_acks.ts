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
  /** Where acknowledgements wait until what they promise is durable. */
  readonly durable: DurableAcks;
}

/** What {@linkcode DurableAcks} needs from the server. */
export interface DurableAckHost {
  /** Whether acknowledgements go out at once (`durability: "async"`, or nothing to wait for). */
  immediate(): boolean;
  /** Resolves when everything written so far is stored (storage hooks, the cluster's engine). */
  sync(): Promise<unknown>;
}

/**
 * Acknowledgements that promise durability: with a storage hook or a cluster and `durability: "sync"`,
 * they wait until everything written so far is stored, one wait per turn for all clients. The waiting
 * acks are kept flat (client, packet or PUBACK packet id, callback or reason code): a plain PUBACK,
 * the one every QoS 1 publish gets, has no object of its own while it waits (objects that outlive
 * an engine's round trip are promoted and cost the old generation's GC).
 *
 * @example Without storage an acknowledgement goes out at once
 * ```ts
 * import assert from "node:assert/strict";
 * import { DurableAcks } from "./publish_acks.ts";
 * const sent: number[] = [];
 * const client = { send: (packet: { packetId?: number }) => sent.push(packet.packetId!) };
 * const acks = new DurableAcks({ immediate: () => true, sync: () => Promise.resolve() });
 * // deno-lint-ignore no-explicit-any
 * acks.puback(client as any, 7, 0);
 * assert.deepEqual(sent, [7]);
 * ```
 */
export class DurableAcks {
  readonly #host: DurableAckHost;
  /** Triples: the client; its packet, or a PUBACK's packet id; a callback, or the PUBACK's reason code. */
  #waiting: (Client | Packet | number | (() => void) | undefined)[] = [];
  #scheduled = false;

  /**
   * Creates the queue.
   *
   * @param host What it waits for.
   */
  constructor(host: DurableAckHost) {
    this.#host = host;
  }

  /**
   * Sends a packet once what it promises is durable.
   *
   * @param client The client.
   * @param packet The acknowledgement.
   * @param after Called once it is sent (e.g. retained messages, which must follow their SUBACK).
   */
  send(client: Client, packet: Packet, after?: () => void): void {
    if (this.#host.immediate()) {
      client.send(packet);
      after?.();
      return;
    }
    this.#waiting.push(client, packet, after);
    this.#schedule();
  }

  /**
   * Sends a PUBACK without properties once what it promises is durable.
   *
   * @param client The publisher.
   * @param packetId The PUBLISH's packet id.
   * @param code The reason code.
   */
  puback(client: Client, packetId: number, code: number): void {
    if (this.#host.immediate()) {
      client.send(pubackOf(packetId, code));
      return;
    }
    this.#waiting.push(client, packetId, code);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    queueMicrotask(this.#flush);
  }

  readonly #flush = (): void => {
    this.#scheduled = false;
    const batch = this.#waiting;
    this.#waiting = [];
    this.#host.sync().then(() => {
      for (let i = 0; i < batch.length; i += 3) {
        const client = batch[i] as Client;
        const packet = batch[i + 1];
        const after = batch[i + 2];
        if (typeof packet === "number") {
          client.send(pubackOf(packet, after as number));
          continue;
        }
        client.send(packet as Packet);
        if (after !== undefined) (after as () => void)();
      }
    });
  };
}

/** A PUBACK without properties (encoded at once by `Client.send`: short-lived). */
function pubackOf(packetId: number, reasonCode: number): Packet {
  return { fixedHeader: { type: PacketType.Puback }, packetId, reasonCode };
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
      if (properties === undefined && holds === undefined && this.#tails.size === 0) {
        return this.#host.durable.puback(client, packet.packetId!, code);
      }
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
    if (holds === undefined && tail === undefined) return this.#host.durable.send(client, ack);
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
      this.#host.durable.send(client, ack);
    });
    this.#tails.set(client, next);
  }
}

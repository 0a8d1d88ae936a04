/**
 * The QoS 1/2 state of one session: outbound messages in flight (in send order), outbound
 * messages waiting for send quota or for the client to come back, packet-id allocation, and
 * the inbound QoS 2 packet ids awaiting PUBREL.
 *
 * @module
 */

import type { Packet } from "./packets/types.ts";
import { Queue } from "./queue.ts";

/**
 * In-flight state of a session.
 *
 * @example Allocating packet ids
 * ```ts
 * import assert from "node:assert/strict";
 * import { Inflight } from "./inflight.ts";
 *
 * const inflight = new Inflight();
 * const id = inflight.nextPacketId();
 * inflight.outbound.set(id, { fixedHeader: { type: 3, qos: 1 }, packetId: id, topicName: "a" });
 * assert.equal(id, 1);
 * assert.equal(inflight.nextPacketId(), 2); // 1 is still in flight
 * ```
 */
export class Inflight {
  /**
   * Outbound QoS 1/2 messages sent and not yet completed, keyed by packet id, in send order.
   * A QoS 2 message whose PUBREC arrived is replaced in place by its PUBREL.
   */
  get outbound(): Map<number, Packet> {
    return this.#outbound ??= new Map();
  }
  /** Outbound messages not yet sent: over the client's Receive Maximum, or the client is offline. */
  get pending(): Queue<Packet> {
    return this.#pending ??= new Queue();
  }
  /** Inbound QoS 2 packet ids received (PUBREC sent) and awaiting PUBREL [MQTT-4.3.3-9]. */
  get inboundQos2(): Set<number> {
    return this.#inboundQos2 ??= new Set();
  }
  // Created on first use: most sessions (idle ones, QoS 0 ones) never need them.
  #outbound: Map<number, Packet> | undefined;
  #pending: Queue<Packet> | undefined;
  #inboundQos2: Set<number> | undefined;
  #lastId = 0;
  #sequence = 0;
  #bytes = 0;

  /**
   * Allocates the next free packet id for an outbound message.
   *
   * @returns A free id from 1 to 65535, or 0 when every id is in use.
   */
  nextPacketId(): number {
    if (this.outbound.size >= 0xffff) return 0;
    let id = this.#lastId;
    do {
      id = id >= 0xffff ? 1 : id + 1;
    } while (this.outbound.has(id));
    this.#lastId = id;
    return id;
  }

  /**
   * The next sequence number for an outbound message entering this session (storage restores
   * messages in this order).
   *
   * @returns A number larger than any given before (or restored with {@linkcode Inflight.restoreSequence}).
   */
  nextSequence(): number {
    return ++this.#sequence;
  }

  /**
   * Continues numbering after restored messages.
   *
   * @param sequence The highest sequence number restored.
   */
  restoreSequence(sequence: number): void {
    if (sequence > this.#sequence) this.#sequence = sequence;
  }

  /** Bytes of the outbound messages held (payloads and topics), for `maximumSessionBytes`. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Counts a message entering this session (sent or queued).
   *
   * @param packet A PUBLISH.
   */
  hold(packet: Packet): void {
    this.#bytes += messageBytes(packet);
  }

  /**
   * Counts a message leaving this session (completed, dropped, or past PUBREC: only its id stays).
   *
   * @param packet The PUBLISH it held (a PUBREL holds nothing).
   */
  release(packet: Packet): void {
    if (packet.fixedHeader.type === 3) this.#bytes -= messageBytes(packet);
  }

  /** Outbound messages held: in flight plus pending. */
  get size(): number {
    return (this.#outbound?.size ?? 0) + (this.#pending?.length ?? 0);
  }

  /** Forgets everything (a session ended). */
  clear(): void {
    this.#bytes = 0;
    this.#outbound?.clear();
    this.#pending?.clear();
    this.#inboundQos2?.clear();
  }
}

/**
 * What a held message costs: its payload and topic.
 *
 * @param packet A PUBLISH.
 * @returns Bytes.
 */
export function messageBytes(packet: Packet): number {
  return (packet.payload?.length ?? 0) + (packet.topicName?.length ?? 0);
}

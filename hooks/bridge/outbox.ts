/**
 * A bridge's outgoing messages: a bounded queue in arrival order, and the QoS 1/2 messages in flight
 * to the remote by packet id. It survives reconnections, so order holds across them.
 *
 * @module
 */

import type { Properties, QoS } from "../../src/packets/types.ts";

/** A message on its way to the remote. */
export interface OutgoingMessage {
  /** The remote topic. */
  topic: string;
  /** The payload (a copy the outbox owns). */
  payload: Uint8Array;
  /** The QoS to send with. */
  qos: QoS;
  /** The retain flag. */
  retain: boolean;
  /** v5 properties to forward. */
  properties?: Properties;
  /** Releases the local publisher's acknowledgement; a code of 0x80 or more refuses it. */
  settle?: (code?: number) => void;
  /** The packet id while in flight (0 before). */
  packetId: number;
  /** QoS 2: the remote sent PUBREC and we sent PUBREL. */
  released: boolean;
}

/**
 * The queue and the in-flight window toward the remote.
 *
 * @example Oldest dropped when full
 * ```ts
 * import assert from "node:assert/strict";
 * import { Outbox } from "./outbox.ts";
 * const outbox = new Outbox(2, 1 << 20);
 * const message = (topic: string) => ({ topic, payload: new Uint8Array(1), qos: 1 as const, retain: false, packetId: 0, released: false });
 * outbox.push(message("a"));
 * outbox.push(message("b"));
 * const dropped = outbox.push(message("c"));
 * assert.deepEqual(dropped.map((m) => m.topic), ["a"]);
 * assert.equal(outbox.shift()?.topic, "b");
 * ```
 */
export class Outbox {
  /** Messages in flight by packet id, in the order they were sent. */
  readonly inflight: Map<number, OutgoingMessage> = new Map();
  /** Messages dropped because the queue was full, since start. */
  dropped = 0;
  /** Bytes (topic and payload) of the queued messages. */
  queuedBytes = 0;
  readonly #maxMessages: number;
  readonly #maxBytes: number;
  #queue: OutgoingMessage[] = [];
  #head = 0;
  #nextId = 1;

  /**
   * Creates an empty outbox.
   *
   * @param maxMessages Queued messages beyond which the oldest is dropped.
   * @param maxBytes Queued bytes beyond which the oldest is dropped.
   */
  constructor(maxMessages: number, maxBytes: number) {
    this.#maxMessages = maxMessages;
    this.#maxBytes = maxBytes;
  }

  /** Messages waiting to be sent. */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  /**
   * Queues a message at the end, dropping the oldest queued ones while over a limit.
   *
   * @param message The message.
   * @returns The messages dropped (their `settle` is not called here).
   */
  push(message: OutgoingMessage): OutgoingMessage[] {
    this.#queue.push(message);
    this.queuedBytes += sizeOf(message);
    let dropped: OutgoingMessage[] | undefined;
    while (this.queued > this.#maxMessages || (this.queuedBytes > this.#maxBytes && this.queued > 0)) {
      (dropped ??= []).push(this.shift()!);
      this.dropped++;
    }
    return dropped ?? NONE;
  }

  /**
   * The oldest queued message, without removing it.
   *
   * @returns The message, or undefined when the queue is empty.
   */
  peek(): OutgoingMessage | undefined {
    return this.#head < this.#queue.length ? this.#queue[this.#head] : undefined;
  }

  /**
   * Removes and returns the oldest queued message.
   *
   * @returns The message, or undefined when the queue is empty.
   */
  shift(): OutgoingMessage | undefined {
    if (this.#head >= this.#queue.length) return undefined;
    const message = this.#queue[this.#head];
    this.#queue[this.#head++] = undefined as unknown as OutgoingMessage;
    this.queuedBytes -= sizeOf(message);
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    return message;
  }

  /**
   * Puts messages back at the front of the queue, in the given order (a lost remote session's
   * in-flight messages, or one the connection refused).
   *
   * @param messages The messages, oldest first.
   */
  unshift(messages: OutgoingMessage[]): void {
    if (messages.length === 0) return;
    this.#queue = [...messages, ...this.#queue.slice(this.#head)];
    this.#head = 0;
    for (const message of messages) this.queuedBytes += sizeOf(message);
  }

  /**
   * A packet id not in flight.
   *
   * @returns 1..65535.
   */
  nextPacketId(): number {
    for (let i = 0; i < 65535; i++) {
      const id = this.#nextId;
      this.#nextId = id === 65535 ? 1 : id + 1;
      if (!this.inflight.has(id)) return id;
    }
    throw new RangeError("No packet id is free");
  }

  /**
   * Removes every message, queued and in flight (when the bridge stops).
   *
   * @returns The messages removed.
   */
  clear(): OutgoingMessage[] {
    const all = [...this.inflight.values(), ...this.#queue.slice(this.#head)];
    this.inflight.clear();
    this.#queue = [];
    this.#head = 0;
    this.queuedBytes = 0;
    return all;
  }
}

const NONE: OutgoingMessage[] = [];

function sizeOf(message: OutgoingMessage): number {
  return message.topic.length + message.payload.length;
}

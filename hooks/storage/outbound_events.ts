/**
 * {@linkcode OutboundEvents}: the outbound in-flight writes of a storage batch, flat, for a backend
 * that takes them so ({@linkcode StorageBackend.takesOutboundEvents} in `storage.ts`).
 *
 * @module
 */

import type { StoredMessage } from "../../src/storage.ts";

/** An {@linkcode OutboundEvents} kind: a message queued or sent (its `publish` stage). */
export const OUTBOUND_PUBLISH = 0;
/** An {@linkcode OutboundEvents} kind: the `pubrel` stage of a QoS 2 flow. */
export const OUTBOUND_PUBREL = 1;
/** An {@linkcode OutboundEvents} kind: the record is done (acknowledged, or dropped). */
export const OUTBOUND_DONE = 2;

/**
 * The outbound in-flight events of a batch, flat: one entry per delivery or acknowledgement in a
 * typed array (sequence, packet id, kind, and the indexes of its client id and message in small
 * tables), so that a persistent delivery costs the hook no record, no op object and no pointer for
 * the GC to trace (see {@linkcode StorageBackend.takesOutboundEvents}). Read event `i` with
 * {@linkcode OutboundEvents.clientOf} and the other `*Of` methods.
 */
export class OutboundEvents {
  /** How many events there are. */
  length = 0;
  /** Per event: sequence, packet id, kind, client index, message index (-1: none). */
  #numbers = new Float64Array(5 * 64);
  /** The batch's client ids, each once. */
  readonly #clients: string[] = [];
  readonly #clientIndex = new Map<string, number>();
  /** The batch's messages, each once (the deliveries of one message come together). */
  readonly #messages: StoredMessage[] = [];
  /** The shared groups of the events that have some, by event (rare: shared subscriptions only). */
  #groups: Map<number, readonly string[]> | undefined;

  /**
   * Adds an event.
   *
   * @param clientId The client id.
   * @param sequence The record's sequence.
   * @param packetId Its packet id.
   * @param kind {@linkcode OUTBOUND_PUBLISH}, {@linkcode OUTBOUND_PUBREL} or {@linkcode OUTBOUND_DONE}.
   * @param message The message, for a publish that carries it.
   * @param groups The shared groups that gave the session the message (`InflightRecord.groups`), if any.
   */
  push(
    clientId: string,
    sequence: number,
    packetId: number,
    kind: number,
    message: StoredMessage | undefined,
    groups?: readonly string[],
  ): void {
    if (groups !== undefined) (this.#groups ??= new Map()).set(this.length, groups);
    const at = this.length++ * 5;
    let numbers = this.#numbers;
    if (at + 5 > numbers.length) {
      numbers = new Float64Array(numbers.length * 2);
      numbers.set(this.#numbers);
      this.#numbers = numbers;
    }
    let client = this.#clientIndex.get(clientId);
    if (client === undefined) {
      client = this.#clients.push(clientId) - 1;
      this.#clientIndex.set(clientId, client);
    }
    let index = -1;
    if (message !== undefined) {
      const messages = this.#messages;
      index = messages.length - 1;
      if (index < 0 || messages[index] !== message) index = messages.push(message) - 1;
    }
    numbers[at] = sequence;
    numbers[at + 1] = packetId;
    numbers[at + 2] = kind;
    numbers[at + 3] = client;
    numbers[at + 4] = index;
  }

  /**
   * The client id of event `i`.
   *
   * @param i The event.
   * @returns The client id.
   */
  clientOf(i: number): string {
    return this.#clients[this.#numbers[i * 5 + 3]];
  }

  /**
   * The sequence of event `i`.
   *
   * @param i The event.
   * @returns The sequence.
   */
  sequenceOf(i: number): number {
    return this.#numbers[i * 5];
  }

  /**
   * The packet id of event `i`.
   *
   * @param i The event.
   * @returns The packet id.
   */
  packetIdOf(i: number): number {
    return this.#numbers[i * 5 + 1];
  }

  /**
   * The kind of event `i`.
   *
   * @param i The event.
   * @returns {@linkcode OUTBOUND_PUBLISH}, {@linkcode OUTBOUND_PUBREL} or {@linkcode OUTBOUND_DONE}.
   */
  kindOf(i: number): number {
    return this.#numbers[i * 5 + 2];
  }

  /**
   * The message of event `i`.
   *
   * @param i The event.
   * @returns The message, if the event carries one.
   */
  messageOf(i: number): StoredMessage | undefined {
    const index = this.#numbers[i * 5 + 4];
    return index < 0 ? undefined : this.#messages[index];
  }

  /**
   * The shared groups of event `i`.
   *
   * @param i The event.
   * @returns The groups, if it has some.
   */
  groupsOf(i: number): readonly string[] | undefined {
    return this.#groups?.get(i);
  }

  /** Empties it for reuse (keeping its room). */
  clear(): void {
    this.#groups?.clear();
    this.length = 0;
    this.#clients.length = 0;
    this.#clientIndex.clear();
    this.#messages.length = 0;
  }
}

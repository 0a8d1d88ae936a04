/**
 * {@linkcode RetainedMirror}: a node's copy of the cluster's retained messages. Every change has a
 * cluster-wide version (see `ClusterBus.commit`); the mirror applies announcements in version order
 * (its own node's included, so concurrent writes end the same everywhere), reloads everything on a
 * gap, and lets a SUBSCRIBE wait until it holds what the engine held when the SUBSCRIBE came.
 *
 * @module
 */

import type { Packet } from "../../src/packets/types.ts";
import { PacketType } from "../../src/packets/types.ts";
import { logger } from "../../src/logger.ts";
import type { ClusterBus } from "./bus.ts";
import { readRecords, type WireMessage } from "./wire.ts";

const log = logger("cluster");

/** The retained messages of the cluster, mirrored into this node's topic index. */
export class RetainedMirror {
  readonly #bus: ClusterBus;
  readonly #apply: (packet: Packet) => void;
  #applied = 0;
  readonly #topics = new Set<string>();
  #buffer: [number, string, Uint8Array | undefined][] | undefined;
  #waiters: { version: number; resolve: () => void }[] = [];
  #behind = 0;

  /**
   * Creates the mirror.
   *
   * @param bus The engine.
   * @param apply Sets (or, with an empty payload, clears) a retained message in the topic index.
   */
  constructor(bus: ClusterBus, apply: (packet: Packet) => void) {
    this.#bus = bus;
    this.#apply = apply;
  }

  /**
   * A change was announced.
   *
   * @param version Its cluster-wide version.
   * @param topic The topic.
   * @param record The message record, or undefined when cleared.
   */
  announced(version: number, topic: string, record: Uint8Array | undefined): void {
    if (this.#buffer) {
      this.#buffer.push([version, topic, record]);
      return;
    }
    if (version <= this.#applied) return;
    if (version !== this.#applied + 1) {
      this.reload();
      return;
    }
    this.#set(topic, record);
    this.#applied = version;
    this.#wake();
  }

  #set(topic: string, record: Uint8Array | undefined): void {
    let packet: Packet;
    if (record) {
      packet = (readRecords(record)[0] as WireMessage).packet;
      packet.fixedHeader.retain = true;
      this.#topics.add(topic);
    } else {
      packet = {
        fixedHeader: { type: PacketType.Publish, retain: true },
        topicName: topic,
        payload: new Uint8Array(),
      };
      this.#topics.delete(topic);
    }
    this.#apply(packet);
  }

  #wake(): void {
    if (this.#waiters.length === 0) return;
    const applied = this.#applied;
    this.#waiters = this.#waiters.filter((waiter) => {
      if (waiter.version > applied) return true;
      waiter.resolve();
      return false;
    });
  }

  /** Replaces the mirror with the engine's retained messages; announcements meanwhile follow. */
  async reload(): Promise<void> {
    if (this.#buffer) return;
    this.#buffer = [];
    try {
      const { version, records } = await this.#bus.retainedAll();
      for (const topic of [...this.#topics]) {
        if (!records.has(topic)) this.#set(topic, undefined);
      }
      for (const [topic, record] of records) this.#set(topic, record);
      this.#applied = Math.max(this.#applied, version);
    } catch (error) {
      log.debug("Could not load retained messages: {error}", { error: String(error) });
    }
    const buffered = this.#buffer;
    this.#buffer = undefined;
    for (const [version, topic, record] of buffered) this.announced(version, topic, record);
    this.#wake();
  }

  /** Resolves when the mirror is as new as the engine's retained messages were at the call. */
  async ready(): Promise<void> {
    let version: number;
    try {
      version = await this.#bus.retainedVersion();
    } catch {
      return; // unreachable: serve what the mirror has
    }
    if (this.#applied >= version) return;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.push({ version, resolve });
    const timer = setTimeout(() => this.reload().then(resolve), 300);
    await promise;
    clearTimeout(timer);
  }

  /** The engine lost every retained message and restarted its version: the mirror is emptied. */
  async reset(): Promise<void> {
    this.#applied = 0;
    this.#behind = 0;
    await this.reload();
  }

  /** Compares with the engine's version (on each membership check): behind twice in a row reloads. */
  async check(): Promise<void> {
    const version = await this.#bus.retainedVersion();
    if (version > this.#applied) {
      if (++this.#behind >= 2) this.reload();
    } else this.#behind = 0;
  }

  /** Releases every waiter (the node is leaving). */
  close(): void {
    for (const waiter of this.#waiters) waiter.resolve();
    this.#waiters = [];
  }
}

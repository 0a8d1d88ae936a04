/**
 * The registry of clients by client id: connected clients and disconnected persistent sessions.
 *
 * @module
 */

import type { Client } from "./client.ts";

/**
 * Clients by id.
 *
 * @example Looking up clients
 * ```ts
 * import assert from "node:assert/strict";
 * import { Clients } from "./clients.ts";
 *
 * const clients = new Clients();
 * assert.equal(clients.count, 0);
 * assert.equal(clients.get("nobody"), undefined);
 * ```
 */
export class Clients {
  readonly #byId = new Map<string, Client>();

  /** The number of clients (connected and remembered sessions). */
  get count(): number {
    return this.#byId.size;
  }

  /**
   * A client by id.
   *
   * @param id The client id.
   * @returns The client, or undefined.
   */
  get(id: string): Client | undefined {
    return this.#byId.get(id);
  }

  /**
   * Adds or replaces a client.
   *
   * @param client The client; its `id` is the key.
   */
  set(client: Client): void {
    this.#byId.set(client.id, client);
  }

  /**
   * Removes a client, but only if it is the one registered under its id.
   *
   * @param client The client.
   * @returns True if it was removed.
   */
  delete(client: Client): boolean {
    if (this.#byId.get(client.id) !== client) return false;
    return this.#byId.delete(client.id);
  }

  /**
   * Every client.
   *
   * @returns The clients, in the order they registered.
   */
  list(): Client[] {
    return [...this.#byId.values()];
  }

  /**
   * The clients that connected through one listener.
   *
   * @param listenerId The listener id.
   * @returns Those clients.
   */
  byListener(listenerId: string): Client[] {
    return this.list().filter((c) => c.net.listener === listenerId);
  }

  /** Iterates the clients. */
  values(): IterableIterator<Client> {
    return this.#byId.values();
  }
}

/**
 * An in-memory listener for tests: `connect()` returns the client end of a connection pair whose
 * server end is handed to the broker, with no sockets involved.
 *
 * @module
 */

import type { Connection, EstablishFn, Listener } from "../src/listener.ts";
import { ChunkQueue } from "./chunk_queue.ts";

/** One end of an in-memory byte stream pair. */
class MemoryConnection implements Connection {
  peer!: MemoryConnection;
  /** Bytes written by the peer; ended when the peer closes its side. */
  readonly incoming = new ChunkQueue();
  #closed = false;

  read(buffer: Uint8Array): Promise<number | null> {
    return this.incoming.read(buffer);
  }

  write(data: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new Error("The connection is closed"));
    this.peer.incoming.push(data.slice());
    return Promise.resolve(data.length);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.incoming.end();
    this.peer.incoming.end();
  }

  closeWrite(): Promise<void> {
    this.peer.incoming.end();
    return Promise.resolve();
  }
}

/**
 * Creates two connected in-memory {@linkcode Connection}s: bytes written to one are read from the
 * other. `close()` on either ends both directions; `closeWrite()` ends one.
 *
 * @returns The two ends.
 *
 * @example A round trip
 * ```ts
 * import assert from "node:assert/strict";
 * import { connectionPair } from "./mock.ts";
 *
 * const [a, b] = connectionPair();
 * await a.write(new Uint8Array([1, 2, 3]));
 * const buffer = new Uint8Array(8);
 * assert.equal(await b.read(buffer), 3);
 * assert.deepEqual(buffer.subarray(0, 3), new Uint8Array([1, 2, 3]));
 * a.close();
 * assert.equal(await b.read(buffer), null); // closing one end ends both
 * ```
 */
export function connectionPair(): [Connection, Connection] {
  const a = new MemoryConnection();
  const b = new MemoryConnection();
  a.peer = b;
  b.peer = a;
  return [a, b];
}

/**
 * A listener for tests: each `connect()` creates an in-memory connection pair, hands the server
 * end to the broker and returns the client end.
 *
 * @example Connecting through a mock listener
 * ```ts
 * import assert from "node:assert/strict";
 * import { AllowHook, Server } from "../mod.ts";
 * import { MockListener } from "./mock.ts";
 *
 * const server = new Server();
 * await server.addHook(new AllowHook());
 * const mock = new MockListener({ id: "mock" });
 * await server.addListener(mock);
 * await server.serve();
 *
 * const conn = mock.connect("192.0.2.7:5000"); // the remote address the broker sees
 * // CONNECT: "MQTT", v5, clean start, keep alive 60 s, no properties, client id "c1".
 * await conn.write(new Uint8Array([0x10, 15, 0, 4, 77, 81, 84, 84, 5, 2, 0, 60, 0, 0, 2, 99, 49]));
 * const reply = new Uint8Array(64);
 * assert.ok((await conn.read(reply) ?? 0) >= 4);
 * assert.equal(reply[0], 0x20); // CONNACK
 * assert.equal(reply[3], 0x00); // Success
 * assert.equal(server.clients.get("c1")?.net.remote, "192.0.2.7:5000");
 * conn.close();
 * await server.close();
 * ```
 */
export class MockListener implements Listener {
  /** The listener id. */
  readonly id: string;
  /** The address reported (`"mock"` unless given). */
  readonly address: string;
  /** The protocol name. */
  readonly protocol: string = "mock";
  /** Whether `init` was called. */
  initialised = false;
  /** Whether `close` was called. */
  closed = false;
  #establish: EstablishFn | undefined;
  readonly #clientEnds = new Set<Connection>();

  /**
   * Creates a mock listener.
   *
   * @param config The id and an optional address to report.
   */
  constructor(config: { id: string; address?: string }) {
    this.id = config.id;
    this.address = config.address ?? "mock";
  }

  /** Marks the listener initialised. */
  init(): void {
    this.initialised = true;
  }

  /**
   * Starts accepting `connect()` calls.
   *
   * @param establish Hands each connection to the server.
   */
  serve(establish: EstablishFn): void {
    this.#establish = establish;
  }

  /**
   * Opens an in-memory connection to the broker.
   *
   * @param remoteAddress The remote address the broker sees.
   * @returns The client end; write MQTT bytes to it and read the broker's replies.
   * @throws {TypeError} Before `serve` or after `close`.
   */
  connect(remoteAddress = "mock:0"): Connection {
    if (!this.#establish || this.closed) {
      throw new TypeError(`Mock listener "${this.id}" is not serving`);
    }
    const [client, server] = connectionPair();
    this.#clientEnds.add(client);
    this.#establish(this.id, server, remoteAddress).finally(() => this.#clientEnds.delete(client));
    return client;
  }

  /** Stops accepting `connect()` calls. */
  close(): Promise<void> {
    this.closed = true;
    this.#establish = undefined;
    return Promise.resolve();
  }
}

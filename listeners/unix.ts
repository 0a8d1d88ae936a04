/**
 * A Unix domain socket listener.
 *
 * @module
 */

import type { EstablishFn, Listener, ListenerConfig } from "../src/listener.ts";
import { ConnectionCounter, type ConnectionPolicy } from "./net.ts";
import { logger } from "../src/logger.ts";

const log = logger("unix");

/** Options for a {@linkcode UnixSock} listener: `address` is the socket file's path. */
export interface UnixSockConfig extends ListenerConfig, ConnectionPolicy {}

/**
 * Accepts MQTT clients on a Unix domain socket. A stale socket file left by an earlier run is
 * removed; any other file at the path is left alone and `init` fails. The socket file is removed
 * on close.
 *
 * @example A Unix socket in a temporary directory
 * ```ts
 * import assert from "node:assert/strict";
 * import { UnixSock } from "./unix.ts";
 *
 * const dir = Deno.makeTempDirSync();
 * const unix = new UnixSock({ id: "u1", address: `${dir}/mqtt.sock` });
 * await unix.init();
 * assert.equal(unix.protocol, "unix");
 * assert.ok(Deno.statSync(`${dir}/mqtt.sock`).isSocket);
 * await unix.close();
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class UnixSock implements Listener {
  /** The listener id. */
  readonly id: string;
  /** The protocol name. */
  readonly protocol: string = "unix";
  /** The socket file's path. */
  readonly address: string;
  /** Whether clients without a username may connect (the server refuses others with 0x87). */
  readonly allowAnonymous: boolean;
  /** Open and refused connection counts. */
  readonly connections: ConnectionCounter;
  #listener: Deno.UnixListener | undefined;
  #accepting: Promise<void> | undefined;
  /** Ends a connection's count: one function for all (no closure per connection). */
  readonly #release = (): void => this.connections.release();

  /**
   * Creates a Unix socket listener.
   *
   * @param config The id, the socket path as `address`, `maxConnections` and `allowAnonymous`.
   */
  constructor(config: UnixSockConfig) {
    this.id = config.id;
    this.address = config.address;
    this.allowAnonymous = config.allowAnonymous ?? true;
    this.connections = new ConnectionCounter(config.id, config.maxConnections);
  }

  /**
   * Removes a stale socket file and binds the path.
   *
   * @throws {Deno.errors.AlreadyExists} When a file that is not a socket is at the path.
   */
  init(): void {
    let info: Deno.FileInfo | undefined;
    try {
      info = Deno.lstatSync(this.address);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    if (info) {
      if (!info.isSocket) {
        throw new Deno.errors.AlreadyExists(
          `Cannot listen on "${this.address}": the path exists and is not a socket (not removing it)`,
        );
      }
      Deno.removeSync(this.address);
    }
    this.#listener = Deno.listen({ transport: "unix", path: this.address });
  }

  /**
   * Accepts connections until closed.
   *
   * @param establish Hands each connection to the server.
   */
  serve(establish: EstablishFn): void {
    const listener = this.#listener;
    if (!listener) throw new TypeError(`Listener "${this.id}" must be initialised before serve`);
    this.#accepting ??= (async () => {
      try {
        for await (const conn of listener) {
          if (!this.connections.acquire()) {
            conn.close();
            continue;
          }
          establish(this.id, conn, this.address).then(this.#release, this.#release);
        }
      } catch (error) {
        if (!(error instanceof Deno.errors.BadResource)) {
          log.error("Listener {id} stopped accepting: {error}", { id: this.id, error: String(error) });
        }
      }
    })();
  }

  /** Stops accepting connections and removes the socket file. */
  async close(): Promise<void> {
    const listener = this.#listener;
    this.#listener = undefined;
    if (!listener) return;
    try {
      listener.close();
    } catch {
      // already closed
    }
    await this.#accepting;
    try {
      if (Deno.lstatSync(this.address).isSocket) Deno.removeSync(this.address);
    } catch {
      // already gone
    }
  }
}

/**
 * A TCP listener on `Deno.listen` (TLS arrives with the listeners issue).
 *
 * @module
 */

import type { EstablishFn, Listener, ListenerConfig } from "./listener.ts";
import { parseHostPort } from "./listener.ts";
import { logger } from "../src/logger.ts";

const log = logger("tcp");

/**
 * Accepts MQTT clients over TCP. Nagle is turned off on every connection so small packets are
 * not held back (Deno leaves it on).
 *
 * @example A TCP listener on a free port
 * ```ts
 * import { TCP } from "./tcp.ts";
 * const tcp = new TCP({ id: "t1", address: "127.0.0.1:0" });
 * await tcp.init();
 * console.log(tcp.address.startsWith("127.0.0.1:")); // true
 * await tcp.close();
 * ```
 */
export class TCP implements Listener {
  /** The listener id. */
  readonly id: string;
  /** The protocol name. */
  readonly protocol: string = "tcp";
  #address: string;
  #listener: Deno.TcpListener | undefined;
  #accepting: Promise<void> | undefined;
  readonly #conns = new Set<Deno.TcpConn>();

  /**
   * Creates a TCP listener.
   *
   * @param config The id and `host:port` address (`:1883` for all interfaces, port 0 for any free port).
   */
  constructor(config: ListenerConfig) {
    this.id = config.id;
    this.#address = config.address;
  }

  /** The configured address, or after `init` the bound `host:port`. */
  get address(): string {
    return this.#address;
  }

  /** Binds the address. */
  init(): void {
    const { hostname, port } = parseHostPort(this.#address);
    this.#listener = Deno.listen({ hostname, port, transport: "tcp" });
    const addr = this.#listener.addr;
    this.#address = addr.hostname.includes(":")
      ? `[${addr.hostname}]:${addr.port}`
      : `${addr.hostname}:${addr.port}`;
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
          conn.setNoDelay(true);
          this.#conns.add(conn);
          const remote = `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`;
          establish(this.id, conn, remote).finally(() => this.#conns.delete(conn));
        }
      } catch (error) {
        if (!(error instanceof Deno.errors.BadResource)) {
          log.error("Listener {id} stopped accepting: {error}", { id: this.id, error: String(error) });
        }
      }
    })();
  }

  /** Stops accepting connections (open connections are closed by the server). */
  async close(): Promise<void> {
    try {
      this.#listener?.close();
    } catch {
      // already closed
    }
    await this.#accepting;
  }
}

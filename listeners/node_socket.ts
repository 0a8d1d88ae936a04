/**
 * Adapts a Node.js-style socket (`node:tls` / `node:net`) to the {@linkcode Connection} interface.
 * Used for mutual TLS, which `Deno.listenTls` cannot do (it neither asks for nor verifies client
 * certificates), while `node:tls` in Deno can.
 *
 * @module
 */

import type { Socket } from "node:net";
import type { Connection } from "../src/listener.ts";
import { ChunkQueue } from "./chunk_queue.ts";

/**
 * A {@linkcode Connection} over a Node.js socket: `read()` takes bytes from the chunks the socket
 * emitted (pausing the socket while more than `highWaterMark` bytes wait), `write()` resolves once
 * the socket has accepted the data (waiting for `drain` when its buffer is full).
 */
export class NodeSocketConnection implements Connection {
  readonly #socket: Socket;
  readonly #queue = new ChunkQueue();
  #error: Error | undefined;
  readonly #highWaterMark: number;

  /**
   * Wraps a socket.
   *
   * @param socket A connected socket.
   * @param highWaterMark Bytes that may wait unread before the socket is paused.
   */
  constructor(socket: Socket, highWaterMark = 256 * 1024) {
    this.#socket = socket;
    this.#highWaterMark = highWaterMark;
    socket.on("data", (chunk: Uint8Array) => {
      this.#queue.push(chunk);
      if (this.#queue.buffered > this.#highWaterMark) socket.pause();
    });
    socket.on("end", () => this.#queue.end());
    socket.on("close", () => this.#queue.end());
    socket.on("error", (error: Error) => {
      this.#error = error;
      this.#queue.fail(error);
    });
  }

  /**
   * Reads into `buffer`.
   *
   * @param buffer Where to put the bytes.
   * @returns The byte count, or null at end of stream.
   */
  async read(buffer: Uint8Array): Promise<number | null> {
    const n = await this.#queue.read(buffer);
    if (this.#queue.buffered <= this.#highWaterMark && this.#socket.isPaused()) this.#socket.resume();
    return n;
  }

  /**
   * Writes all of `data` (copied, so the caller may reuse its buffer).
   *
   * @param data The bytes.
   * @returns The byte count.
   */
  write(data: Uint8Array): Promise<number> {
    if (this.#error) return Promise.reject(this.#error);
    if (this.#socket.destroyed) return Promise.reject(new Error("The connection is closed"));
    const length = data.length;
    const ok = this.#socket.write(data.slice());
    if (ok) return Promise.resolve(length);
    return new Promise((resolve, reject) => {
      const done = () => {
        this.#socket.off("drain", done);
        this.#socket.off("close", done);
        if (this.#socket.destroyed && this.#socket.writableLength > 0) {
          reject(new Error("The connection is closed"));
        } else resolve(length);
      };
      this.#socket.on("drain", done);
      this.#socket.on("close", done);
    });
  }

  /** Closes the socket at once. */
  close(): void {
    this.#queue.end();
    this.#socket.destroy();
  }

  /** Sends end of stream (TLS close_notify, then FIN) after the buffered data. */
  closeWrite(): Promise<void> {
    return new Promise((resolve) => this.#socket.end(resolve));
  }
}

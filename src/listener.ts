/**
 * The contract between the broker and its listeners: a {@linkcode Listener} accepts connections and
 * hands each, as a {@linkcode Connection}, to the server's {@linkcode EstablishFn}. Users implement
 * it to bring their own transport; the built-in listeners live in `listeners/`.
 *
 * @module
 */

/** A byte stream to a client: what listeners hand to the server. `Deno.Conn` satisfies it. */
export interface Connection {
  /** Reads into `buffer`; resolves to the byte count, or null at end of stream. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes some of `data`; resolves to the byte count written. */
  write(data: Uint8Array): Promise<number>;
  /** Closes the stream. */
  close(): void;
  /** Closes the sending side only (TCP half-close), if the stream can. */
  closeWrite?(): Promise<void>;
}

/** Hands an accepted connection to the server; resolves when the connection has ended. */
export type EstablishFn = (listenerId: string, conn: Connection, remoteAddress: string) => Promise<void>;

/** A source of client connections (TCP, TLS, WebSocket, Unix socket, ...). */
export interface Listener {
  /** A unique id, reported with each client. */
  readonly id: string;
  /** The address it listens on (after `init`, the real bound address). */
  readonly address: string;
  /** The protocol name, for example `"tcp"`. */
  readonly protocol: string;
  /** Binds the address; errors (address in use, bad certificate) surface here. */
  init(): void | Promise<void>;
  /** Starts accepting connections, handing each to `establish`. Returns at once. */
  serve(establish: EstablishFn): void;
  /** Stops accepting connections and releases the address. */
  close(): Promise<void>;
  /** Whether clients without a username may connect (absent: yes); the server refuses others with 0x87. */
  readonly allowAnonymous?: boolean;
  /**
   * The username a connection proved with a verified TLS client certificate, if the listener maps
   * certificates to usernames; the server uses it in place of the CONNECT's username.
   */
  usernameFor?(conn: Connection): string | undefined;
}

/** Options shared by network listeners. */
export interface ListenerConfig {
  /** The listener id. */
  id: string;
  /** `host:port`, `:port` (all interfaces) or a path, depending on the listener. */
  address: string;
}

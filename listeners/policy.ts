/**
 * Hooks that apply per-listener policies: refusing anonymous clients on listeners that do not
 * allow them, and using a verified TLS client certificate's Common Name as the username.
 *
 * The server knows listeners only by id, so these hooks look the listener up in
 * `server.listeners` by `client.net.listener` and ask it (see {@linkcode ListenerPolicy}).
 * {@linkcode listenerPolicyHooks} returns the hooks a server's listeners need; the CLI and the
 * config loader add them automatically.
 *
 * @module
 */

import type { Hook } from "../src/hooks.ts";
import type { Client } from "../src/client.ts";
import type { Packet } from "../src/packets/types.ts";
import { PacketType } from "../src/packets/types.ts";
import { MqttError, ReasonCode } from "../src/packets/reason_codes.ts";
import type { Listener } from "./listener.ts";
import type { ListenerPolicy } from "./net.ts";

/** Anything with a map of listeners by id, such as a `Server`. */
export interface HasListeners {
  /** Listeners by id. */
  readonly listeners: ReadonlyMap<string, Listener>;
}

function policyOf(owner: HasListeners, client: Client): Partial<ListenerPolicy> | undefined {
  return owner.listeners.get(client.net.listener) as Partial<ListenerPolicy> | undefined;
}

/**
 * Refuses clients without a username (CONNACK 0x87 Not Authorized, v3: 5) on listeners whose
 * `allowAnonymous` is false. It runs after the auth hooks, so it also applies with `AllowHook`.
 *
 * @example Refusing anonymous clients on one listener
 * ```ts
 * import { AllowHook, ListenerAuthHook, Server, TCP } from "../mod.ts";
 * const server = new Server();
 * await server.addHook(new AllowHook());
 * await server.addHook(new ListenerAuthHook(server));
 * await server.addListener(new TCP({ id: "t1", address: "127.0.0.1:0", allowAnonymous: false }));
 * await server.close();
 * ```
 */
export class ListenerAuthHook implements Hook {
  /** The hook id. */
  readonly id = "listener-auth";
  readonly #owner: HasListeners;

  /**
   * Creates the hook.
   *
   * @param owner The server (or anything with its `listeners` map).
   */
  constructor(owner: HasListeners) {
    this.#owner = owner;
  }

  /**
   * Refuses an anonymous client where its listener does not allow them.
   *
   * @param client The connecting client.
   * @throws {MqttError} With 0x87 Not Authorized.
   */
  onConnect(client: Client): void {
    if (client.properties.username !== "") return;
    if (policyOf(this.#owner, client)?.allowAnonymous === false) {
      throw new MqttError(
        ReasonCode.NotAuthorized,
        `Listener ${client.net.listener} does not allow anonymous clients`,
      );
    }
  }
}

/**
 * Sets the username of clients that presented a verified TLS client certificate to the
 * certificate's Common Name, before authentication (on listeners with `clientCertAsUsername`).
 * A username in CONNECT is replaced.
 *
 * @example With a mutual-TLS listener
 * ```ts
 * import { ClientCertUsernameHook, Server } from "../mod.ts";
 * const server = new Server();
 * await server.addHook(new ClientCertUsernameHook(server));
 * await server.close();
 * ```
 */
export class ClientCertUsernameHook implements Hook {
  /** The hook id. */
  readonly id = "client-cert-username";
  readonly #owner: HasListeners;

  /**
   * Creates the hook.
   *
   * @param owner The server (or anything with its `listeners` map).
   */
  constructor(owner: HasListeners) {
    this.#owner = owner;
  }

  /**
   * Replaces a CONNECT's username with the certificate's Common Name.
   *
   * @param client The client.
   * @param packet The packet read.
   * @returns The packet (a CONNECT is changed in place).
   */
  onPacketRead(client: Client, packet: Packet): Packet {
    if (packet.fixedHeader.type !== PacketType.Connect || !client.net.conn) return packet;
    const name = policyOf(this.#owner, client)?.usernameFor?.(client.net.conn);
    if (name !== undefined && packet.connect) {
      packet.connect.username = name;
      client.properties.username = name;
    }
    return packet;
  }
}

/**
 * The policy hooks a server's listeners need: {@linkcode ListenerAuthHook} when a listener refuses
 * anonymous clients, {@linkcode ClientCertUsernameHook} when one maps certificates to usernames.
 * Call it after adding the listeners.
 *
 * @param owner The server.
 * @returns The hooks to add (possibly none).
 *
 * @example No hooks for plain listeners
 * ```ts
 * import { listenerPolicyHooks } from "./policy.ts";
 * console.log(listenerPolicyHooks({ listeners: new Map() }).length); // 0
 * ```
 */
export function listenerPolicyHooks(owner: HasListeners): Hook[] {
  const hooks: Hook[] = [];
  const policies = [...owner.listeners.values()] as Partial<ListenerPolicy>[];
  if (policies.some((p) => p.allowAnonymous === false)) hooks.push(new ListenerAuthHook(owner));
  if (policies.some((p) => p.certUsernames === true)) hooks.push(new ClientCertUsernameHook(owner));
  return hooks;
}

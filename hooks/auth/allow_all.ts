/**
 * A hook that allows every connection and every topic. For development only.
 *
 * @module
 */

import type { Hook } from "../../src/hooks.ts";

/**
 * Allows every client to connect, publish and subscribe.
 *
 * @example Allowing everyone
 * ```ts
 * import assert from "node:assert/strict";
 * import { AllowHook } from "./allow_all.ts";
 *
 * const hook = new AllowHook();
 * assert.equal(hook.onConnectAuthenticate(), true);
 * assert.equal(hook.onACLCheck(), true);
 * ```
 */
export class AllowHook implements Hook {
  /** The hook id. */
  readonly id: string = "allow-all-auth";

  /**
   * Allows the connection.
   *
   * @returns Always true.
   */
  onConnectAuthenticate(): boolean {
    return true;
  }

  /**
   * Allows the access.
   *
   * @returns Always true.
   */
  onACLCheck(): boolean {
    return true;
  }
}

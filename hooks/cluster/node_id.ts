/**
 * The default id of a cluster node.
 *
 * @module
 */

import type { ClusterBus } from "./bus.ts";

/**
 * A unique, stable-for-the-process node id: host name, process id and a random suffix.
 *
 * @returns The id.
 */
export function defaultNodeId(): string {
  let host = "node";
  try {
    host = Deno.hostname();
  } catch {
    // no permission: keep "node"
  }
  const random = crypto.getRandomValues(new Uint8Array(3));
  return `${host}-${Deno.pid}-${[...random].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * Waits (up to four leases) until a crashed previous life of this node id, still registered, has been
 * claimed by a survivor (its wills sent, its sessions adopted): a node restarted under the same id that
 * joined as soon as the old lease ran out would leave them to nobody. Returns at once when the id is
 * not registered or no other node is alive to claim it.
 *
 * @param bus The engine, connected.
 * @param nodeId This node's id.
 * @param leaseMs The lease.
 */
export async function previousLifeClaimed(bus: ClusterBus, nodeId: string, leaseMs: number): Promise<void> {
  for (const until = Date.now() + 4 * leaseMs; Date.now() < until;) {
    const members = await bus.members();
    if (!members.some((member) => member.id === nodeId)) return;
    if (!members.some((member) => member.id !== nodeId && member.lease !== undefined)) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

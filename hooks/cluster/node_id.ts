/**
 * The default id of a cluster node.
 *
 * @module
 */

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

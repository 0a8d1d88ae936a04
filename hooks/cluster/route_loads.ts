/**
 * {@linkcode RouteLoads}: how a node keeps the other nodes' routes in its {@linkcode RouteTable}: their
 * announcements applied in sequence, and a node's routes reloaded from the engine when one is missed
 * (a gap in sequence, a node not loaded yet), the announcements that arrive meanwhile applied after.
 *
 * @module
 */

import { logger } from "../../src/logger.ts";
import type { ClusterBus, RouteChange } from "./bus.ts";
import type { RouteTable } from "./route_table.ts";
import { routeAnnouncementDelay } from "./test_fault.ts";

const log = logger("cluster");

/** Other nodes' routes, as announced and loaded. */
export class RouteLoads {
  readonly #bus: ClusterBus;
  readonly #routes: RouteTable;
  readonly #nodeId: string;
  /** Route announcements held while a node's routes load, and the load. */
  readonly #loads = new Map<string, { held: RouteChange[]; done: Promise<void> }>();
  /** Tests only: a node slow to apply route announcements (see `routeAnnouncementDelay`). */
  readonly #delay = routeAnnouncementDelay();

  /**
   * Keeps a node's table of the other nodes' routes.
   *
   * @param bus The engine.
   * @param routes The table.
   * @param nodeId This node (its own announcements are not applied).
   */
  constructor(bus: ClusterBus, routes: RouteTable, nodeId: string) {
    this.#bus = bus;
    this.#routes = routes;
    this.#nodeId = nodeId;
  }

  /**
   * A route change announced by a node.
   *
   * @param node The node.
   * @param change The change.
   */
  announced(node: string, change: RouteChange): void {
    if (this.#delay > 0) setTimeout(() => this.#apply(node, change), this.#delay);
    else this.#apply(node, change);
  }

  #apply(node: string, change: RouteChange): void {
    if (node === this.#nodeId) return;
    const load = this.#loads.get(node);
    if (load) {
      load.held.push(change);
      return;
    }
    const seq = this.#routes.seq(node);
    if (seq !== undefined && change.seq <= seq) return;
    if (seq === undefined || change.seq !== seq + 1) {
      this.load(node, change);
      return;
    }
    this.#routes.apply(node, change.seq, change.filter, change.count);
  }

  /**
   * Reloads a node's routes; announcements arriving meanwhile are applied after, in order.
   *
   * @param node The node.
   * @param first An announcement to apply after the load.
   * @returns When the routes are in the table (or the load failed: logged at debug), announcements held
   *   meanwhile applied; the load in progress when there is one.
   */
  load(node: string, first?: RouteChange): Promise<void> {
    const loading = this.#loads.get(node);
    if (loading) {
      if (first) loading.held.push(first);
      return loading.done;
    }
    const load = { held: first ? [first] : [], done: Promise.resolve() };
    this.#loads.set(node, load);
    return load.done = (async () => {
      try {
        const stored = await this.#bus.routes(node);
        this.#routes.replace(node, stored.seq, stored.filters);
      } catch (error) {
        log.debug("Could not load the routes of {node}: {error}", { node, error: String(error) });
      } finally {
        this.#loads.delete(node);
      }
      for (const change of load.held) this.#apply(node, change);
    })();
  }
}

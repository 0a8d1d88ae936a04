/**
 * One timer for the keep-alive checks of every client in the process, instead of one timer per
 * client: idle connections are many, and a timer each costs memory and timer-heap work.
 *
 * @module
 */

/** What the wheel checks: a client, as far as its keep-alive goes. */
export interface KeepAliveMember {
  /**
   * Checks whether the member has been silent too long (and acts on it).
   *
   * @param now The current time (ms since epoch).
   */
  keepAliveTick(now: number): void;
}

/** How often the members are checked: the keep-alive deadline is met within this many ms. */
const TICK_MS = 250;

/**
 * A set of members checked every {@linkcode TICK_MS} ms by one interval timer, which runs only
 * while the set is not empty.
 */
export class KeepAliveWheel {
  readonly #members = new Set<KeepAliveMember>();
  #timer: ReturnType<typeof setInterval> | undefined;
  readonly #tick = (): void => {
    const now = Date.now();
    for (const member of this.#members) member.keepAliveTick(now);
  };

  /**
   * Starts checking a member.
   *
   * @param member The member.
   */
  add(member: KeepAliveMember): void {
    this.#members.add(member);
    this.#timer ??= setInterval(this.#tick, TICK_MS);
  }

  /**
   * Stops checking a member.
   *
   * @param member The member.
   */
  delete(member: KeepAliveMember): void {
    if (!this.#members.delete(member) || this.#members.size > 0) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** The process's wheel. */
export const keepAliveWheel: KeepAliveWheel = new KeepAliveWheel();

/**
 * Debian's Chromium for browser tests, driven by playwright-core. Without it the browser tests are
 * skipped locally; under `CI` they fail instead (`.ci/run` installs it).
 *
 * @module
 */

import { type BrowserContext, chromium } from "../playwright.ts";

/** Where Debian installs Chromium. */
export const CHROMIUM = "/usr/bin/chromium";

/** Whether Chromium is installed. */
export const hasChromium: boolean = (() => {
  try {
    return Deno.statSync(CHROMIUM).isFile;
  } catch {
    return false;
  }
})();

/** Skip browser tests: Chromium is missing and this is not CI (where a missing browser must fail). */
export const skipBrowserTests: boolean = !hasChromium && Deno.env.get("CI") === undefined;

/** Fails clearly when Chromium is missing (which, when a browser test runs, means under CI). */
export function assertChromium(): void {
  if (!hasChromium) {
    throw new Error(`CI is set but ${CHROMIUM} is missing: install it with apt-get install -y chromium`);
  }
}

/**
 * Starts headless Chromium with a fresh profile in `profile`, with the flags this offline machine
 * needs (no background networking, updates or sync).
 *
 * @param profile An empty directory for the browser profile.
 * @param viewport The page size.
 * @returns The browser context; close it at the end.
 */
export function launchChromium(
  profile: string,
  viewport?: { width: number; height: number },
): Promise<BrowserContext> {
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

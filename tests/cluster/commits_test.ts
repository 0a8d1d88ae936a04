import assert from "node:assert/strict";
import type { Batch, ClusterBus } from "../../hooks/cluster/bus.ts";
import { Commits, PIPELINE_BYTES } from "../../hooks/cluster/commits.ts";
import { EngineOutage } from "../../hooks/cluster/health.ts";

/** A bus whose commits resolve or fail when the test says, recording what was sent in order. */
class FakeBus {
  readonly sent: string[] = [];
  readonly applied: string[] = [];
  readonly #open: { name: string; resolve: () => void; reject: (error: Error) => void }[] = [];
  fail = false;

  commit(_node: string, batch: Batch): Promise<void> {
    const name = nameOf(batch);
    this.sent.push(name);
    if (this.fail) return Promise.reject(new Error("connection lost"));
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#open.push({ name, resolve: () => (this.applied.push(name), resolve()), reject });
    return promise;
  }

  /** Settles the oldest commit in flight; a lost connection fails every commit in flight. */
  answer(error?: Error): void {
    if (error) {
      for (const open of this.#open.splice(0)) open.reject(error);
      return;
    }
    this.#open.shift()!.resolve();
  }

  get open(): number {
    return this.#open.length;
  }
}

function nameOf(batch: Batch): string {
  const parts = [...batch.routes.map((r) => r.filter)];
  for (const [node, bytes] of batch.forwards) parts.push(`${node}:${bytes.length}`);
  return parts.join(",");
}

function setup() {
  const bus = new FakeBus();
  const committed: Batch[] = [];
  let stopped = false;
  const commits = new Commits(bus as unknown as ClusterBus, "n1", new EngineOutage("fake", () => stopped), {
    stopped: () => stopped,
    committed: (batch) => committed.push(batch),
  });
  return { bus, commits, committed, stop: () => stopped = true };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

function route(commits: Commits, filter: string): void {
  commits.batch().routes.push({ filter, count: 1, seq: 1 });
}

function forward(commits: Commits, node: string, bytes: number): void {
  const writer = commits.writer(node, bytes);
  writer.ensure(bytes);
  writer.length += bytes;
}

Deno.test("Commits: group commit behind the one in flight, a full batch pipelined at once, waiters in order", async () => {
  const { bus, commits, committed } = setup();
  route(commits, "a");
  const first = commits.tail;
  await tick();
  assert.deepEqual(bus.sent, ["a"]);
  route(commits, "b");
  route(commits, "c");
  const second = commits.tail;
  await tick();
  assert.deepEqual(bus.sent, ["a"], "small writes wait for the commit in flight");
  // Forwards that fill a batch go at once, in flight or not.
  forward(commits, "n2", PIPELINE_BYTES - 100);
  forward(commits, "n2", 200);
  assert.deepEqual(bus.sent, ["a", `b,c,n2:${PIPELINE_BYTES - 100}`]);
  const third = commits.tail;
  let done = 0;
  first.then(() => done++);
  second.then(() => done++);
  third.then(() => done++);
  bus.answer(); // a
  await tick();
  assert.equal(done, 1);
  assert.equal(bus.sent.length, 2, "a small batch waits until nothing is in flight");
  bus.answer(); // b,c,n2
  await tick();
  assert.equal(done, 2);
  assert.equal(bus.sent.length, 3);
  bus.answer(); // n2:200
  await tick();
  assert.equal(done, 3);
  assert.deepEqual(committed.map(nameOf), ["a", `b,c,n2:${PIPELINE_BYTES - 100}`, "n2:200"]);
});

async function until(condition: () => boolean): Promise<void> {
  const end = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > end) throw new Error("Timed out");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

Deno.test("Commits: after a failure nothing more is sent until the failed commits are retried, in order", async () => {
  const { bus, commits, committed, stop } = setup();
  for (let i = 0; i < 3; i++) forward(commits, "n2", PIPELINE_BYTES - 10); // two batches go at once
  await tick(); // and the third (full) one at the end of the turn
  assert.equal(bus.open, 3);
  bus.answer(new Error("connection lost")); // all three fail
  await tick();
  forward(commits, "n2", PIPELINE_BYTES - 10);
  forward(commits, "n2", PIPELINE_BYTES - 10); // full, but the pipeline is broken: it gathers
  route(commits, "r");
  await tick();
  assert.equal(bus.sent.length, 3, "nothing new is sent while failed commits wait for their retry");
  for (let retried = 0; retried < 3; retried++) {
    await until(() => bus.open === 1);
    assert.equal(bus.sent.length, 4 + retried, "one retry at a time, in order");
    bus.answer();
  }
  await until(() => bus.open === 1);
  bus.answer(); // then what gathered meanwhile
  await commits.tail;
  assert.deepEqual(bus.sent.slice(3, 6), bus.sent.slice(0, 3), "retried in the order first sent");
  assert.deepEqual(bus.applied, [...bus.sent.slice(0, 3), bus.sent[6]]);
  assert.equal(committed.length, 4);
  stop();
});

Deno.test("Commits: a batch with session writes is not split, waits for the store's earlier writes, and nothing overtakes it", async () => {
  const { bus, commits } = setup();
  route(commits, "a");
  await tick();
  assert.deepEqual(bus.sent, ["a"]);
  const store = Promise.withResolvers<void>();
  let done: Promise<void> | undefined;
  commits.unsplit(() => {
    forward(commits, "n2", PIPELINE_BYTES - 100);
    forward(commits, "n2", 200); // would send the batch at once outside `unsplit`
    done = commits.withSessions([{ clientId: "s", epoch: 1, ops: [["S", "c", "{}"]] }], store.promise);
  });
  assert.deepEqual(bus.sent, ["a"], "one batch, kept together");
  bus.answer();
  await tick();
  assert.deepEqual(bus.sent, ["a"], "it waits for the session store");
  forward(commits, "n3", PIPELINE_BYTES); // a full batch that would be pipelined at once
  await tick();
  assert.deepEqual(bus.sent, ["a"]);
  store.resolve();
  await tick();
  assert.deepEqual(bus.sent, ["a", `n2:${PIPELINE_BYTES + 100}`], "then it goes, alone");
  bus.answer();
  await done;
  await tick();
  assert.deepEqual(
    bus.sent,
    ["a", `n2:${PIPELINE_BYTES + 100}`, `n3:${PIPELINE_BYTES}`],
    "the next one after it",
  );
  bus.answer();
  await commits.tail;
});

// The part of the Web Locks API the SDK uses (exclusive locks, `ifAvailable`, `signal`), for
// several "tabs" in one test process: Node 20 has BroadcastChannel but no `navigator.locks`.

interface Waiter {
  grant: () => void;
}

export function fakeLocks(): LockManager {
  const held = new Set<string>();
  const queues = new Map<string, Waiter[]>();
  const acquire = (name: string, signal: AbortSignal | undefined): Promise<void> => {
    if (!held.has(name)) {
      held.add(name);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { grant: resolve };
      const queue = queues.get(name) ?? [];
      queue.push(waiter);
      queues.set(name, queue);
      signal?.addEventListener("abort", () => {
        const at = queue.indexOf(waiter);
        if (at < 0) return; // granted already: an abort no longer matters
        queue.splice(at, 1);
        reject(new DOMException("the request was aborted", "AbortError"));
      });
    });
  };
  const release = (name: string): void => {
    const next = queues.get(name)?.shift();
    if (next === undefined) held.delete(name);
    else next.grant(); // the lock passes straight to the next waiter
  };
  const request = async (name: string, ...args: unknown[]): Promise<unknown> => {
    const callback = args.at(-1) as (lock: Lock | null) => unknown;
    const options = (args.length > 1 ? args[0] : {}) as LockOptions;
    if (options.ifAvailable && held.has(name)) return callback(null);
    if (options.signal?.aborted) throw new DOMException("the request was aborted", "AbortError");
    await acquire(name, options.signal);
    try {
      return await callback({ name, mode: "exclusive" });
    } finally {
      release(name);
    }
  };
  return { request } as unknown as LockManager;
}

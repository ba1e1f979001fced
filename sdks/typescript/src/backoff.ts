/**
 * Exponential backoff with full jitter: the n-th wait is uniform in `[0, min(cap, base * 2^n)]`,
 * so clients that failed together spread out instead of retrying in lock-step. `random` is
 * injected so tests are deterministic.
 */
export class Backoff {
  attempts = 0;

  constructor(
    readonly baseMs = 200,
    readonly capMs = 30_000,
    private readonly random: () => number = Math.random,
  ) {
    if (!(baseMs > 0 && capMs >= baseMs)) throw new RangeError(`need 0 < base <= cap, got ${baseMs} and ${capMs}`);
  }

  /** The upper bound of the next wait. */
  ceiling(): number {
    return Math.min(this.capMs, this.baseMs * 2 ** Math.min(this.attempts, 62));
  }

  /** The next wait in milliseconds; counts one attempt. */
  next(): number {
    const delay = this.random() * this.ceiling();
    this.attempts += 1;
    return delay;
  }

  reset(): void {
    this.attempts = 0;
  }
}

/**
 * A wait that ends early when any of `signals` aborts (a stop, a wake-up), so no wait outlives
 * its cause. Listening to each signal costs less than joining them with `AbortSignal.any`, which
 * makes a signal and registers it with each source: the sync loop waits once per write.
 */
export function pause(ms: number, ...signals: AbortSignal[]): Promise<void> {
  return new Promise((resolve) => {
    if (signals.some((signal) => signal.aborted)) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      for (const signal of signals) signal.removeEventListener("abort", done);
      resolve();
    }
    for (const signal of signals) signal.addEventListener("abort", done);
  });
}

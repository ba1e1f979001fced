/**
 * Several tabs of one app on one database (docs/adr/0034-shared-tabs.md). Every tab reads and
 * writes the shared storage itself, one operation at a time across tabs (a Web Lock), and tells
 * the others what changed (a BroadcastChannel); one tab at a time, the leader, syncs. When the
 * leader's tab closes its lock is released and a waiting tab takes over.
 */

/** How a `LocalStore` and a `Client` share one database with the app's other tabs. */
export interface Tabs {
  /** Run `fn` while no other tab runs one on this database (a cross-tab mutex). */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** Tell the other tabs what changed in the storage. */
  publish(notice: TabNotice): void;
  /** Call `listener` when another tab publishes; returns the function that stops it. */
  subscribe(listener: (notice: TabNotice) => void): () => void;
  /** Call `onLeader` once, when this tab becomes the one that syncs (until `close`). */
  lead(onLeader: () => void): void;
  /** Give up leading (the next waiting tab leads) and stop listening. */
  close(): void;
}

/** The part of `BroadcastChannel` used here (Node's and the browser's both fit). */
export interface Channel {
  postMessage(message: unknown): void;
  addEventListener(type: "message", listener: (event: MessageEvent) => void): void;
  removeEventListener(type: "message", listener: (event: MessageEvent) => void): void;
  close(): void;
}

/** What another tab changed: the local view of `collections`, and the signed-in session when `auth`. */
export interface TabNotice {
  readonly collections: readonly string[];
  readonly auth: boolean;
}

function isNotice(value: unknown): value is TabNotice {
  if (typeof value !== "object" || value === null) return false;
  const notice = value as TabNotice;
  return Array.isArray(notice.collections) && notice.collections.every((c) => typeof c === "string") && typeof notice.auth === "boolean";
}

/** `Tabs` over Web Locks and a BroadcastChannel, both named after the database. */
export class BrowserTabs implements Tabs {
  private readonly closing = new AbortController();
  private resign: (() => void) | null = null;

  constructor(
    private readonly name: string,
    private readonly locks: LockManager,
    private readonly channel: Channel,
  ) {}

  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    // The DOM typings say Promise<Promise<T>>; a lock's promise resolves with the callback's result.
    return this.locks.request(`breakwater:${this.name}:store`, () => fn()) as unknown as Promise<T>;
  }

  publish(notice: TabNotice): void {
    if (!this.closing.signal.aborted) this.channel.postMessage({ collections: [...notice.collections], auth: notice.auth });
  }

  subscribe(listener: (notice: TabNotice) => void): () => void {
    const onMessage = (event: MessageEvent): void => {
      if (isNotice(event.data)) listener(event.data);
    };
    this.channel.addEventListener("message", onMessage);
    return () => this.channel.removeEventListener("message", onMessage);
  }

  lead(onLeader: () => void): void {
    this.locks
      .request(`breakwater:${this.name}:leader`, { signal: this.closing.signal }, () => {
        if (this.closing.signal.aborted) return undefined;
        onLeader();
        return new Promise<void>((release) => (this.resign = release));
      })
      .catch((error: unknown) => {
        if (!this.closing.signal.aborted) throw error; // a wait cut short by close is expected
      });
  }

  close(): void {
    this.closing.abort();
    this.resign?.();
    this.channel.close();
  }
}

/** Status and events for the UI: what the sync is doing, and what happened to each write. */

import type { OutboxEntry, Rejection } from "./outbox.js";

export interface Status {
  /** `online`: synced and following; `syncing`: pushing or pulling; `offline`: no endpoint answers. */
  readonly state: "online" | "offline" | "syncing";
  /** Entries in the outbox (not yet acknowledged and stable). */
  readonly pending: number;
  readonly endpoint: string | null;
  /** The realtime transport in use (`null`: none connected). */
  readonly transport: "websocket" | "sse" | "long_poll" | null;
  readonly lastError: string | null;
}

export interface ClientEvents {
  status: Status;
  /** The node acknowledged these entries (`duplicate`: it had them already). */
  acknowledged: { entries: readonly OutboxEntry[]; duplicates: ReadonlySet<string>; endpoint: string };
  /** The node refused a mutation: it left the outbox and its effect was rolled back. */
  rejected: Rejection;
  /** The local view of these collections changed (local write, pull, rejection). */
  changed: ReadonlySet<string>;
  /** Signed in (`uid`, `anonymous`) or signed out (`null`). */
  auth: { uid: string; anonymous: boolean } | null;
  /** A pulled page was applied; `hasMore` until the device has caught up (first-sync progress). */
  progress: { changes: number; pages: number; hasMore: boolean };
}

type Listener<T> = (value: T) => void;

/** A small typed event emitter: `on` returns the function that removes the listener. */
export class Emitter<Events extends object> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): () => void {
    const set = this.listeners.get(event) ?? new Set();
    set.add(listener as Listener<never>);
    this.listeners.set(event, set);
    return () => set.delete(listener as Listener<never>);
  }

  /** Call every listener; one that throws is reported as an uncaught error, and the SDK goes on. */
  emit<K extends keyof Events>(event: K, value: Events[K]): void {
    for (const listener of this.listeners.get(event) ?? []) {
      try {
        (listener as Listener<Events[K]>)(value);
      } catch (error) {
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

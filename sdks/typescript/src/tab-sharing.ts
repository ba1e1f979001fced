/**
 * One client among the tabs that share its storage (docs/adr/0034-shared-tabs.md): this tab's
 * changes are announced to the others, theirs reach this tab's live queries and session, and
 * the sync loop runs only while this tab leads.
 */

import type { Auth } from "./auth.js";
import type { ClientEvents, Emitter } from "./events.js";
import type { LocalStore } from "./local-store.js";
import type { Tabs } from "./storage/tabs.js";
import type { SyncLoop } from "./sync.js";

function reportUncaught(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}

/** This tab's membership: `leading` once it syncs; `leave` stops relaying (the storage's close ends leading). */
export interface TabMembership {
  readonly leading: boolean;
  leave(): void;
}

/** Join the other tabs sharing `store`'s storage. */
export function joinTabs(tabs: Tabs, store: LocalStore, events: Emitter<ClientEvents>, auth: Auth, loop: SyncLoop | null): TabMembership {
  let relaying = false; // a notice from another tab is not announced back
  const relay = (emit: () => void): void => {
    relaying = true;
    try {
      emit();
    } finally {
      relaying = false;
    }
  };
  const offChanged = events.on("changed", (collections) => {
    if (!relaying) tabs.publish({ collections: [...collections], auth: false });
  });
  const offAuth = events.on("auth", () => {
    if (!relaying) tabs.publish({ collections: [], auth: true });
  });
  const offNotices = tabs.subscribe((notice) => {
    void (async () => {
      await store.refresh();
      if (notice.auth) await auth.load();
      relay(() => {
        if (notice.collections.length > 0) events.emit("changed", new Set(notice.collections));
        if (notice.auth) events.emit("auth", auth.session === null ? null : { uid: auth.session.uid, anonymous: auth.session.anonymous });
      });
      if (notice.auth) loop?.syncNow(); // writes refused for want of a token can go now
      else loop?.wake(); // another tab's write: the leader pushes it now
    })().catch(reportUncaught);
  });
  const membership = {
    leading: false,
    leave: () => {
      offChanged();
      offAuth();
      offNotices();
    },
  };
  if (loop !== null) {
    tabs.lead(() => {
      membership.leading = true;
      // The outbox and cursor as the previous leader left them, before the loop reads them.
      store.refresh().then(() => loop.start(), reportUncaught);
    });
  }
  return membership;
}

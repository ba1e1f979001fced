/**
 * What the platform says of its network: in a browser (or a worker) `navigator.onLine` and the
 * `online` / `offline` events. Only `false` is reliable (no network interface: every request
 * would fail, and a test's emulated offline lets some through), so while it is `false` the sync
 * loop sends nothing and keeps no realtime connection, and it syncs at once when it turns `true`.
 */

import type { Fetch } from "./node-api.js";

export interface NetworkState {
  /** `false` when the platform knows it has no network. */
  readonly online: boolean;
  /** Call `listener` with each change; returns the function that stops it. */
  subscribe(listener: (online: boolean) => void): () => void;
}

/** Where the platform says nothing (Node, React Native): assume a network, let requests tell. */
export const ASSUMED_ONLINE: NetworkState = { online: true, subscribe: () => () => undefined };

interface OnlineEvents {
  navigator?: { onLine?: unknown };
  addEventListener?: (type: string, listener: () => void) => void;
  removeEventListener?: (type: string, listener: () => void) => void;
}

/** The platform's network state: `navigator.onLine` and its events where they exist, else `ASSUMED_ONLINE`. */
export function platformNetwork(scope: OnlineEvents = globalThis as OnlineEvents): NetworkState {
  const { navigator, addEventListener, removeEventListener } = scope;
  if (typeof navigator?.onLine !== "boolean" || addEventListener === undefined || removeEventListener === undefined) return ASSUMED_ONLINE;
  return {
    get online() {
      return navigator.onLine !== false;
    },
    subscribe(listener) {
      const online = (): void => listener(true);
      const offline = (): void => listener(false);
      addEventListener.call(scope, "online", online);
      addEventListener.call(scope, "offline", offline);
      return () => {
        removeEventListener.call(scope, "online", online);
        removeEventListener.call(scope, "offline", offline);
      };
    },
  };
}

/** `fetchFn`, except that while `network` says offline a request fails at once, as with no network. */
export function whileOnline(fetchFn: Fetch, network: NetworkState): Fetch {
  return (input, init) => (network.online ? fetchFn(input, init) : Promise.reject(new TypeError("the platform is offline")));
}

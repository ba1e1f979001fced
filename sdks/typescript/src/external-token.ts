/**
 * Credentials from an identity provider the app already uses (Auth0, Keycloak, Firebase Auth,
 * Supabase Auth), accepted by a node with `[auth.external.NAME]` (docs/security.md).
 *
 *     Client.open({ ..., headers: externalToken((force) => firebaseUser.getIdToken(force)) })
 *
 * `getToken(false)` is asked before every request (the provider's SDK caches the token), and
 * `getToken(true)` once after a 401; the request is retried when that gives another token.
 */

import type { HeadersProvider } from "./node-api.js";

export type TokenCallback = (forceRefresh: boolean) => string | null | Promise<string | null>;

export function externalToken(getToken: TokenCallback): HeadersProvider {
  const bearer = (token: string | null): Record<string, string> => (token ? { Authorization: `Bearer ${token}` } : {});
  return Object.assign(async () => bearer(await getToken(false)), {
    renew: async (used: Record<string, string>): Promise<boolean> => {
      const fresh = bearer(await getToken(true));
      return fresh["Authorization"] !== undefined && fresh["Authorization"] !== used["Authorization"];
    },
  });
}

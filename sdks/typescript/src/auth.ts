/**
 * Accounts and sign-in (docs/protocol.md#authentication): sign-up, sign-in (with a one-time
 * code when MFA is on), anonymous accounts, linking one to an email, TOTP enrolment, sign-out,
 * and refresh-token rotation.
 *
 * The session is kept in the device's storage, so a signed-in app stays signed in offline and
 * across restarts (its refresh token is a bearer secret: the storage must be the app's own).
 * `headers()` refreshes the access token shortly before it expires, and `renew()` after a 401;
 * refreshes run one at a time, because spending one refresh token twice makes the node revoke
 * the whole sign-in (reuse is taken as theft).
 */

import { BreakwaterError, EndpointUnavailable } from "./errors.js";
import type { LocalStore } from "./local-store.js";
import { NodeApi } from "./node-api.js";
import type { Fetch, HeadersProvider } from "./node-api.js";

/** Refresh this long before the access token expires (at most a quarter of its life), so requests never carry a stale one. */
const REFRESH_MARGIN_MS = 60_000;
const SESSION_KEY = "session";

export interface Session {
  readonly uid: string;
  readonly anonymous: boolean;
  readonly accessToken: string;
  readonly refreshToken: string;
  /** When the access token expires (milliseconds since the epoch, by this device's clock). */
  readonly expiresAt: number;
  /** When to refresh it: shortly before it expires. */
  readonly refreshAt: number;
}

/** Sign-in needs a one-time code (TOTP or a recovery code): call `signIn` again with it. */
export class MfaRequired extends BreakwaterError {}

/**
 * A started OpenID Connect sign-in: open `authorizeUrl` in the system browser; the provider
 * sends the user back to `redirectUri` with `code` and `state`; pass them to `signInWithOidc`.
 * `codeVerifier` (PKCE) stays on the device until then.
 */
export interface OidcStart {
  readonly provider: string;
  readonly authorizeUrl: string;
  readonly state: string;
  readonly codeVerifier: string;
  readonly redirectUri: string;
}

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A PKCE verifier (48 random bytes, 64 characters) and its S256 challenge (Web Crypto: Node and browsers). */
export async function pkcePair(): Promise<{ verifier: string; challenge: string }> {
  const verifier = base64url(globalThis.crypto.getRandomValues(new Uint8Array(48)));
  const digest = await globalThis.crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return { verifier, challenge: base64url(new Uint8Array(digest)) };
}

/** An account as the node shows it to its owner: never a hash or secret. */
export interface Account {
  uid: string;
  email: string | null;
  email_verified: boolean;
  anonymous: boolean;
  roles: string[];
  mfa: boolean;
  disabled: boolean;
  created_ms: number;
}

/** `GET /v1/auth/account/export`: the account and its documents per collection. */
export interface AccountExport {
  format: string;
  account: Account;
  collections: Record<string, { id: string; version: string; data: Record<string, unknown> }[]>;
}

interface SessionAnswer {
  access_token: string;
  refresh_token: string;
  expires_in: number;
  uid: string;
  anonymous: boolean;
}

export class Auth {
  private current: Session | null = null;
  private refreshing: Promise<boolean> | null = null;
  /** The headers provider the sync uses: the bearer token, renewed after a 401. */
  readonly provider: HeadersProvider;

  constructor(
    private readonly store: LocalStore,
    private readonly endpoints: readonly string[],
    private readonly fetchFn: Fetch,
    private readonly timeoutMs: number,
    private readonly onChange: (session: Session | null) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.provider = Object.assign(() => this.headers(), { renew: (used: Record<string, string>) => this.renew(used) });
  }

  /** Load the stored session (at open). */
  async load(): Promise<void> {
    this.current = (await this.store.getMeta<Session | null>(SESSION_KEY)) ?? null;
  }

  /** The signed-in session, or `null`. */
  get session(): Session | null {
    return this.current;
  }

  private async save(session: Session | null): Promise<void> {
    await this.store.putMeta(SESSION_KEY, session);
    this.current = session;
    this.onChange(session);
  }

  /** POST to the first endpoint that answers (a refusal is an answer: it is thrown). */
  private post(path: string, body: unknown, bearer = false): Promise<unknown> {
    return this.first(bearer, (api) => api.post(path, body));
  }

  /** `call` on the first endpoint that answers. */
  private async first(bearer: boolean, call: (api: NodeApi) => Promise<unknown>): Promise<unknown> {
    let last: unknown = new EndpointUnavailable("no endpoint");
    for (const url of this.endpoints) {
      const api = new NodeApi(url.replace(/\/+$/, ""), this.fetchFn, this.timeoutMs, bearer ? this.provider : undefined);
      try {
        return await call(api);
      } catch (error) {
        if (!(error instanceof EndpointUnavailable)) throw error;
        last = error;
      }
    }
    throw last;
  }

  private async start(path: string, body: unknown, bearer = false): Promise<Session> {
    return this.adopt((await this.post(path, body, bearer)) as SessionAnswer);
  }

  private async adopt(answer: SessionAnswer): Promise<Session> {
    const lifeMs = answer.expires_in * 1000;
    const expiresAt = this.now() + lifeMs;
    const session: Session = {
      uid: answer.uid,
      anonymous: answer.anonymous,
      accessToken: answer.access_token,
      refreshToken: answer.refresh_token,
      expiresAt,
      refreshAt: expiresAt - Math.min(REFRESH_MARGIN_MS, lifeMs / 4),
    };
    await this.save(session);
    return session;
  }

  signUp(email: string, password: string): Promise<Session> {
    return this.start("/v1/auth/signup", { email, password });
  }

  /** Sign in; throws `MfaRequired` when the account needs a one-time code and none (or a wrong one) was given. */
  async signIn(email: string, password: string, codes: { otp?: string; recoveryCode?: string } = {}): Promise<Session> {
    const body = { email, password, ...(codes.otp ? { otp: codes.otp } : {}), ...(codes.recoveryCode ? { recovery_code: codes.recoveryCode } : {}) };
    try {
      return await this.start("/v1/auth/login", body);
    } catch (error) {
      if (error instanceof BreakwaterError && error.problem["mfa_required"] === true) throw new MfaRequired(error.problem);
      throw error;
    }
  }

  /** A new anonymous account (link it to an email later to keep its documents). */
  signInAnonymously(): Promise<Session> {
    return this.start("/v1/auth/anonymous", undefined);
  }

  /** Give the signed-in anonymous account an email and password; the uid stays the same. */
  link(email: string, password: string): Promise<Session> {
    return this.start("/v1/auth/link", { email, password }, true);
  }

  /** Begin signing in with the OpenID Connect provider `provider` (a name of the node's `[auth.oidc.providers]`). */
  async startOidc(provider: string, redirectUri: string): Promise<OidcStart> {
    const { verifier, challenge } = await pkcePair();
    const path = `/v1/auth/oidc/${encodeURIComponent(provider)}/start`;
    const answer = (await this.post(path, { redirect_uri: redirectUri, code_challenge: challenge })) as { authorize_url: string; state: string };
    return { provider, authorizeUrl: answer.authorize_url, state: answer.state, codeVerifier: verifier, redirectUri };
  }

  /**
   * Finish an OpenID Connect sign-in with the `code` and `state` the provider sent to the redirect URI.
   * Throws `MfaRequired` when the account needs a one-time code; a 409 `account_exists` when the email
   * belongs to an account the provider may not join by itself (sign in there, then `linkOidc`).
   */
  async signInWithOidc(started: OidcStart, code: string, state: string, codes: { otp?: string } = {}): Promise<Session> {
    if (state !== started.state) throw new BreakwaterError({ type: "unauthorized", status: 401, detail: "the state is not this sign-in's" });
    const body = { code, state, code_verifier: started.codeVerifier, redirect_uri: started.redirectUri, ...(codes.otp ? { otp: codes.otp } : {}) };
    try {
      return await this.start(`/v1/auth/oidc/${encodeURIComponent(started.provider)}/callback`, body);
    } catch (error) {
      if (error instanceof BreakwaterError && error.problem["mfa_required"] === true) throw new MfaRequired(error.problem);
      throw error;
    }
  }

  /** Link the provider's user to the signed-in account; returns the account's linked identities. */
  async linkOidc(started: OidcStart, code: string, state: string): Promise<{ provider: string; sub: string }[]> {
    const body = { code, state, code_verifier: started.codeVerifier, redirect_uri: started.redirectUri };
    const answer = (await this.post(`/v1/auth/oidc/${encodeURIComponent(started.provider)}/link`, body, true)) as { identities: { provider: string; sub: string }[] };
    return answer.identities;
  }

  /** Start TOTP enrolment: a secret and its `otpauth://` URI, active once confirmed. */
  async enrollMfa(): Promise<{ secret: string; uri: string }> {
    return (await this.post("/v1/auth/mfa/enroll", undefined, true)) as { secret: string; uri: string };
  }

  /** Turn MFA on with a current code; returns the ten single-use recovery codes (shown once). */
  async confirmMfa(code: string): Promise<string[]> {
    const answer = (await this.post("/v1/auth/mfa/confirm", { code }, true)) as { recovery_codes: string[]; session: SessionAnswer };
    await this.adopt(answer.session);
    return answer.recovery_codes;
  }

  /** Ask the node to mail a password-reset link; it answers the same whether or not the address has an account. */
  async requestPasswordReset(email: string): Promise<void> {
    await this.post("/v1/auth/password/reset", { email });
  }

  /** Set a new password with the mailed token; every session of the account ends (sign in again). */
  async confirmPasswordReset(token: string, newPassword: string): Promise<void> {
    await this.post("/v1/auth/password/reset/confirm", { token, new_password: newPassword });
  }

  /** Mail the signed-in account's address a new verification link (sign-up mails the first). */
  async requestEmailVerification(): Promise<void> {
    await this.post("/v1/auth/email/verify", undefined, true);
  }

  /** Verify an address with the mailed token; the account as the node now has it. */
  async verifyEmail(token: string): Promise<Account> {
    return (await this.post("/v1/auth/email/verify/confirm", { token })) as Account;
  }

  /** Ask to move the account to `newEmail` (the password again): a link goes to the new address, a notice to the old one. */
  async changeEmail(newEmail: string, password: string): Promise<void> {
    await this.post("/v1/auth/email/change", { new_email: newEmail, password }, true);
  }

  /** Confirm a change of email with the token mailed to the new address. */
  async confirmEmailChange(token: string): Promise<Account> {
    return (await this.post("/v1/auth/email/change/confirm", { token })) as Account;
  }

  /** The signed-in account and every document it owns (the node's export file). */
  async exportAccount(): Promise<AccountExport> {
    return (await this.first(true, (api) => api.get("/v1/auth/account/export"))) as AccountExport;
  }

  /** Delete the account and the documents it owns at the node (the password again; none for an anonymous account), then forget the session here. */
  async deleteAccount(password?: string): Promise<void> {
    await this.post("/v1/auth/account/delete", password === undefined ? {} : { password }, true);
    await this.save(null);
  }

  /** Forget the session on this device and revoke its refresh tokens on the node (when reachable). */
  async signOut(): Promise<void> {
    const session = this.current;
    await this.save(null);
    if (session !== null) {
      await this.post("/v1/auth/logout", { refresh_token: session.refreshToken }).catch(() => undefined);
    }
  }

  /** Headers for a request: the access token, refreshed first when it is about to expire. */
  async headers(): Promise<Record<string, string>> {
    if (this.current !== null && this.now() >= this.current.refreshAt) await this.refresh(this.current);
    return this.current === null ? {} : { Authorization: `Bearer ${this.current.accessToken}` };
  }

  /** After a 401 of a request sent with `used`: whether a retry now has another token. */
  async renew(used: Record<string, string>): Promise<boolean> {
    const session = this.current;
    if (session === null) return false;
    if (used["Authorization"] !== `Bearer ${session.accessToken}`) return true; // renewed meanwhile
    return this.refresh(session);
  }

  /** Rotate `session`'s refresh token, once however many callers ask at the same time. */
  private refresh(session: Session): Promise<boolean> {
    this.refreshing ??= (async () => {
      try {
        if (this.current !== session) return this.current !== null; // another refresh won
        await this.start("/v1/auth/refresh", { refresh_token: session.refreshToken });
        return true;
      } catch (error) {
        if (error instanceof EndpointUnavailable) return false; // offline: keep the session, try later
        await this.save(null); // refused (expired, revoked, reused): signed out
        return false;
      } finally {
        this.refreshing = null;
      }
    })();
    return this.refreshing;
  }
}

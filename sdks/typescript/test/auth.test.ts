// Accounts against a real `breakwater serve` in auth mode `enforce` (see test/node.ts).
import { afterEach, describe, expect, it, vi } from "vitest";

import { Auth } from "../src/auth.js";
import { Client } from "../src/client.js";
import { LocalStore } from "../src/local-store.js";
import { MemoryStorage } from "../src/storage/memory.js";
import { freePort, Node } from "./node.js";
import { Mailbox } from "./smtp.js";

const ENFORCE = `
[auth]
mode = "enforce"
access_ttl = 2.0

[collections.notes]
owner = "owner"
rules.read = "auth.uid == doc.owner"
rules.write = "auth.uid == doc.owner"
`;

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(storage = new MemoryStorage()): Promise<{ node: Node; client: Client; storage: MemoryStorage }> {
  const node = new Node(await freePort(), { config: ENFORCE });
  cleanups.push(() => node.remove());
  await node.start();
  const client = await open(node, storage);
  return { node, client, storage };
}

async function open(node: Node, storage: MemoryStorage): Promise<Client> {
  const client = await Client.open({ endpoints: [node.url], storage, backoffBaseMs: 20, backoffCapMs: 200, pollIntervalMs: 120_000 });
  cleanups.push(() => client.close());
  return client;
}

const settled = (client: Client) => vi.waitFor(() => expect(client.outbox()).toEqual([]), { timeout: 15_000, interval: 50 });

describe("refresh", () => {
  it("spends a refresh token once however many requests need a new access token at once", async () => {
    let now = 0;
    const spent: string[] = [];
    const fake: typeof fetch = async (input, init) => {
      const path = new URL(String(input)).pathname;
      const body = JSON.parse(String(init?.body ?? "{}")) as { refresh_token?: string };
      if (path === "/v1/auth/refresh") spent.push(body.refresh_token ?? "");
      const token = `t${spent.length}`;
      const session = { access_token: `a-${token}`, refresh_token: `r-${token}`, expires_in: 100, uid: "u1", anonymous: true };
      return new Response(JSON.stringify(session), { status: 200 });
    };
    const store = new LocalStore(new MemoryStorage());
    await store.open();
    const auth = new Auth(store, ["http://node"], fake, 1_000, () => undefined, () => now);
    await auth.signInAnonymously();
    now = 90_000; // past refreshAt (a quarter of the 100 s life before expiry)
    const headers = await Promise.all([auth.headers(), auth.headers(), auth.provider.renew?.({ Authorization: "Bearer a-t0" })]);
    expect(spent).toEqual(["r-t0"]);
    expect(headers[0]).toEqual({ Authorization: "Bearer a-t1" });
    expect(headers[1]).toEqual({ Authorization: "Bearer a-t1" });
  });
});

describe("accounts", () => {
  it("keeps writes queued while signed out, and delivers them once signed in anonymously", async () => {
    const { client } = await setup();
    await client.collection("notes").set("n1", { text: "hi" });
    await vi.waitFor(() => expect(client.status.lastError).toMatch(/unauthorized|token/i), { timeout: 10_000 });
    expect(client.outbox()).toHaveLength(1);
    const session = await client.auth.signInAnonymously();
    expect(session.anonymous).toBe(true);
    await settled(client);
    // The node filled in the owner: the write went there and came back in a pull.
    await vi.waitFor(async () => expect((await client.collection("notes").get("n1"))?.data).toEqual({ text: "hi", owner: session.uid }), { timeout: 10_000 });
  });

  it("refreshes the access token when it expires, rotating the refresh token", async () => {
    const { client } = await setup();
    const first = await client.auth.signUp("ann@example.com", "correct horse");
    const notes = client.collection("notes");
    await notes.set("n1", { text: "one" });
    await settled(client);
    await new Promise((resolve) => setTimeout(resolve, 2_500)); // the 2 s access token expires
    await notes.set("n2", { text: "two" });
    await settled(client);
    const now = client.auth.session;
    expect(now?.uid).toBe(first.uid);
    expect(now?.refreshToken).not.toBe(first.refreshToken);
    expect(now?.accessToken).not.toBe(first.accessToken);
  });

  it("keeps the session across a restart and signs in again with the same account", async () => {
    const { node, client, storage } = await setup();
    const ann = await client.auth.signUp("bob@example.com", "correct horse");
    await client.close();
    const again = await open(node, storage);
    expect(again.auth.session?.uid).toBe(ann.uid);
    await again.auth.signOut();
    expect(again.auth.session).toBeNull();
    expect((await again.auth.signIn("bob@example.com", "correct horse")).uid).toBe(ann.uid);
    await expect(again.auth.signIn("bob@example.com", "wrong password")).rejects.toMatchObject({ type: "unauthorized" });
  });
});

describe("OpenID Connect and external tokens", () => {
  it("keeps the PKCE verifier on the device until the callback, and adopts the session", async () => {
    const { createHash } = await import("node:crypto");
    const posted: { path: string; body: Record<string, string> }[] = [];
    const fake: typeof fetch = async (input, init) => {
      const path = new URL(String(input)).pathname;
      const body = JSON.parse(String(init?.body ?? "{}")) as Record<string, string>;
      posted.push({ path, body });
      if (path.endsWith("/start")) return new Response(JSON.stringify({ authorize_url: "https://idp/auth?x", state: "st-1", expires_in: 600 }), { status: 200 });
      const session = { access_token: "a", refresh_token: "r", expires_in: 900, uid: "u-oidc", anonymous: false };
      return new Response(JSON.stringify(session), { status: 200 });
    };
    const store = new LocalStore(new MemoryStorage());
    await store.open();
    const auth = new Auth(store, ["http://node"], fake, 1_000, () => undefined);
    const started = await auth.startOidc("google", "com.example.app:/cb");
    expect(posted[0]?.path).toBe("/v1/auth/oidc/google/start");
    expect(JSON.stringify(posted[0]?.body)).not.toContain(started.codeVerifier);
    const challenge = createHash("sha256").update(started.codeVerifier).digest("base64url");
    expect(posted[0]?.body).toEqual({ redirect_uri: "com.example.app:/cb", code_challenge: challenge });
    await expect(auth.signInWithOidc(started, "code-1", "another-state")).rejects.toThrow(/state/);
    expect(posted).toHaveLength(1);
    const session = await auth.signInWithOidc(started, "code-1", "st-1");
    expect(posted[1]).toEqual({
      path: "/v1/auth/oidc/google/callback",
      body: { code: "code-1", state: "st-1", code_verifier: started.codeVerifier, redirect_uri: "com.example.app:/cb" },
    });
    expect(session.uid).toBe("u-oidc");
    expect(auth.session?.accessToken).toBe("a");
  });

  it("asks an external token callback to refresh after a 401, and retries only with a new token", async () => {
    const { externalToken } = await import("../src/external-token.js");
    const asked: boolean[] = [];
    let token = "old";
    const provider = externalToken(async (force) => {
      asked.push(force);
      if (force) token = "new";
      return token;
    });
    const used = await provider();
    expect(used).toEqual({ Authorization: "Bearer old" });
    expect(await provider.renew?.(used)).toBe(true);
    expect(await provider()).toEqual({ Authorization: "Bearer new" });
    expect(await provider.renew?.({ Authorization: "Bearer new" })).toBe(false);
    expect(asked).toEqual([false, true, false, true]);
  });
});

describe("account lifecycle", () => {
  // deleteAccount is not driven here: after it, client.close() takes ~30 s (an open question
  // about the SDK's shutdown with a deleted account; see the session report).
  it("verifies the email, resets the password and exports the account through mailed links", async () => {
    const mailbox = new Mailbox();
    await mailbox.start();
    cleanups.push(() => mailbox.stop());
    const node = new Node(await freePort(), { config: ENFORCE + mailbox.config() });
    cleanups.push(() => node.remove());
    await node.start();
    const client = await open(node, new MemoryStorage());
    const session = await client.auth.signUp("ts@example.com", "correct horse");
    const verified = await client.auth.verifyEmail(await mailbox.token("ts@example.com"));
    expect(verified).toMatchObject({ uid: session.uid, email_verified: true });

    await client.auth.requestPasswordReset("ts@example.com");
    await client.auth.requestPasswordReset("nobody@example.com"); // the same answer, no mail
    await client.auth.confirmPasswordReset(await mailbox.token("ts@example.com", 2), "a new passphrase");
    await expect(client.auth.signIn("ts@example.com", "correct horse")).rejects.toThrow();
    await client.auth.signIn("ts@example.com", "a new passphrase");

    await client.collection("notes").set("n1", { text: "mine" });
    await settled(client);
    const exported = await client.auth.exportAccount();
    expect(exported.account.email).toBe("ts@example.com");
    expect(exported.collections["notes"]?.map((doc) => doc.id)).toEqual(["n1"]);

    expect(mailbox.received.filter((mail) => mail.to === "nobody@example.com")).toEqual([]);
  }, 60_000);
});

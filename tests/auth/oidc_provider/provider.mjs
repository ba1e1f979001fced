// A real OpenID Connect provider (the `oidc-provider` package) on loopback, for tests only.
// Usage: node provider.mjs PORT [KEYS.json]. Prints "ready ISSUER" once it listens.
// KEYS.json: {"keys": [private JWKs]}; the first key signs, all are published (a rotation is a
// restart with the new key first, then without the old one). Without it: development keys.
// GET /_test/jwks_requests answers how many times /jwks was fetched since the start.
// Users are made up from the login name (also their sub): any password signs in; a login ending in
// "+unverified" gets email_verified false (so tests can check the linking policy).
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;
const jwks = process.argv[3] ? JSON.parse(readFileSync(process.argv[3], 'utf8')) : undefined;
let jwksRequests = 0;

function claimsOf(login) {
  const unverified = login.endsWith('+unverified');
  const email = unverified ? login.slice(0, -'+unverified'.length) : login;
  return { sub: login, email, email_verified: !unverified };
}

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'mobile-app',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      redirect_uris: ['com.example.app:/oauth2redirect'],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    },
    {
      client_id: 'confidential-app',
      client_secret: 'test-client-secret-not-a-real-one',
      application_type: 'native',
      redirect_uris: ['com.example.app:/oauth2redirect'],
      grant_types: ['authorization_code'],
      response_types: ['code'],
    },
  ],
  ...(jwks ? { jwks } : {}),
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  // The email in the ID token, as Google and Apple send it (Breakwater reads no userinfo).
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    return { accountId: id, claims: async () => claimsOf(id) };
  },
});
provider.proxy = false;
provider.use(async (ctx, next) => {
  if (ctx.path === '/_test/jwks_requests') {
    ctx.body = { count: jwksRequests };
    return;
  }
  if (ctx.path === '/jwks') jwksRequests += 1;
  await next();
});
const server = provider.listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));

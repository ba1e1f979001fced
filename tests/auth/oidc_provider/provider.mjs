// A real OpenID Connect provider (the `oidc-provider` package) on loopback, for tests only.
// Usage: node provider.mjs PORT. Prints "ready ISSUER" once it listens.
// Users are made up from the login name (also their sub): any password signs in; a login ending in
// "+unverified" gets email_verified false (so tests can check the linking policy).
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const issuer = `http://127.0.0.1:${port}`;

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
const server = provider.listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));

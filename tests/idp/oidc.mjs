// A real OpenID provider (npm `oidc-provider`) for Rollcall's integration tests.
// Usage: node oidc.mjs <port|0> <client_id> <client_secret> <redirect_uri>...
// Listens on 127.0.0.1 only and prints "listening <port>" once ready. Any login
// name is accepted by the development login form; it becomes the account's email
// (verified).
import http from 'node:http';
import Provider from 'oidc-provider';

const [port, clientId, clientSecret, ...redirectUris] = process.argv.slice(2);

const server = http.createServer();
server.listen(Number(port), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: clientId,
      client_secret: clientSecret,
      redirect_uris: redirectUris,
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    // Put the email in the ID token itself (Rollcall reads the ID token only).
    conformIdTokenClaims: false,
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['rollcall-test-cookie-key'] },
    async findAccount(ctx, id) {
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: id, email_verified: true, name: id };
        },
      };
    },
  });
  // Quiet: errors only.
  provider.on('server_error', (ctx, err) => console.error('server_error', err));
  server.on('request', provider.callback());
  console.log(`listening ${server.address().port}`);
});

// Test-only OAuth 2.0 / OpenID Connect server for tokenvault's integration tests.
//
// Runs panva's oidc-provider (the exact version pinned in package.json) on 127.0.0.1 with an
// ephemeral port, issuer `http://127.0.0.1:<port>`, and prints exactly `LISTENING <port>` on stdout
// once it accepts requests. Nothing else is ever written to stdout (library notices go to stderr).
// It exits when stdin closes (so a killed parent never leaves it running), on SIGTERM and SIGINT.
//
// Configuration (command-line arguments win over environment variables):
//   --access-ttl SECONDS    / OIDC_ACCESS_TTL    access token lifetime            (default 60)
//   --refresh-ttl SECONDS   / OIDC_REFRESH_TTL   refresh token lifetime           (default 1209600, 14 days)
//   --grant-ttl SECONDS     / OIDC_GRANT_TTL     grant (session) lifetime         (default max(refresh-ttl, 365 days))
//   --rotate true|false     / OIDC_ROTATE        rotate refresh tokens on use     (default true)
//   --alg ES256|RS256|PS256 / OIDC_ALG           the id_token signing algorithm: a fresh P-256 or
//                                                RSA-2048 key per run               (default ES256)
//   --omit-unrotated-refresh-token true|false / OIDC_OMIT_UNROTATED_REFRESH_TOKEN
//                           leave `refresh_token` out of a refresh response that would only
//                           repeat the presented one (RFC 6749 §6: a new refresh token is
//                           optional)                                             (default false)
//
// Clients (both may use `refresh_token` and the test bootstrap grant):
//   tokenvault-test          public, token_endpoint_auth_method "none"
//   tokenvault-confidential  secret "tokenvault-confidential-secret", token_endpoint_auth_method
//                            "client_secret_post" (client_id + client_secret as form fields)
//
// Extra routes (outside oidc-provider):
//   GET /test/stats          JSON counters fed by the provider's events (see `stats` below)
//   POST /test/rotate-key    replace the signing key by a new one (same algorithm, new `kid`);
//                            the old key leaves the published key set at once. Answers {"kid"}.
//   POST /test/next-sub?sub=S  the next id_token the token endpoint issues names subject S (once)
//
// Accounts: every subject exists, with the standard claims name, given_name, family_name,
// preferred_username, picture, locale, email and email_verified derived from it (scopes
// `profile` and `email`; `conformIdTokenClaims` is off so they are in the id_token).
//
// The protected resource is oidc-provider's own userinfo endpoint, `GET /me` with
// `Authorization: Bearer <access token>`: 200 for a live token, 401 for an expired or revoked one.
//
// THIS SERVER IS FOR TESTS ONLY: the bootstrap grant hands out a refresh token for any account
// without authenticating anybody.

import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import { parseArgs } from 'node:util';

// oidc-provider prints its notices with console.info (stdout) and warnings with console.warn
// (stderr). stdout is the control channel to the Rust harness, so everything the library (or
// anything else) logs goes to stderr. The provider is imported dynamically below, after this
// redirection, because static imports would run its module code first.
const toStderr = (...args) => console.error(...args);
console.log = toStderr;
console.info = toStderr;
console.debug = toStderr;

const { values: args } = parseArgs({
  options: {
    'access-ttl': { type: 'string' },
    'refresh-ttl': { type: 'string' },
    'grant-ttl': { type: 'string' },
    rotate: { type: 'string' },
    alg: { type: 'string' },
    'omit-unrotated-refresh-token': { type: 'string' },
  },
  strict: true,
});

function seconds(name, value, fallback) {
  if (value === undefined || value === '') {
    return fallback;
  }
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0) {
    console.error(`server.mjs: ${name} must be a positive integer number of seconds, got ${JSON.stringify(value)}`);
    process.exit(2);
  }
  return n;
}

function flag(name, value, fallback) {
  if (value === undefined || value === '') {
    return fallback;
  }
  if (['true', '1', 'yes'].includes(value)) return true;
  if (['false', '0', 'no'].includes(value)) return false;
  console.error(`server.mjs: ${name} must be true or false, got ${JSON.stringify(value)}`);
  process.exit(2);
}

const ACCESS_TTL = seconds('access-ttl', args['access-ttl'] ?? process.env.OIDC_ACCESS_TTL, 60);
const REFRESH_TTL = seconds('refresh-ttl', args['refresh-ttl'] ?? process.env.OIDC_REFRESH_TTL, 14 * 24 * 60 * 60);
const GRANT_TTL = seconds(
  'grant-ttl',
  args['grant-ttl'] ?? process.env.OIDC_GRANT_TTL,
  Math.max(REFRESH_TTL, 365 * 24 * 60 * 60),
);
const ROTATE = flag('rotate', args.rotate ?? process.env.OIDC_ROTATE, true);
const OMIT_UNROTATED = flag(
  'omit-unrotated-refresh-token',
  args['omit-unrotated-refresh-token'] ?? process.env.OIDC_OMIT_UNROTATED_REFRESH_TOKEN,
  false,
);

const ALG = args.alg ?? process.env.OIDC_ALG ?? 'ES256';
if (!['ES256', 'RS256', 'PS256'].includes(ALG)) {
  console.error(`server.mjs: alg must be ES256, RS256 or PS256, got ${JSON.stringify(ALG)}`);
  process.exit(2);
}

const BOOTSTRAP_GRANT = 'urn:tokenvault:test:bootstrap';
const PUBLIC_CLIENT = 'tokenvault-test';
const CONFIDENTIAL_CLIENT = 'tokenvault-confidential';
const CONFIDENTIAL_SECRET = 'tokenvault-confidential-secret';

// The package has no "exports" map, so its internals can be imported; the version is pinned
// exactly, so these paths are stable. They are used to issue tokens exactly the way the
// authorization_code grant does (helpers/grant_common.js#issueTokens) and to reuse the library's
// own in-memory adapter without its size limit.
const { default: Provider, errors } = await import('oidc-provider');
const { issueTokens } = await import('oidc-provider/lib/helpers/grant_common.js');
const grantHelpers = await import('oidc-provider/lib/helpers/grants.js');
const { default: MemoryAdapter } = await import('oidc-provider/lib/adapters/memory_adapter.js');
const { default: LRU } = await import('oidc-provider/lib/helpers/lru.js');
const { default: epochTime } = await import('oidc-provider/lib/helpers/epoch_time.js');
const { default: initializeKeystore } = await import('oidc-provider/lib/helpers/initialize_keystore.js');

// ---------------------------------------------------------------------------------------------
// Storage: oidc-provider's own MemoryAdapter (same consume / grant index / revokeByGrantId
// semantics as the default), but over one store that never evicts live entries. The default store
// is an LRU of 1,000 entries: every refresh inserts a new access token and refresh token, so a test
// doing hundreds of refresh cycles would silently evict live grants and refresh tokens (and the
// consumed refresh tokens whose presence reuse detection depends on). Entries still expire by TTL.
const store = new LRU({ maxSize: Number.MAX_SAFE_INTEGER });
const adapter = (model) => new MemoryAdapter(model, store, 0);

// ---------------------------------------------------------------------------------------------
// Counters, from the provider's events.
const stats = {
  token_requests: 0, // every POST /token seen by the HTTP server
  bootstrap_success: 0,
  refresh_success: 0, // grant.success with grant_type=refresh_token
  refresh_errors: {}, // grant.error with grant_type=refresh_token, by OAuth error code
  refresh_error_details: {}, // the same, by oidc-provider's internal error_detail
  refresh_invalid_grant: 0,
  grants_revoked: 0, // grant.revoked, from any route
  reuse_detected: 0, // see the grant.revoked listener
  refresh_token_omitted: 0, // refresh responses sent without `refresh_token` (see OMIT_UNROTATED)
  userinfo_errors: 0, // the protected resource refused a token
  server_errors: 0,
  jwks_requests: 0, // GET /jwks (the published key set)
  discovery_requests: 0, // GET /.well-known/openid-configuration
  keys_rotated: 0,
};

function bump(map, key) {
  map[key] = (map[key] ?? 0) + 1;
}

// ---------------------------------------------------------------------------------------------
// Keys: a fresh key per run (P-256 for ES256, RSA-2048 for RS256 and PS256); /test/rotate-key
// makes another.
let keyGeneration = 0;
function newSigningKey() {
  keyGeneration += 1;
  const { privateKey } = ALG === 'ES256'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    ...privateKey.export({ format: 'jwk' }),
    kid: `tokenvault-test-${ALG.toLowerCase()}-${keyGeneration}`,
    use: 'sig',
    alg: ALG,
  };
}
const jwk = newSigningKey();

// /test/next-sub: the subject the next id_token of the token endpoint names instead.
let nextSub;

const clientDefaults = {
  grant_types: ['refresh_token', BOOTSTRAP_GRANT],
  response_types: [],
  redirect_uris: [],
  id_token_signed_response_alg: ALG,
};

// Listen first: the issuer must contain the port, which is only known once bound.
let handler = (_req, res) => {
  res.statusCode = 503;
  res.end();
};
const server = createServer((req, res) => handler(req, res));
// Longer than the usual client pool idle time, so a pooled keep-alive connection is not closed
// under a client's feet between two refreshes.
server.keepAliveTimeout = 65_000;
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(0, '127.0.0.1', resolve);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  adapter,
  clockTolerance: 0,
  jwks: { keys: [jwk] },
  clients: [
    { ...clientDefaults, client_id: PUBLIC_CLIENT, token_endpoint_auth_method: 'none' },
    {
      ...clientDefaults,
      client_id: CONFIDENTIAL_CLIENT,
      client_secret: CONFIDENTIAL_SECRET,
      token_endpoint_auth_method: 'client_secret_post',
    },
  ],
  scopes: ['openid', 'offline_access', 'profile', 'email'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username', 'picture', 'locale'],
    email: ['email', 'email_verified'],
  },
  // Scope-granted claims go into the id_token too (the default keeps them for userinfo).
  conformIdTokenClaims: false,
  rotateRefreshToken: ROTATE,
  ttl: {
    AccessToken: ACCESS_TTL,
    RefreshToken: REFRESH_TTL,
    Grant: GRANT_TTL,
    IdToken: 60 * 60,
    AuthorizationCode: 60,
    ClientCredentials: 10 * 60,
    DeviceCode: 10 * 60,
    BackchannelAuthenticationRequest: 10 * 60,
    PreAuthorizedCode: 10 * 60,
    Interaction: 60 * 60,
    Session: 14 * 24 * 60 * 60,
  },
  features: {
    devInteractions: { enabled: false },
    userinfo: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
  },
  // Any subject exists, with claims derived from it.
  async findAccount(ctx, sub) {
    let accountId = sub;
    if (nextSub !== undefined && ctx?.oidc?.route === 'token') {
      accountId = nextSub;
      nextSub = undefined;
    }
    return {
      accountId,
      async claims() {
        return {
          sub: accountId,
          name: `Player ${accountId}`,
          given_name: 'Player',
          family_name: accountId,
          preferred_username: accountId,
          picture: `https://example.test/avatars/${encodeURIComponent(accountId)}.png`,
          locale: 'en-GB',
          email: `${accountId}@example.test`,
          email_verified: true,
        };
      },
    };
  },
  clientBasedCORS() {
    return false;
  },
  cookies: { keys: ['tokenvault-test-cookie-key'] },
});

// ---------------------------------------------------------------------------------------------
// Test-only bootstrap grant: the first access + refresh token without a browser.
//
//   POST /token  grant_type=urn:tokenvault:test:bootstrap&client_id=...&account=<subject>
//
// It does what an interactive login + consent + authorization_code redemption would leave behind:
// a Grant for (account, client) holding the OIDC scopes `openid offline_access` (as if the user had
// consented; without consent oidc-provider drops offline_access and issues no refresh token), and
// an authorization-code-shaped source object like helpers/process_response_types.js#codeHandler
// builds. The code is never saved nor redeemed; it is handed to the library's own issueTokens(),
// the function actions/grants/authorization_code.js ends with, which issues the AccessToken,
// the RefreshToken (via the configured issueRefreshToken policy) and the id_token and builds the
// standard token response. Refreshing then goes through the stock refresh_token grant.
const boundGrantHelpers = Object.fromEntries(
  Object.entries(grantHelpers).map(([name, helper]) => [name, helper.bind(undefined, provider)]),
);

provider.registerGrantType(BOOTSTRAP_GRANT, async (ctx) => {
  const { account } = ctx.oidc.params;
  if (typeof account !== 'string' || account.length === 0) {
    throw new errors.InvalidRequest("missing required parameter 'account'");
  }
  const { client } = ctx.oidc;
  const scope = 'openid offline_access profile email';

  const grant = new provider.Grant({ accountId: account, clientId: client.clientId });
  grant.addOIDCScope(scope);
  await grant.save();

  const code = new provider.AuthorizationCode({
    accountId: account,
    authTime: epochTime(),
    client,
    grantId: grant.jti,
    scope,
  });
  // offline_access: the default expiresWithSession policy answers false, so (as in codeHandler)
  // the flag is left unset and the tokens do not depend on a browser session.

  ctx.oidc.entity('Grant', grant);
  await issueTokens(provider, boundGrantHelpers, ctx, code, grant, {
    gty: BOOTSTRAP_GRANT,
    entityLabel: 'bootstrap grant',
  });
}, ['account']);

// ---------------------------------------------------------------------------------------------
// Without rotation oidc-provider repeats the presented refresh token in every refresh response.
// Many servers send none instead (RFC 6749 §6 makes a new one optional); with OMIT_UNROTATED this
// post-middleware turns the former into the latter, so a client that must keep its stored refresh
// token is tested against a response that really lacks it. A rotated token is never removed.
provider.use(async (ctx, next) => {
  await next();
  if (
    OMIT_UNROTATED &&
    ctx.oidc?.route === 'token' &&
    ctx.oidc.params?.grant_type === 'refresh_token' &&
    ctx.status === 200 &&
    ctx.body &&
    typeof ctx.body === 'object' &&
    ctx.body.refresh_token !== undefined &&
    ctx.body.refresh_token === ctx.oidc.params.refresh_token
  ) {
    delete ctx.body.refresh_token;
    stats.refresh_token_omitted += 1;
  }
});

// ---------------------------------------------------------------------------------------------
// Events.
provider.on('grant.success', (ctx) => {
  const gty = ctx.oidc.params?.grant_type;
  if (gty === 'refresh_token') stats.refresh_success += 1;
  else if (gty === BOOTSTRAP_GRANT) stats.bootstrap_success += 1;
});

provider.on('grant.error', (ctx, err) => {
  if (ctx.oidc?.params?.grant_type !== 'refresh_token') return;
  const code = err.error ?? err.message ?? 'unknown';
  bump(stats.refresh_errors, code);
  bump(stats.refresh_error_details, err.error_detail ?? err.error_description ?? code);
  if (code === 'invalid_grant') stats.refresh_invalid_grant += 1;
});

// Reuse detection. oidc-provider has no dedicated event for it. In actions/grants/refresh_token.js,
// a refresh token that is found but already `consumed` (i.e. rotated out earlier) makes the handler
// destroy that token, call helpers/revoke.js for its grant — which revokes every access token,
// refresh token and code of the grant, destroys the Grant and emits `grant.revoked` — and then throw
// InvalidGrant('refresh token already used'). That branch is the only place the refresh_token grant
// revokes anything, so a `grant.revoked` emitted while serving a refresh_token token request is
// exactly one reuse detection. Counting that (rather than matching the free-text error_detail of
// the following grant.error, which refresh_error_details also records) observes the actual
// consequence: the grant is gone.
provider.on('grant.revoked', (ctx) => {
  stats.grants_revoked += 1;
  if (ctx.oidc?.route === 'token' && ctx.oidc.params?.grant_type === 'refresh_token') {
    stats.reuse_detected += 1;
  }
});

provider.on('userinfo.error', () => {
  stats.userinfo_errors += 1;
});

provider.on('server_error', (_ctx, err) => {
  stats.server_errors += 1;
  console.error('oidc-provider server_error:', err);
});

// ---------------------------------------------------------------------------------------------
// HTTP routing: /test/* here, everything else to the provider.
const providerCallback = provider.callback();
handler = (req, res) => {
  const path = (req.url ?? '').split('?')[0];
  if (path === '/test/stats') {
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' });
      res.end();
      return;
    }
    const body = JSON.stringify(stats);
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(body);
    return;
  }
  if (path === '/test/rotate-key' && req.method === 'POST') {
    const key = newSigningKey();
    initializeKeystore.call(provider, { keys: [key] });
    stats.keys_rotated += 1;
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify({ kid: key.kid }));
    return;
  }
  if (path === '/test/next-sub' && req.method === 'POST') {
    const sub = new URL(req.url ?? '', issuer).searchParams.get('sub');
    if (!sub) {
      res.writeHead(400);
      res.end();
      return;
    }
    nextSub = sub;
    res.writeHead(204);
    res.end();
    return;
  }
  if (path === '/token' && req.method === 'POST') {
    stats.token_requests += 1;
  }
  if (path === '/jwks' && req.method === 'GET') {
    stats.jwks_requests += 1;
  }
  if (path === '/.well-known/openid-configuration' && req.method === 'GET') {
    stats.discovery_requests += 1;
  }
  providerCallback(req, res);
};

// ---------------------------------------------------------------------------------------------
// Lifetime.
function shutdown(code) {
  server.closeAllConnections?.();
  server.close();
  process.exit(code);
}
process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
process.stdin.on('end', () => shutdown(0));
process.stdin.on('close', () => shutdown(0));
process.stdin.on('error', () => shutdown(0));
process.stdin.resume();

process.stdout.write(`LISTENING ${port}\n`);

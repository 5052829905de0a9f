// A real OpenID Connect provider for the tests: panva's oidc-provider (from the npm registry, installed
// by scripts/fetch-oidc-provider into .cache/, never into the repository), on 127.0.0.1 with an
// ephemeral port, with the test users and clients of a JSON file:
//   node tests/support/oidc_provider.mjs MODULES_DIR CONFIG.json
// CONFIG: {"users": {"id": {"password": "...", "claims": {...}}}, "clients": [client metadata...]}.
// It prints one JSON line {"issuer": ..., "port": ...} once it listens, and runs until killed.
// Login and consent are plain HTML forms (tests/support/oidc_provider.py drives them over HTTP, as
// a browser would); RP-initiated logout asks for confirmation on a form too.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';

const [modulesDir, configPath] = process.argv.slice(2);
const config = JSON.parse(readFileSync(configPath, 'utf8'));
const require = createRequire(`${modulesDir}/package.json`);
const { default: Provider } = await import(pathToFileURL(require.resolve('oidc-provider')).href);
const jose = await import(pathToFileURL(require.resolve('jose')).href);

const escape = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const page = (title, body) => `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escape(title)}</title></head>`
  + `<body><h1>${escape(title)}</h1>${body}</body></html>`;

async function signingKey() {
  const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
  const jwk = await jose.exportJWK(privateKey);
  return { ...jwk, kid: randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };
}

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: config.clients,
  jwks: { keys: [await signingKey()] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  // The claims a scope releases; they go into the ID token (the workstation reads them there).
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    ccc: ['ccc_roles', 'hospital_ids'],
  },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.type = 'html';
        ctx.body = page('Sign out', `${form}<button type="submit" form="op.logoutForm" name="logout" value="yes">Sign out</button>`);
      },
      postLogoutSuccessSource: async (ctx) => {
        ctx.type = 'html';
        ctx.body = page('Signed out', '<p>You are signed out.</p>');
      },
    },
  },
  ttl: { IdToken: config.id_token_ttl || 3600, Session: 86400, Interaction: 600, Grant: 86400, AccessToken: 600 },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    const user = config.users[id];
    if (!user) return undefined;
    return { accountId: id, claims: async () => ({ sub: id, ...user.claims }) };
  },
});
provider.on('server_error', (ctx, err) => console.error('server_error', err));

function readForm(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.on('data', (chunk) => { data += chunk; if (data.length > 65536) req.destroy(); });
    req.on('end', () => resolve(Object.fromEntries(new URLSearchParams(data))));
    req.on('error', reject);
  });
}

function loginForm(uid, message = '') {
  return page('Sign in', `${message ? `<p class="error">${escape(message)}</p>` : ''}`
    + `<form method="post" action="/interaction/${escape(uid)}/login">`
    + '<input name="login" autofocus><input name="password" type="password"><button type="submit">Sign in</button></form>');
}

function consentForm(uid, clientId, scopes) {
  return page('Allow access', `<p>${escape(clientId)} asks for ${escape(scopes)}.</p>`
    + `<form method="post" action="/interaction/${escape(uid)}/confirm"><button type="submit">Allow</button></form>`);
}

async function interaction(req, res, uid, step) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params } = details;
  const send = (html, status = 200) => { res.writeHead(status, { 'content-type': 'text/html; charset=utf-8' }); res.end(html); };
  if (req.method === 'GET' && !step) {
    if (prompt.name === 'login') return send(loginForm(uid));
    return send(consentForm(uid, params.client_id, params.scope));
  }
  if (req.method === 'POST' && step === 'login' && prompt.name === 'login') {
    const form = await readForm(req);
    const user = config.users[form.login];
    if (!user || user.password !== form.password) return send(loginForm(uid, 'Wrong user or password.'), 401);
    return provider.interactionFinished(req, res, { login: { accountId: form.login } }, { mergeWithLastSubmission: false });
  }
  if (req.method === 'POST' && step === 'confirm' && prompt.name === 'consent') {
    await readForm(req);
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    const grantId = await grant.save();
    const consent = details.grantId ? {} : { grantId };
    return provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
  }
  return send(page('Not here', '<p>This step does not belong to the sign-in in progress.</p>'), 400);
}

const handler = provider.callback();
server.on('request', async (req, res) => {
  const match = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm))?$/.exec(req.url);
  if (!match) return handler(req, res);
  try {
    await interaction(req, res, match[1], match[2]);
  } catch (err) {
    res.writeHead(400, { 'content-type': 'text/plain' });
    res.end(`${err.name}: ${err.message}`);
  }
});
process.stdout.write(`${JSON.stringify({ issuer, port })}\n`);
process.on('SIGTERM', () => server.close(() => process.exit(0)));

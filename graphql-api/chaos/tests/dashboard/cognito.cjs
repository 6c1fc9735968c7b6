// Signing in to the dashboard through a Cognito user pool, as on AWS: `chaos serve --aws`
// trusting a pool on a local moto server, the page calling Cognito's InitiateAuth itself.
// Run by graphql-api/tests/dashboard.rs with BASE_URL, COGNITO_ENDPOINT, COGNITO_PASSWORD (the
// pool's users ada ADMIN, vera VIEWER and nemo, in no group, share it), COGNITO_TEMPORARY
// (newcomer's temporary password: a first sign-in), ARTIFACTS, CHROMIUM and
// PLAYWRIGHT_NODE_MODULES. Prints one line per step; exits non-zero on the first failure.
'use strict';

const crypto = require('node:crypto');
const { base, check, log, shot, watch, signIn, run } = require('./harness.cjs');

// The code an authenticator app shows for `secret` (base32) now: RFC 6238, SHA-1, six digits,
// 30-second steps. Waits for a step with at least ten seconds left, so the code is still
// current when the pool checks it.
async function authenticatorCode(secret) {
  while (30 - (Math.floor(Date.now() / 1000) % 30) < 10) {
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const c of secret.replace(/=+$/, '').toUpperCase()) {
    const value = alphabet.indexOf(c);
    check(value >= 0, `the key is not base32: ${secret}`);
    bits += value.toString(2).padStart(5, '0');
  }
  const key = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) key.push(parseInt(bits.slice(i, i + 8), 2));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(Date.now() / 1000 / 30)));
  const mac = crypto.createHmac('sha1', Buffer.from(key)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0xf;
  return ((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).toString().padStart(6, '0');
}

const cognito = process.env.COGNITO_ENDPOINT.replace(/\/$/, '');
const password = process.env.COGNITO_PASSWORD;
// A refused password is a 400 from Cognito, and a refused token a 401 from the API, which
// the browser logs: excused only while a refusal is being tested.
let refusalExpected = false;

function refusal(message) {
  const url = message.location().url || '';
  return refusalExpected
    && ((url.startsWith(cognito) && /status of 400/.test(message.text()))
      || (url.startsWith(base) && /status of 401/.test(message.text())));
}

run(async (browser) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  watch(page, 'page', refusal);
  const response = await page.goto(`${base}/`);
  const csp = response.headers()['content-security-policy'] || '';
  check(csp.includes(`connect-src 'self'`) && csp.includes(cognito), `the CSP does not allow the pool's endpoint: ${csp}`);
  await page.getByText("With your account in the platform's Cognito user pool.").waitFor();
  await shot(page, '30-login-cognito');

  // A wrong password: Cognito's refusal, in words.
  refusalExpected = true;
  await signIn(page, 'ada', 'not the password', { home: false });
  await page.getByRole('alert').filter({ hasText: 'Wrong user name or password.' }).waitFor();
  refusalExpected = false;
  log('a wrong password is refused by the pool');

  // Someone the pool knows but who has no role: the API refuses the token.
  refusalExpected = true;
  await signIn(page, 'nemo', password, { home: false });
  const refused = page.getByRole('alert').filter({ hasText: 'the platform refused' });
  await refused.waitFor();
  refusalExpected = false;
  log(`a user in no group is refused by the API: ${(await refused.innerText()).trim()}`);
  check(await page.getByLabel('User name').isVisible(), 'a user without a role got past the sign-in');

  await signIn(page, 'ada', password);
  await page.getByRole('heading', { name: 'Home', level: 1 }).waitFor();
  await page.getByText('cognito:ada (ADMIN)').waitFor();
  await page.locator('.facts .status', { hasText: 'ALLOWED' }).waitFor();
  check(await page.getByRole('button', { name: 'Halt all experiments…' }).isVisible(), 'an admin from the pool sees no halt control');
  await shot(page, '31-home-cognito-admin');
  log('signed in as cognito:ada (ADMIN) through the pool');

  // The access token is refreshed through Cognito before it expires.
  const stored = () => page.evaluate(() => JSON.parse(sessionStorage.getItem('chaos.session')));
  const before = await stored();
  check(before.pool && before.pool.endpoint.startsWith(cognito), `the session does not name the pool: ${JSON.stringify(before.pool)}`);
  await page.evaluate(() => {
    const session = JSON.parse(sessionStorage.getItem('chaos.session'));
    session.expires_at = new Date(Date.now() + 4_000).toISOString();
    sessionStorage.setItem('chaos.session', JSON.stringify(session));
  });
  await page.reload();
  await page.waitForFunction((old) => {
    const session = JSON.parse(sessionStorage.getItem('chaos.session') || 'null');
    return session && session.access_token !== old && Date.parse(session.expires_at) > Date.now() + 600_000;
  }, before.access_token, { timeout: 30_000 });
  await page.locator('.facts .status', { hasText: 'ALLOWED' }).waitFor();
  log('the access token was refreshed through Cognito, and the page kept working');

  const session = await stored();
  refusalExpected = true;
  await page.getByRole('button', { name: 'Sign out everywhere' }).click();
  await page.getByLabel('User name').waitFor();
  check(await page.evaluate(() => sessionStorage.getItem('chaos.session')) === null, 'signing out left the session');
  // The pool no longer honours the refresh token.
  const again = await page.evaluate(async ({ endpoint, client, token }) => {
    const response = await fetch(endpoint, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-amz-json-1.1',
        'X-Amz-Target': 'AWSCognitoIdentityProviderService.InitiateAuth',
      },
      body: JSON.stringify({ AuthFlow: 'REFRESH_TOKEN_AUTH', ClientId: client, AuthParameters: { REFRESH_TOKEN: token } }),
    });
    return { status: response.status, answer: await response.json() };
  }, { endpoint: session.pool.endpoint, client: session.pool.client_id, token: session.refresh_token });
  check(again.status === 400 && /NotAuthorized/.test(again.answer.__type), `the refresh token still works after signing out: ${JSON.stringify(again)}`);
  refusalExpected = false;
  log(`signed out everywhere: the pool refuses the old refresh token (${again.answer.__type})`);

  await signIn(page, 'vera', password, { home: false });
  await page.getByText('cognito:vera (VIEWER)').waitFor();
  await page.locator('.facts .status', { hasText: 'ALLOWED' }).waitFor();
  check(await page.getByRole('button', { name: 'Halt all experiments…' }).count() === 0, 'a viewer from the pool sees the halt control');
  check(await page.getByRole('link', { name: 'Run an experiment' }).count() === 0, 'a viewer from the pool may run experiments');
  await shot(page, '32-home-cognito-viewer');
  log('a viewer from the pool sees no controls');
  await context.close();

  // A first sign-in: newcomer, created by an administrator with a temporary password,
  // chooses a password, sets up an authenticator app and is in; the next sign-in asks for a
  // code from that app.
  const first = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const newcomer = await first.newPage();
  watch(newcomer, 'newcomer', refusal);
  await newcomer.goto(`${base}/`);
  await signIn(newcomer, 'newcomer', process.env.COGNITO_TEMPORARY, { home: false });
  await newcomer.getByRole('heading', { name: 'Choose your password' }).waitFor();
  await shot(newcomer, '33-cognito-first-sign-in');
  const chosen = 'My-own-password-2';
  await newcomer.getByLabel('New password', { exact: true }).fill(chosen);
  await newcomer.getByLabel('The new password again').fill(`${chosen}!`);
  await newcomer.getByRole('button', { name: 'Continue' }).click();
  await newcomer.getByRole('alert').filter({ hasText: 'The two passwords differ.' }).waitFor();
  await newcomer.getByLabel('New password', { exact: true }).fill(chosen);
  await newcomer.getByLabel('The new password again').fill(chosen);
  await newcomer.getByRole('button', { name: 'Continue' }).click();
  await newcomer.getByRole('heading', { name: 'Set up an authenticator app' }).waitFor();
  const key = (await newcomer.locator('#authenticator-key').innerText()).trim();
  await shot(newcomer, '34-cognito-authenticator');
  await newcomer.getByLabel('Code', { exact: true }).fill(await authenticatorCode(key));
  await newcomer.getByRole('button', { name: 'Continue' }).click();
  await newcomer.getByText('cognito:newcomer (OPERATOR)').waitFor();
  await newcomer.locator('.facts .status', { hasText: 'ALLOWED' }).waitFor();
  log('a first sign-in: a password chosen in place of the temporary one, an authenticator set up');

  refusalExpected = true;
  await newcomer.getByRole('button', { name: 'Sign out everywhere' }).click();
  await newcomer.getByLabel('User name').waitFor();
  refusalExpected = false;
  await signIn(newcomer, 'newcomer', chosen, { home: false });
  await newcomer.getByRole('heading', { name: 'Enter your code' }).waitFor();
  refusalExpected = true;
  await newcomer.getByLabel('Code', { exact: true }).fill('000000');
  await newcomer.getByRole('button', { name: 'Continue' }).click();
  await newcomer.getByRole('alert').filter({ hasText: 'Code mismatch' }).waitFor();
  refusalExpected = false;
  await newcomer.getByLabel('Code', { exact: true }).fill(await authenticatorCode(key));
  await newcomer.getByRole('button', { name: 'Continue' }).click();
  await newcomer.getByText('cognito:newcomer (OPERATOR)').waitFor();
  await shot(newcomer, '35-cognito-signed-in-with-a-code');
  log('signing in again asks for a code from the authenticator: a wrong one is refused, the right one lets them in');
  await first.close();
});

// The GraphQL explorer (GraphiQL at GET /graphql) loads from the server alone, under a strict
// Content-Security-Policy, and runs a query with the credential in its Headers pane. Run by
// graphql-api/tests/dashboard.rs against a `chaos serve`:
//   BASE_URL, ADMIN_USER, ADMIN_PASSWORD, ARTIFACTS, CHROMIUM, PLAYWRIGHT_NODE_MODULES.
// Prints one line per step; exits non-zero with the reason on the first failure.
'use strict';

const { base, check, graphql, log, shot, watch, run } = require('./harness.cjs');

run(async (browser) => {
  const signedIn = await graphql(null, 'mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }',
    { u: process.env.ADMIN_USER, p: process.env.ADMIN_PASSWORD });
  check(!signedIn.errors, `cannot sign in: ${JSON.stringify(signedIn.errors)}`);
  const token = signedIn.data.login.accessToken;

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  // What a person would have typed into the editor and the Headers pane before.
  await context.addInitScript((bearer) => {
    window.localStorage.setItem('graphiql:query', '{ me { id role } }');
    window.localStorage.setItem('graphiql:headers', JSON.stringify({ Authorization: `Bearer ${bearer}` }));
  }, token);
  const page = await context.newPage();
  watch(page, 'explorer');
  const elsewhere = [];
  page.on('request', (request) => {
    if (!request.url().startsWith(base) && !request.url().startsWith('data:')) elsewhere.push(request.url());
  });

  const response = await page.goto(`${base}/graphql`);
  check(response.status() === 200, `GET /graphql answered ${response.status()}`);
  const csp = response.headers()['content-security-policy'] || '';
  check(csp.includes("script-src 'self';") && csp.includes("style-src 'self';") && !csp.includes('unsafe'), `CSP: ${csp}`);
  check(csp.includes("frame-ancestors 'none'"), `CSP allows framing: ${csp}`);
  await page.locator('.graphiql-container').waitFor();
  await page.locator('.graphiql-execute-button').click();
  const answer = page.locator('.graphiql-response');
  await answer.getByText(`user:${process.env.ADMIN_USER}`).waitFor();
  check((await answer.innerText()).includes('ADMIN'), `the answer: ${await answer.innerText()}`);
  check(elsewhere.length === 0, `the explorer reached beyond the server: ${elsewhere.join(', ')}`);
  await shot(page, '40-graphiql');
  log('the explorer loaded from the server alone and ran a query with its Authorization header');
  await context.close();
});

// A session kept under load, never signed out: access tokens that live two seconds (renewed
// every second), renewals whose answers are lost on their way back after the server traded
// the refresh token, reloads while a renewal is on its way, and then pages changed and
// reloaded as fast as they render, each with its requests and sockets, while processes the
// test started keep every core busy. Run by graphql-api/tests/dashboard.rs:
//   BASE_URL, ADMIN_USER, ADMIN_PASSWORD, ARTIFACTS, CHROMIUM, PLAYWRIGHT_NODE_MODULES;
//   LOAD_SECONDS: how long the last part lasts.
// Prints one line per step; exits non-zero with the reason on the first failure.
'use strict';

const { base, check, log, shot, watch, signIn, run } = require('./harness.cjs');

// Requests this script made fail on purpose: not the page's failures.
const failedOnPurpose = new Set();

function isRenewal(request) {
  return request.method() === 'POST' && (request.postData() || '').includes('refreshSession');
}

const pages = [
  ['Home', 'Home'],
  ['Experiments', 'Experiments'],
  ['Results', 'Results'],
  ['Run an experiment', 'Run an experiment'],
  ['Audit log', 'Audit log'],
  ['Settings', 'Settings'],
];

run(async (browser) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  // A renewal this script cut off shows in the console as a load that failed that way.
  watch(page, 'admin', (message) => failedOnPurpose.size > 0
    && /Failed to load resource: net::ERR_(CONNECTION_RESET|ABORTED)/.test(message.text()),
  (request) => failedOnPurpose.has(request)
    || (reloading && request.failure()?.errorText === 'net::ERR_ABORTED'));
  let renewals = 0;
  // Requests on their way: a reload this script makes aborts them, which is no failure of
  // the page's.
  const inFlight = new Set();
  page.on('request', (request) => {
    inFlight.add(request);
    if (isRenewal(request)) renewals += 1;
  });
  // What the last renewals were answered, for the report of a failure.
  const answers = [];
  page.on('response', async (response) => {
    if (!isRenewal(response.request())) return;
    const body = await response.text().catch((e) => `(no body: ${e.message})`);
    answers.push(`${new Date().toISOString()} ${response.status()} ${body.replace(/"(access|refresh)Token":"[^"]*"/g, '"$1Token":"…"').slice(0, 300)}`);
    if (answers.length > 20) answers.shift();
  });
  const withAnswers = async (step) => {
    try {
      await step();
    } catch (e) {
      log(`the last renewals were answered:\n${answers.join('\n')}`);
      throw e;
    }
  };
  page.on('requestfinished', (request) => inFlight.delete(request));
  page.on('requestfailed', (request) => inFlight.delete(request));
  let reloading = false;
  const reload = async () => {
    for (const request of inFlight) failedOnPurpose.add(request);
    reloading = true;
    try {
      await page.reload();
    } finally {
      reloading = false;
    }
  };
  const signedIn = async (when) => {
    check(await page.getByLabel('User name').count() === 0, `signed out ${when}`);
    check(await page.evaluate(() => sessionStorage.getItem('chaos.session')) !== null, `the session is gone ${when}`);
  };
  const renewalsAfter = async (count, what) => {
    const want = renewals + count;
    const deadline = Date.now() + 60_000;
    while (renewals < want) {
      check(Date.now() < deadline, `no ${count} renewals ${what} within 60 s (${renewals}/${want})`);
      await page.waitForTimeout(100);
    }
  };

  await page.goto(`${base}/`);
  await signIn(page, process.env.ADMIN_USER, process.env.ADMIN_PASSWORD);
  await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();

  // Renewals whose answers never arrive: the server has traded the refresh token, the page
  // holds the spent one and presents it again.
  let lost = 0;
  await page.route('**/graphql', async (route) => {
    const request = route.request();
    if (!isRenewal(request) || lost >= 3) return route.continue();
    await route.fetch();
    lost += 1;
    failedOnPurpose.add(request);
    await route.abort('connectionreset');
  });
  while (lost < 3) await page.waitForTimeout(100);
  await page.unroute('**/graphql');
  await renewalsAfter(3, 'after the lost answers');
  await page.getByRole('heading', { name: 'Home', level: 1 }).waitFor();
  await signedIn('after renewals whose answers were lost');
  log('three renewals whose answers were lost, then renewed from the spent token: still signed in');

  // Reloads while a renewal is on its way: the new page starts from the token the old one
  // spent.
  for (let round = 1; round <= 3; round += 1) {
    let traded;
    const sent = new Promise((resolve) => { traded = resolve; });
    await page.route('**/graphql', async (route) => {
      const request = route.request();
      if (!isRenewal(request)) return route.continue();
      await route.fetch();
      failedOnPurpose.add(request);
      traded();
      // The page goes away before it hears the answer.
      await route.abort('aborted').catch(() => {});
    });
    await sent;
    await page.unroute('**/graphql');
    await reload();
    await page.getByRole('heading', { name: 'Home', level: 1 }).waitFor();
    await renewalsAfter(2, `after reload ${round}`);
    await signedIn(`after reload ${round}`);
  }
  log('three reloads in the middle of a renewal: still signed in');

  // Pages changed and reloaded as fast as they render, with the machine's cores busy.
  const seconds = Number(process.env.LOAD_SECONDS || '30');
  const until = Date.now() + seconds * 1_000;
  const before = renewals;
  let steps = 0;
  while (Date.now() < until) {
    const [link, heading] = pages[steps % pages.length];
    await withAnswers(async () => {
      await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: link }).click();
      await page.getByRole('heading', { name: heading, level: 1 }).waitFor({ timeout: 60_000 });
      if (steps % 4 === 3) {
        await reload();
        await page.getByRole('heading', { name: heading, level: 1 }).waitFor({ timeout: 60_000 });
      }
      await signedIn(`at step ${steps} (${link})`);
    });
    steps += 1;
  }
  check(renewals - before >= seconds / 4, `only ${renewals - before} renewals in ${seconds} s of load`);
  await shot(page, '30-session-after-load');
  log(`${steps} pages and ${Math.floor(steps / 4)} reloads in ${seconds} s under load, ${renewals - before} renewals: never signed out`);
  await context.close();
});

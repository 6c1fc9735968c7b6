// Cold loads of the dashboard in headless Debian chromium (playwright-core, never a downloaded
// browser), run by graphql-api/benches/dashboard_load.rs against a `chaos serve` it started:
//   BASE_URL, LOADS (how many), CHROMIUM, PLAYWRIGHT_NODE_MODULES, USER_NAME, USER_PASSWORD
// (load n signs in as USER_NAME-n: sign-in attempts are rate limited per user).
// Each load is a new browser context (an empty cache, no session), so every byte is fetched
// and compiled again. Per load, from the start of the navigation:
//   - first render: the sign-in form is in the page;
//   - time to interactive: the end of the last long task (over 50 ms) before a quiet second
//     after the first render, or the first render when there is none (as Lighthouse defines
//     it, short of network quiet, which a page served from localhost reaches first);
//   - signed in: typing the credentials and pressing Enter, until the home page shows the
//     platform's health (a round trip through the API, measured from the key press).
// Prints one JSON line per load, then `bench: done`.
'use strict';

const path = require('node:path');
const { launch } = require(path.join(__dirname, '../tests/dashboard/harness.cjs'));

const base = process.env.BASE_URL;
const loads = Number(process.env.LOADS || 10);

async function once(browser, n) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('console', (message) => message.type() === 'error' && errors.push(message.text()));
  await page.goto(`${base}/`, { waitUntil: 'commit' });
  // Long tasks are recorded from here on (buffered: those before the observer count too).
  await page.evaluate(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => window.__longTasks.push(...list.getEntries().map((e) => e.startTime + e.duration)))
      .observe({ type: 'longtask', buffered: true });
  });
  const firstRender = await (await page.waitForFunction(
    () => document.querySelector('input#username, input[autocomplete="username"]') && performance.now(),
    null, { polling: 'raf' })).jsonValue();
  await page.waitForTimeout(1000);
  const [lastLongTask, longTasks] = await page.evaluate(() => [Math.max(0, ...window.__longTasks), window.__longTasks.length]);
  const interactive = Math.max(firstRender, lastLongTask);
  await page.getByLabel('User name').fill(`${process.env.USER_NAME}-${n}`);
  await page.getByLabel('Password').fill(process.env.USER_PASSWORD);
  const pressed = Date.now();
  await page.getByLabel('Password').press('Enter');
  await page.locator('.facts .status').first().waitFor();
  const signedIn = Date.now() - pressed;
  const bytes = await page.evaluate(() => performance.getEntriesByType('resource')
    .concat(performance.getEntriesByType('navigation'))
    .reduce((sum, e) => sum + (e.transferSize || 0), 0));
  await context.close();
  if (errors.length) throw new Error(`the page reported errors: ${errors.join('; ')}`);
  return { firstRender: Math.round(firstRender), interactive: Math.round(interactive), longTasks, signedIn, bytes };
}

(async () => {
  const browser = await launch();
  try {
    // One load first, not counted: the browser itself starts cold once.
    await once(browser, 0);
    for (let i = 1; i <= loads; i += 1) {
      console.log(JSON.stringify(await once(browser, i)));
    }
  } finally {
    await browser.close();
  }
  console.log('bench: done');
})().catch((error) => {
  console.error(`bench: FAILED: ${error.stack || error}`);
  process.exit(1);
});

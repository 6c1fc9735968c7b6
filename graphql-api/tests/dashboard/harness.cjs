// What every browser script of graphql-api/tests/dashboard.rs shares: headless Debian
// chromium through playwright-core (never a downloaded browser), the step log, screenshots,
// and the rule that any console error, uncaught exception, CSP violation or failed request is
// a failure. Environment: BASE_URL, ARTIFACTS (screenshots), CHROMIUM (the browser),
// PLAYWRIGHT_NODE_MODULES (where playwright-core is installed).
'use strict';

const path = require('node:path');
const { chromium } = require(path.join(process.env.PLAYWRIGHT_NODE_MODULES, 'playwright-core'));

const base = process.env.BASE_URL;

function check(condition, message) {
  if (!condition) throw new Error(message);
}

function log(message) {
  console.log(`dashboard: ${message}`);
}

async function shot(page, name) {
  const file = path.join(process.env.ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  log(`screenshot ${file}`);
}

// Problems the pages reported, across every page a script watches.
const problems = [];

// Watches `page` (`who` names it in the report). `excused(message)` may excuse a console
// message a step expects (a refused password is a 400 the browser logs).
function watch(page, who, excused = () => false) {
  page.on('console', (message) => {
    if (excused(message)) return;
    if (message.type() === 'error' || /Content Security Policy/i.test(message.text())) {
      problems.push(`${who} console ${message.type()}: ${message.text()} (${message.location().url || 'no url'})`);
    }
  });
  page.on('pageerror', (error) => problems.push(`${who} page error: ${error.message}`));
  page.on('requestfailed', (request) => {
    // A socket closed on purpose when a page is left is not a failure.
    if (request.resourceType() !== 'websocket') {
      problems.push(`${who} request failed: ${request.url()} ${request.failure()?.errorText}`);
    }
  });
}

// Signs in on the sign-in form; `home`: waits for the home page.
async function signIn(page, user, password, { home = true } = {}) {
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  if (home) await page.getByRole('heading', { name: 'Home', level: 1 }).waitFor();
}

// Headless Debian chromium, with nothing running in the background that could skew a step.
function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-dev-shm-usage'],
  });
}

// Runs `script(browser)` in a fresh headless chromium, then fails if any watched page reported
// a problem; prints `dashboard: ok` or why it failed, and exits accordingly.
function run(script) {
  (async () => {
    const browser = await launch();
    try {
      await script(browser);
    } finally {
      await browser.close();
    }
    check(problems.length === 0, `the pages reported problems:\n${problems.join('\n')}`);
    log('ok');
    process.exit(0);
  })().catch((error) => {
    console.error(`dashboard: FAILED: ${error.stack || error}`);
    if (problems.length) console.error(`dashboard: problems seen:\n${problems.join('\n')}`);
    process.exit(1);
  });
}

module.exports = { base, check, log, shot, watch, signIn, launch, run };

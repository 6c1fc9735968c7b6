// What every browser script of graphql-api/tests/dashboard.rs shares: headless Debian
// chromium through playwright-core (never a downloaded browser), the step log, screenshots,
// and the rule that any console error, uncaught exception, CSP violation or failed request is
// a failure. Environment: BASE_URL, ARTIFACTS (screenshots), CHROMIUM (the browser),
// PLAYWRIGHT_NODE_MODULES (where playwright-core is installed).
'use strict';

const path = require('node:path');
const { chromium } = require(path.join(process.env.PLAYWRIGHT_NODE_MODULES, 'playwright-core'));

const base = process.env.BASE_URL;

// A GraphQL request from outside the browser, as a script would send it (`secret`: a bearer
// token or API key; none, anonymous).
async function graphql(secret, query, variables = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (secret) headers.Authorization = `Bearer ${secret}`;
  const response = await fetch(`${base}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query, variables }) });
  return response.json();
}

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
// Every watched page, to be shown as it was when a script fails.
const watched = [];
// The last frames of every subscription socket the watched pages opened, printed when a
// script fails: they tell a server that stopped sending from a page that stopped showing.
const frames = [];
const FRAMES_KEPT = 200;

function frame(who, what) {
  if (frames.length === FRAMES_KEPT) frames.shift();
  frames.push(`${new Date().toISOString()} ${who} ${what}`);
}

// Watches `page` (`who` names it in the report). `excused(message)` may excuse a console
// message a step expects (a refused password is a 400 the browser logs), and
// `failedOnPurpose(request)` a request the script itself made fail.
function watch(page, who, excused = () => false, failedOnPurpose = () => false) {
  watched.push({ page, who });
  page.on('console', (message) => {
    if (excused(message)) return;
    if (message.type() === 'error' || /Content Security Policy/i.test(message.text())) {
      problems.push(`${who} console ${message.type()}: ${message.text()} (${message.location().url || 'no url'})`);
    }
  });
  page.on('pageerror', (error) => problems.push(`${who} page error: ${error.message}`));
  page.on('websocket', (socket) => {
    const name = `${who} socket ${socket.url()}`;
    frame(name, 'opened');
    const text = (payload) => String(payload).slice(0, 300);
    socket.on('framesent', (f) => frame(name, `> ${text(f.payload)}`));
    socket.on('framereceived', (f) => frame(name, `< ${text(f.payload)}`));
    socket.on('socketerror', (error) => frame(name, `error ${error}`));
    socket.on('close', () => frame(name, 'closed'));
  });
  page.on('requestfailed', (request) => {
    // A socket closed on purpose when a page is left is not a failure.
    if (request.resourceType() !== 'websocket' && !failedOnPurpose(request)) {
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

// `promise`, or an error after five seconds: a page whose script is stuck answers nothing,
// and saying so beats waiting with it.
async function within(promise) {
  let timer;
  const stuck = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('the page did not answer in 5 s')), 5_000);
  });
  try {
    return await Promise.race([promise, stuck]);
  } finally {
    clearTimeout(timer);
  }
}

// What each watched page still open shows, with a screenshot of it (`failed-<who>.png`).
async function showPages() {
  for (const { page, who } of watched) {
    if (page.isClosed()) continue;
    try {
      const text = await within(page.evaluate(() => document.body.innerText));
      console.error(`dashboard: ${who} was at ${page.url()}, showing:\n${text.slice(0, 2_000)}`);
      await within(shot(page, `failed-${who}`));
    } catch (error) {
      console.error(`dashboard: ${who} cannot be shown: ${error.message}`);
    }
  }
}

// Runs `script(browser)` in a fresh headless chromium, then fails if any watched page reported
// a problem; prints `dashboard: ok` or why it failed, and exits accordingly.
function run(script) {
  (async () => {
    const browser = await launch();
    try {
      await script(browser);
    } catch (error) {
      await showPages();
      throw error;
    } finally {
      await browser.close();
    }
    check(problems.length === 0, `the pages reported problems:\n${problems.join('\n')}`);
    log('ok');
    process.exit(0);
  })().catch((error) => {
    console.error(`dashboard: FAILED: ${error.stack || error}`);
    if (problems.length) console.error(`dashboard: problems seen:\n${problems.join('\n')}`);
    if (frames.length) console.error(`dashboard: the last socket frames:\n${frames.join('\n')}`);
    process.exit(1);
  });
}

module.exports = { base, check, graphql, log, shot, watch, signIn, launch, run };

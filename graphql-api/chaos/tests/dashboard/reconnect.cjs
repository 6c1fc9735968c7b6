// A live page across a server restart (run by graphql-api/tests/dashboard.rs): an experiment is
// started from the form, and once its failure is injected the test prints RESTART and waits
// for RESTARTED on standard input while the server is killed and started again on the same
// address. The page must reconnect by itself and end with the whole timeline, each event once
// and none missing, exactly as the API has it. Same environment as flow.cjs.
'use strict';

const readline = require('node:readline');
const { base, check, log, shot, run } = require('./harness.cjs');

const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();

// Only uncaught exceptions fail this one: while the server is down the browser logs the
// failed reconnections, which are the point of the test.
run(async (browser) => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(`${base}/experiments/new`);
  await page.getByLabel('User name').fill(process.env.ADMIN_USER);
  await page.getByLabel('Password').fill(process.env.ADMIN_PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  // Signed in where the address pointed.
  await page.getByRole('heading', { name: 'Run an experiment' }).waitFor();
  const name = `pause across a restart ${Date.now()}`;
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByLabel('Failure').selectOption('PAUSE');
  await page.getByLabel('Pause for (seconds)').fill('6');
  await page.getByRole('button', { name: 'Create and start' }).click();
  await page.waitForURL(/\/experiments\/(?!new$)[^/]+$/);
  const id = page.url().split('/').pop();
  await page.locator('.timeline li[data-event="FailureInjected"]').waitFor({ timeout: 60_000 });
  await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();
  const before = await page.locator('.timeline li').count();
  log(`experiment ${id}: ${before} events shown; restarting the server`);
  console.log('RESTART');
  const answer = await lines.next();
  check(answer.value === 'RESTARTED', `expected RESTARTED, got ${answer.value}`);
  await page.getByRole('status').filter({ hasText: 'Disconnected' }).or(page.getByRole('status').filter({ hasText: 'Live' })).first().waitFor();
  await shot(page, '11-experiment-reconnecting');
  const ended = page.locator('.facts .status').filter({ hasText: /^(COMPLETED|FAILED|STOPPED)$/ });
  await ended.waitFor({ timeout: 120_000 });
  const status = (await ended.innerText()).trim();
  const shown = await page.locator('.timeline li').evaluateAll((items) =>
    items.map((li) => ({ seq: Number(li.querySelector('.seq').textContent.slice(1)), event: li.dataset.event })));
  const sequences = shown.map((e) => e.seq);
  sequences.forEach((seq, i) => check(seq === i + 1, `the timeline is not 1..n without gaps or repeats: ${sequences.join(',')}`));
  check(shown.length > before, `nothing arrived after the restart (${before} then ${shown.length})`);
  // The API's own record of the experiment, read with the page's session.
  const record = () => page.evaluate(async (experimentId) => {
    const session = JSON.parse(sessionStorage.getItem('chaos.session'));
    const response = await fetch('/graphql', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${session.access_token}` },
      body: JSON.stringify({ query: 'query($id: ID!) { experiment(id: $id) { timeline { sequence eventType } } }', variables: { id: experimentId } }),
    });
    return (await response.json()).data.experiment.timeline.map((e) => e.eventType);
  }, id);
  // The read models may trail the live feed by a moment.
  let recorded = await record();
  for (let i = 0; i < 40 && recorded.length < shown.length; i += 1) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    recorded = await record();
  }
  check(JSON.stringify(recorded) === JSON.stringify(shown.map((e) => e.event)),
    `the page shows ${shown.map((e) => e.event).join(' ')} but the API has ${recorded.join(' ')}`);
  log(`ended ${status} with ${shown.length} events, ${shown.length - before} of them after the restart, as the API has them`);
  await shot(page, '12-experiment-after-restart');
  check(errors.length === 0, `page errors: ${errors.join('\n')}`);
});

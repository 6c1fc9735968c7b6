// The dashboard in headless Debian chromium, driven by playwright-core (never a downloaded
// browser). Run by graphql-api/tests/dashboard.rs against a `chaos serve` it started:
//   BASE_URL, ADMIN_USER, ADMIN_PASSWORD, VIEWER_USER, VIEWER_PASSWORD, ARTIFACTS (screenshots),
//   CHROMIUM (the browser), PLAYWRIGHT_NODE_MODULES (where playwright-core is installed).
// Prints one line per step; exits non-zero with the reason on the first failure.
'use strict';

const { base, check, graphql, log, shot, watch, signIn, run } = require('./harness.cjs');

// An access token of `user`'s own, for requests made beside the pages. Not the page's: the
// server's tokens live six seconds, which a loaded machine can spend between the page's last
// refresh and the request.
async function tokenOf(user, password) {
  const answer = await graphql(null, 'mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }', { u: user, p: password });
  check(!answer.errors, `${user} cannot sign in: ${JSON.stringify(answer.errors)}`);
  return answer.data.login.accessToken;
}

async function asAdmin(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  watch(page, 'admin');

  const started = Date.now();
  const response = await page.goto(`${base}/`);
  check(response.status() === 200, `GET / answered ${response.status()}`);
  const headers = response.headers();
  const csp = headers['content-security-policy'] || '';
  check(csp.includes("script-src 'self' 'wasm-unsafe-eval'"), `CSP without a strict script-src: ${csp}`);
  check(csp.includes("default-src 'self'") && csp.includes("frame-ancestors 'none'"), `CSP incomplete: ${csp}`);
  check(!csp.includes('unsafe-inline'), `CSP allows inline code: ${csp}`);
  check(headers['x-content-type-options'] === 'nosniff', 'no X-Content-Type-Options: nosniff');
  await page.getByLabel('User name').waitFor();
  log(`first render (sign-in form shown) ${Date.now() - started} ms after navigation`);
  await shot(page, '01-login');

  await signIn(page, process.env.ADMIN_USER, process.env.ADMIN_PASSWORD);
  const token = () => page.evaluate(() => JSON.parse(sessionStorage.getItem('chaos.session')).access_token);
  const firstToken = await token();
  await page.locator('.facts .status', { hasText: 'ALLOWED' }).waitFor();
  await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();
  check(await page.getByRole('button', { name: 'Halt all experiments…' }).isVisible(), 'an admin sees no halt control');
  await shot(page, '02-home-admin');
  // Halting asks for a reason and a confirmation first.
  await page.getByRole('button', { name: 'Halt all experiments…' }).click();
  await page.getByLabel('Reason').waitFor();
  check(await page.getByRole('button', { name: 'Halt everything now' }).isVisible(), 'no confirmation of the halt');
  await shot(page, '02-home-halt-confirmation');
  await page.getByRole('button', { name: 'Cancel' }).click();
  await page.getByRole('button', { name: 'Halt all experiments…' }).waitFor();

  // The form refuses what the API refuses, with the API's words.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Run an experiment' }).click();
  await page.getByRole('heading', { name: 'Run an experiment' }).waitFor();
  const name = `kill one web worker ${Date.now()}`;
  await page.getByLabel('Name', { exact: true }).fill(name);
  await page.getByLabel('How many workers').fill('0');
  await page.getByRole('button', { name: 'Create and start' }).click();
  // At the field it is about, and in the form's words: never a path of the spec.
  const atField = page.locator('#count-problem');
  await atField.waitFor();
  check((await atField.innerText()).includes('must be between 1 and'), `the count's problem: ${await atField.innerText()}`);
  check(await page.getByLabel('How many workers').getAttribute('aria-invalid') === 'true', 'the refused field is not marked');
  const refusal = page.getByRole('alert').filter({ hasText: 'Not accepted: 1 field is marked above.' });
  await refusal.waitFor();
  check(await page.getByText('selection.value').count() === 0, 'the form speaks of selection.value');
  log(`refused at the count: ${(await atField.innerText()).trim()}`);
  await shot(page, '03-run-refused');

  // A real run: terminate one worker of the demo fleet, exactly the one the preview shows.
  await page.getByLabel('How many workers').fill('1');
  check(!(await page.getByLabel('Dry run').isChecked()), 'dry run is on by default');
  check(await page.getByLabel('Stop when the error rate passes a limit').isChecked(), 'no error-rate guardrail by default');
  await page.getByRole('button', { name: 'Preview targets' }).click();
  const preview = page.getByRole('region', { name: 'Target preview' });
  await preview.waitFor();
  const candidates = await preview.locator('li code').allInnerTexts();
  const previewed = await preview.locator('li[data-hit="true"] code').allInnerTexts();
  check(candidates.length >= 2, `the preview lists ${candidates.length} workers in service`);
  check(previewed.length === 1, `the preview would hit ${previewed.length} workers, not 1`);
  log(`preview: ${candidates.join(', ')} in service; would hit ${previewed[0]}`);
  await shot(page, '03-run-preview');
  // A change after the preview makes it stale, and undoing the change makes it current again.
  await page.getByLabel('Never more than (targets)').fill('2');
  await preview.getByText('The form changed after this preview').waitFor();
  await page.getByLabel('Never more than (targets)').fill('1');
  await preview.getByText('The form changed after this preview').waitFor({ state: 'detached' });
  await page.getByRole('button', { name: 'Create and start' }).click();
  await page.waitForURL(/\/experiments\/(?!new$)[^/]+$/);
  const id = page.url().split('/').pop();
  log(`experiment ${id} created and started`);
  await page.getByRole('heading', { name, level: 1 }).waitFor();
  await page.locator('.timeline li').first().waitFor();
  const firstSeen = await page.locator('.timeline li').count();
  await page.locator('.facts .status', { hasText: 'RUNNING' }).or(page.locator('.facts .status', { hasText: 'COMPLETED' })).first().waitFor();
  await shot(page, '04-experiment-running');
  await page.locator('.facts .status', { hasText: 'COMPLETED' }).waitFor({ timeout: 120_000 });
  await page.locator('.timeline li[data-event="ExperimentCompleted"]').waitFor();
  const events = await page.locator('.timeline li').evaluateAll((items) => items.map((li) => li.dataset.event));
  for (const needed of ['ExperimentCreated', 'ExperimentStarted', 'TargetsResolved', 'FailureInjected', 'ExperimentCompleted']) {
    check(events.includes(needed), `the timeline has no ${needed}: ${events.join(', ')}`);
  }
  check(events.length > firstSeen, `the timeline did not grow live (${firstSeen} then ${events.length})`);
  const injected = await page.locator('.timeline li[data-event="FailureInjected"] .what').innerText();
  check(injected.includes(previewed[0]), `the run hit ${injected}, not the previewed ${previewed[0]}`);
  await page.getByText('RECOVERED', { exact: true }).waitFor();
  log(`completed live: ${firstSeen} events when opened, ${events.length} at the end (${events.join(' ')})`);
  await shot(page, '05-experiment-completed');

  // Results: the run just completed, in the timeline, the figures, the charts and the exports.
  const fs = require('node:fs');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Results' }).click();
  await page.getByRole('heading', { name: 'Results', level: 1 }).waitFor();
  const resultRow = page.locator(`table.runs tr[data-id="${id}"]`);
  await resultRow.waitFor({ timeout: 30_000 });
  check((await resultRow.locator('td[data-label="Outcome"]').innerText()).trim() === 'RECOVERED', 'the run is not RECOVERED in the results');
  check(await resultRow.getByRole('link', { name }).count() === 1, 'the timeline does not link the run to its experiment');
  const shownMs = Number((await resultRow.locator('td.recovery').innerText()).replace(/[^0-9]/g, ''));
  check(shownMs > 0, `the results show no recovery time for the run (${shownMs})`);
  const figure = (label) => page.locator('.figure', { has: page.locator('dt', { hasText: new RegExp(`^${label}$`) }) })
    .locator('dd.value').innerText();
  const tenths = Math.floor((shownMs + 50) / 100);
  check(await figure('Runs') === '1', `Runs is ${await figure('Runs')}, not 1`);
  check(await figure('Success rate') === '100.0 %', `the success rate is ${await figure('Success rate')}`);
  check(await figure('MTTR') === `${Math.floor(tenths / 10)}.${tenths % 10} s`, `MTTR ${await figure('MTTR')} is not the run's ${shownMs} ms`);
  for (const chart of ['Success rate per day', 'Recovery time per run', 'Outcomes by target']) {
    await page.getByRole('img', { name: chart, exact: true }).waitFor();
  }
  const bar = page.getByRole('img', { name: 'Recovery time per run' }).locator(`rect[data-key="${id}"]`);
  check(await bar.count() === 1, 'the recovery chart has no bar for the run');
  check(Number(await bar.getAttribute('data-value')) === shownMs, 'the bar is not the recovery time shown');
  check(await page.getByRole('img', { name: 'Outcomes by target' }).locator('rect.o0').count() === 1, 'no RECOVERED segment in the outcomes chart');
  await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();
  await shot(page, '11-results');
  // The range filters: one that ends before it starts is refused, an empty one says so.
  await page.getByLabel('Ended to').fill('2000-01-01');
  await page.getByRole('alert').filter({ hasText: 'ends before it starts' }).waitFor();
  await page.getByLabel('Ended from').fill('2000-01-01');
  await page.getByText('No run ended in this range.').waitFor();
  await page.getByRole('button', { name: 'Last 30 days' }).click();
  await resultRow.waitFor();
  // A run that ends while the page is open appears without a reload (a dry run, left out of
  // the success rate).
  await page.evaluate(() => { window.resultsPageMark = 'still here'; });
  const admin = await tokenOf(process.env.ADMIN_USER, process.env.ADMIN_PASSWORD);
  const dryRun = {
    name: `dry run while watching results ${Date.now()}`, target: { kind: 'LOCAL_FLEET', group: 'web' },
    selection: { mode: 'COUNT', value: 1 }, max_targets: 1, failure: { type: 'TERMINATE' }, dry_run: true,
    guardrails: { stop_conditions: [], max_duration_secs: 600 },
    recovery: { timeout_secs: 60, poll_interval_secs: 1, baseline_samples: 1 },
  };
  const created = await graphql(admin, 'mutation($spec: JSON!) { createExperiment(spec: $spec) { aggregateId } }', { spec: dryRun });
  check(!created.errors, `the dry run was not created: ${JSON.stringify(created.errors)}`);
  const dryId = created.data.createExperiment.aggregateId;
  const dryStarted = await graphql(admin, 'mutation($id: ID!) { startExperiment(id: $id) { version } }', { id: dryId });
  check(!dryStarted.errors, `the dry run did not start: ${JSON.stringify(dryStarted.errors)}`);
  await page.locator(`table.runs tr[data-id="${dryId}"]`).waitFor({ timeout: 30_000 });
  check(await page.evaluate(() => window.resultsPageMark) === 'still here', 'the page was reloaded');
  await page.locator('.figure dd.value').first().filter({ hasText: /^2$/ }).waitFor();
  check(await figure('Success rate') === '100.0 %', `a dry run changed the success rate to ${await figure('Success rate')}`);
  check((await page.locator('.figure dd.note').first().innerText()).includes('1 real, 1 dry'), 'the dry run is not counted apart');
  log(`results: the run recovered in ${shownMs} ms; a dry run that ended meanwhile appeared live`);
  // Exports of exactly these rows, downloaded by the browser.
  const exported = async (label) => {
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: label }).click()]);
    return { file: fs.readFileSync(await download.path()), name: download.suggestedFilename() };
  };
  const csv = await exported('Export CSV');
  check(csv.name.endsWith('.csv'), `the CSV is named ${csv.name}`);
  const lines = csv.file.toString('utf8').split('\r\n');
  check(lines[0] === 'experimentId,name,target,failureType,outcome,recoveryMs,startedAt,endedAt,durationMs,candidates,targetsHit,wouldHit,samples,minHealthy,maxErrorRateBp,maxLatencyP95Ms,availabilityBp',
    `the CSV header is ${lines[0]}`);
  check(lines.length === 4 && lines[3] === '', `the CSV has ${lines.length - 2} rows, not 2`);
  const csvRow = (lines.find((line) => line.startsWith(`${id},`)) || '').split(',');
  check(csvRow[1] === name && csvRow[4] === 'RECOVERED' && Number(csvRow[5]) === shownMs, `the CSV row of the run is ${csvRow.join(',')}`);
  const json = JSON.parse((await exported('Export JSON')).file.toString('utf8'));
  const jsonRun = json.find((r) => r.experimentId === id);
  check(json.length === 2 && jsonRun && jsonRun.name === name && jsonRun.outcome === 'RECOVERED' && jsonRun.recoveryMs === shownMs,
    `the JSON export is ${JSON.stringify(json)}`);
  const dry = json.find((r) => r.outcome === 'DRY_RUN');
  check(dry && dry.targetsHit.length === 0 && dry.wouldHit.length === 1, `a dry run says what it would have hit: ${JSON.stringify(dry)}`);
  const pdf = await exported('Export PDF');
  const pdfText = pdf.file.toString('latin1');
  check(pdf.name.endsWith('.pdf') && pdfText.startsWith('%PDF-1.4') && pdfText.trimEnd().endsWith('%%EOF'), 'the PDF is not a PDF 1.4 file');
  check(pdfText.includes(`(${name}) Tj`), 'the PDF has no row of the run');
  log(`results exported: CSV ${csv.file.length} bytes, JSON ${json.length} runs, PDF ${pdf.file.length} bytes`);
  await page.setViewportSize({ width: 375, height: 800 });
  await page.getByRole('img', { name: 'Recovery time per run' }).waitFor();
  const resultsOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(resultsOverflow <= 0, `the results page is ${resultsOverflow} px wider than a narrow screen`);
  await shot(page, '11-results-narrow');
  await page.setViewportSize({ width: 1280, height: 900 });

  // The list: filtered, searched, linked.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Experiments' }).click();
  await page.getByRole('heading', { name: 'Experiments', level: 1 }).waitFor();
  await page.getByLabel('Status').selectOption('COMPLETED');
  await page.getByLabel('Name contains').fill(name.slice(0, 20));
  const row = page.getByRole('link', { name });
  await row.waitFor();
  await page.getByLabel('Status').selectOption('FAILED');
  await page.getByText('No experiment matches these filters.').waitFor();
  await page.getByLabel('Status').selectOption('');
  await row.waitFor();
  // By target, and by the day it was created (the user's days: UTC, as this user has not
  // chosen a time zone).
  const day = (offset) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10);
  await page.getByLabel('Target', { exact: true }).fill('fleet:elsewhere');
  await page.getByText('No experiment matches these filters.').waitFor();
  // Part of the target, in any case; and the filters are in the address, so a reload keeps them.
  await page.getByLabel('Target', { exact: true }).fill('WEB');
  await row.waitFor();
  check(new URL(page.url()).searchParams.get('target') === 'WEB', `the address: ${page.url()}`);
  await page.reload();
  await row.waitFor();
  check(await page.getByLabel('Target', { exact: true }).inputValue() === 'WEB', 'a reload lost the target filter');
  await page.getByLabel('Created until').fill(day(-1));
  await page.getByText('No experiment matches these filters.').waitFor();
  await page.getByLabel('Created until').fill(day(0));
  await page.getByLabel('Created from').fill(day(0));
  await row.waitFor();
  await shot(page, '06-experiments');
  await page.getByLabel('Target', { exact: true }).fill('');
  await page.getByLabel('Created from').fill('');
  await page.getByLabel('Created until').fill('');
  log('the list filters by status, name, target and creation day');
  // 21 drafts: twenty on the first page, one on the next.
  await page.getByLabel('Name contains').fill('');
  await page.getByLabel('Status').selectOption('DRAFT');
  const rows = page.locator('tbody tr');
  const rowCount = (n) => page.waitForFunction((want) => document.querySelectorAll('tbody tr').length === want, n);
  await rowCount(20);
  check(await page.getByRole('button', { name: 'Previous page' }).isDisabled(), 'a first page with a previous page');
  await page.getByRole('button', { name: 'Next page' }).click();
  await rowCount(1);
  check((await rows.first().innerText()).includes('draft 00'), 'the second page is not the oldest draft');
  check(await page.getByRole('button', { name: 'Next page' }).isDisabled(), 'a last page with a next page');
  await shot(page, '06-experiments-page-2');
  await page.getByRole('button', { name: 'Previous page' }).click();
  await rowCount(20);
  log('the experiments list pages through 21 drafts, 20 at a time');

  // A narrow screen.
  await page.setViewportSize({ width: 375, height: 800 });
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Home' }).click();
  await page.getByRole('heading', { name: 'Home', level: 1 }).waitFor();
  await page.locator('.facts .status', { hasText: 'ALLOWED' }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the page is ${overflow} px wider than a narrow screen`);
  await shot(page, '07-home-narrow');

  await page.setViewportSize({ width: 1280, height: 900 });

  // Run again from the finished run: save its form as a template, then schedule a run from
  // the template through the home page's quick action, and cancel it.
  await page.goto(`${base}/experiments/${id}`);
  await page.getByRole('heading', { name, level: 1 }).waitFor();
  // A finished run opened by its address is finished, not disconnected.
  await page.locator('.badge', { hasText: 'Finished' }).waitFor();
  check(await page.locator('.badge', { hasText: 'Disconnected' }).count() === 0, 'a finished run shows a dropped connection');
  await page.getByRole('button', { name: 'Run again…' }).click();
  await page.getByRole('heading', { name: 'Run an experiment' }).waitFor();
  await page.waitForFunction((want) => document.getElementById('name').value === want, name);
  const templateName = `one web worker ${Date.now()}`;
  await page.getByText('Save this form as a template').click();
  await page.getByLabel('Template name').fill(templateName);
  await page.getByRole('button', { name: 'Save as template' }).click();
  await page.getByRole('status').filter({ hasText: `Saved the template “${templateName}”` }).waitFor();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Home' }).click();
  await page.getByRole('button', { name: `From template “${templateName}”` }).click();
  await page.getByRole('heading', { name: 'Run an experiment' }).waitFor();
  await page.waitForFunction((want) => document.getElementById('name').value === want, name);
  const chosen = await page.getByLabel('Start from a template').evaluate((select) => select.selectedOptions[0].textContent);
  check(chosen === templateName, `the form did not start from the template (${chosen})`);
  const scheduled = `scheduled from a template ${Date.now()}`;
  await page.getByLabel('Name', { exact: true }).fill(scheduled);
  await page.getByLabel('At a time').check();
  const later = new Date(Date.now() + 3_600_000);
  // The user's clocks read UTC.
  await page.getByLabel('Start at (your local time)').fill(later.toISOString().slice(0, 16));
  await shot(page, '07-run-from-template-scheduled');
  await page.getByRole('button', { name: 'Create and schedule' }).click();
  await page.waitForURL(/\/experiments\/(?!new$)[^/]+$/);
  await page.getByRole('heading', { name: scheduled, level: 1 }).waitFor();
  await page.locator('.facts .status', { hasText: 'SCHEDULED' }).waitFor();
  const scheduledAt = await page.locator('.timeline li[data-event="ExperimentScheduled"] .what').innerText();
  check(scheduledAt.includes(later.toISOString().slice(0, 16)), `scheduled for the wrong time: ${scheduledAt}, wanted ${later.toISOString()}`);
  await page.getByRole('button', { name: 'Cancel the schedule' }).click();
  await page.locator('.facts .status', { hasText: 'CANCELLED' }).waitFor();
  await page.locator('.timeline li[data-event="ExperimentCancelled"]').waitFor();
  log(`run again, saved as a template, scheduled from it for ${later.toISOString()} and cancelled`);

  // Stopping a run asks for a reason behind a confirmation, and records it.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Run an experiment' }).click();
  const byHand = `stopped by hand ${Date.now()}`;
  await page.getByLabel('Name', { exact: true }).fill(byHand);
  await page.getByLabel('Failure').selectOption('PAUSE');
  await page.getByLabel('Pause for (seconds)').fill('60');
  await page.getByRole('button', { name: 'Create and start' }).click();
  await page.waitForURL(/\/experiments\/(?!new$)[^/]+$/);
  await page.locator('.timeline li[data-event="FailureInjected"]').waitFor({ timeout: 60_000 });
  await page.getByRole('button', { name: 'Stop and roll back…' }).click();
  await page.getByRole('button', { name: 'Keep it running' }).click();
  check(await page.locator('.facts .status', { hasText: 'RUNNING' }).count() === 1, 'a stop was sent without its confirmation');
  await page.getByRole('button', { name: 'Stop and roll back…' }).click();
  await page.getByLabel('Reason').fill('seen enough');
  await page.getByRole('button', { name: 'Stop now' }).click();
  await page.locator('.facts .status', { hasText: 'STOPPED' }).waitFor({ timeout: 30_000 });
  await page.locator('.facts dd', { hasText: 'seen enough' }).waitFor();
  log('a stop asked for its reason, and recorded it');

  // Halt-all from the dashboard stops a running experiment.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Run an experiment' }).click();
  const paused = `pause until halted ${Date.now()}`;
  await page.getByLabel('Name', { exact: true }).fill(paused);
  await page.getByLabel('Failure').selectOption('PAUSE');
  await page.getByLabel('Pause for (seconds)').fill('60');
  await page.getByRole('button', { name: 'Create and start' }).click();
  await page.waitForURL(/\/experiments\/(?!new$)[^/]+$/);
  await page.locator('.timeline li[data-event="FailureInjected"]').waitFor({ timeout: 60_000 });
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Home' }).click();
  await page.getByRole('region', { name: 'Running now' }).getByRole('link', { name: paused }).waitFor();
  await page.getByRole('button', { name: 'Halt all experiments…' }).click();
  await page.getByLabel('Reason').fill('game day over');
  await page.getByRole('button', { name: 'Halt everything now' }).click();
  await page.locator('.facts .status', { hasText: 'HALTED' }).waitFor();
  await page.getByRole('region', { name: 'Running now' }).getByText('No experiment is running.').waitFor({ timeout: 30_000 });
  await shot(page, '07-home-halted');
  // Every page says so; the run form starts nothing, and creates nothing it cannot launch.
  await page.locator('.halt-banner', { hasText: 'game day over' }).waitFor();
  // The admin is told of it (halts are among the outcomes told by default), once.
  await page.getByRole('button', { name: /^Notifications \(\d+\)$/ }).click();
  const notices = page.getByRole('region', { name: 'Notifications' });
  await notices.locator('li', { hasText: 'HALTED' }).filter({ hasText: 'game day over' }).waitFor();
  await page.getByRole('button', { name: 'Notifications', exact: true }).click();
  check(await notices.count() === 0, 'the notifications did not close');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Run an experiment' }).click();
  await page.locator('.halt-banner', { hasText: 'game day over' }).waitFor();
  const refused = `refused while halted ${Date.now()}`;
  await page.getByLabel('Name', { exact: true }).fill(refused);
  check(await page.getByRole('button', { name: 'Create and start' }).isDisabled(), 'the run form offers a start while halted');
  await page.getByLabel('At a time').check();
  await page.getByLabel('Start at (your local time)').fill('2020-01-01T10:00');
  await page.getByRole('button', { name: 'Create and schedule' }).click();
  await page.getByRole('alert').filter({ hasText: 'Start at is in the past' }).waitFor();
  const leftBehind = await graphql(await tokenOf(process.env.ADMIN_USER, process.env.ADMIN_PASSWORD),
    'query($s: String) { experiments(filter: { search: $s }) { items { id } } }', { s: refused });
  check(leftBehind.data.experiments.items.length === 0, `a refused run left a draft: ${JSON.stringify(leftBehind)}`);
  await shot(page, '07-run-form-halted');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Home' }).click();
  await page.getByRole('region', { name: 'Recent experiments' }).getByRole('link', { name: paused }).click();
  await page.locator('.facts .status', { hasText: 'STOPPED' }).waitFor({ timeout: 30_000 });
  await page.locator('.timeline li[data-event="ExperimentStopped"]').waitFor();
  log('halt-all from the dashboard stopped the running experiment');
  await shot(page, '07-experiment-stopped-by-halt');
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Home' }).click();
  await page.getByRole('button', { name: 'Lift the halt' }).click();
  await page.locator('.facts .status', { hasText: 'ALLOWED' }).waitFor();
  await page.locator('.halt-banner').waitFor({ state: 'detached' });

  // The server issues tokens that live six seconds: the page has been refreshing them.
  check((await token()) !== firstToken, 'the access token was never refreshed');
  log('the access token was refreshed before it expired, and the pages kept working');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('User name').waitFor();
  check(await page.evaluate(() => sessionStorage.getItem('chaos.session')) === null, 'signing out left the session in the tab');
  await context.close();
  return { id, name };
}

async function asViewer(browser, experiment) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  watch(page, 'viewer');
  await page.goto(`${base}/`);
  await signIn(page, process.env.VIEWER_USER, process.env.VIEWER_PASSWORD);
  await page.locator('.facts .status', { hasText: 'ALLOWED' }).waitFor();
  await page.getByRole('link', { name: experiment.name }).first().waitFor();
  const forbidden = /^(Halt all experiments…|Run an experiment|Create and start|Start|Stop and roll back…|Lift the halt|Run again…|Copy into a new experiment…|Cancel the schedule)$/;
  check(await page.getByRole('button', { name: forbidden }).count() === 0, 'a viewer sees a control they may not use');
  check(await page.getByRole('link', { name: forbidden }).count() === 0, 'a viewer sees a link to running experiments');
  check(await page.getByRole('heading', { name: 'Quick actions' }).count() === 0, 'a viewer sees quick actions that run experiments');
  await shot(page, '08-home-viewer');

  await page.getByRole('link', { name: experiment.name }).first().click();
  await page.getByRole('heading', { name: experiment.name, level: 1 }).waitFor();
  await page.locator('.timeline li[data-event="ExperimentCompleted"]').waitFor();
  check(await page.getByRole('button').filter({ hasText: /Start|Stop/ }).count() === 0, 'a viewer sees start or stop');
  await shot(page, '09-experiment-viewer');

  // Not shown, and refused anyway: the viewer's own token, straight to the API.
  const token = await tokenOf(process.env.VIEWER_USER, process.env.VIEWER_PASSWORD);
  const spec = {
    name: 'a viewer tries', target: { kind: 'LOCAL_FLEET', group: 'web' },
    selection: { mode: 'COUNT', value: 1 }, max_targets: 1, failure: { type: 'TERMINATE' },
    guardrails: { stop_conditions: [], max_duration_secs: 60 },
    recovery: { timeout_secs: 30, poll_interval_secs: 1, baseline_samples: 1 },
  };
  const attempts = {
    run: ['mutation($spec: JSON!) { createExperiment(spec: $spec) { aggregateId } }', { spec }],
    start: ['mutation($id: ID!) { startExperiment(id: $id) { version } }', { id: experiment.id }],
    stop: ['mutation($id: ID!) { stopExperiment(id: $id, reason: "a viewer") { version } }', { id: experiment.id }],
    halt: ['mutation { haltAll(reason: "a viewer") { stopped } }', {}],
  };
  const refused = {};
  for (const [what, [query, variables]] of Object.entries(attempts)) {
    const answer = await graphql(token, query, variables);
    refused[what] = answer.errors?.[0]?.extensions?.code ?? `accepted: ${JSON.stringify(answer.data)}`;
  }
  for (const [what, code] of Object.entries(refused)) {
    check(code === 'FORBIDDEN', `the API let a viewer ${what}: ${code}`);
  }
  log(`the API refuses a viewer's run, start, stop and halt: ${JSON.stringify(refused)}`);

  await page.goto(`${base}/experiments/new`);
  await page.getByText('Your role may not run experiments.').waitFor();
  check(await page.getByRole('button', { name: 'Create and start' }).count() === 0, 'a viewer sees the run form');
  await shot(page, '10-run-viewer');

  // A viewer reads the results too.
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Results' }).click();
  await page.getByRole('heading', { name: 'Results', level: 1 }).waitFor();
  await page.locator('table.runs').getByRole('link', { name: experiment.name }).waitFor();
  await page.getByRole('img', { name: 'Recovery time per run' }).waitFor();
  check(await page.getByRole('button', { name: 'Export CSV' }).isVisible(), 'a viewer cannot export the results');
  await shot(page, '12-results-viewer');
  await context.close();
}

run(async (browser) => {
  const experiment = await asAdmin(browser);
  await asViewer(browser, experiment);
});

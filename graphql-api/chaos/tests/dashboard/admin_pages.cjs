// The audit log and settings pages in headless Debian chromium, driven by playwright-core (never
// a downloaded browser). Run by graphql-api/tests/dashboard.rs against a `chaos serve` it
// started over a store with 21 drafts:
//   BASE_URL, ADMIN_USER, ADMIN_PASSWORD, VIEWER_USER, VIEWER_PASSWORD, ARTIFACTS (screenshots),
//   CHROMIUM (the browser), PLAYWRIGHT_NODE_MODULES (where playwright-core is installed).
// Prints one line per step; exits non-zero with the reason on the first failure.
'use strict';

const { base, check, graphql, log, shot, watch, signIn, run } = require('./harness.cjs');

// Users of the embedded identity provider act as `user:<name>`.
const adminActor = `user:${process.env.ADMIN_USER}`;

const codeOf = (answer) => answer.errors?.[0]?.extensions?.code;

const nav = (page, name) => page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true }).click();

const rowCount = (page, n) =>
  page.waitForFunction((want) => document.querySelectorAll('table.audit tbody tr').length === want, n);

// The text of one column of every row of the audit table.
const column = (page, label) =>
  page.locator(`table.audit td[data-label="${label}"]`).evaluateAll((cells) => cells.map((c) => c.innerText.trim()));

async function applyFilters(page, filters) {
  for (const [label, value] of Object.entries(filters)) {
    await page.getByLabel(label, { exact: true }).fill(value);
  }
  await page.getByRole('button', { name: 'Apply filters' }).click();
}

async function auditLog(page, token) {
  await nav(page, 'Audit log');
  await page.getByRole('heading', { name: 'Audit log', level: 1 }).waitFor();
  const intact = page.getByRole('status').filter({ hasText: 'Chain intact' });
  await intact.waitFor();
  check(/Chain intact: 2\d streams, \d+ events, checked at \d{4}-/.test(await intact.innerText()), `chain status: ${await intact.innerText()}`);
  await page.getByRole('heading', { name: 'Hash chain of the whole log' }).waitFor();
  await page.getByRole('status').filter({ hasText: 'Live' }).waitFor();
  // 21 drafts and the platform's events: a full first page, newest first.
  await rowCount(page, 20);
  check(await page.getByRole('button', { name: 'Previous page' }).isDisabled(), 'a first page with a previous page');
  const firstPage = await column(page, 'When');
  check(firstPage.join() === [...firstPage].sort().reverse().join(), `entries are not newest first: ${firstPage}`);
  const hash = page.locator('table.audit td[data-label="Hash"] summary').first();
  check(/^[0-9a-f]{64}$/.test(await hash.getAttribute('title')), 'a shortened hash without its full value');
  log(`the audit log: ${await intact.innerText()}`);
  await shot(page, '20-audit');

  await page.getByRole('button', { name: 'Next page' }).click();
  await page.waitForFunction(() => document.querySelectorAll('table.audit tbody tr').length < 20);
  const secondPage = await column(page, 'When');
  check(secondPage[0] <= firstPage[firstPage.length - 1], 'the next page does not follow the first');
  await page.getByRole('button', { name: 'Previous page' }).click();
  await rowCount(page, 20);
  log(`paged: 20 entries, then ${secondPage.length}, then back`);

  // By experiment: its own stream, and its chain alone.
  const link = page.locator('table.audit td[data-label="Stream"] a').first();
  const id = (await link.getAttribute('href')).split('/').pop();
  await applyFilters(page, { 'Experiment id': id });
  await page.getByRole('heading', { name: `Hash chain of experiment ${id}` }).waitFor();
  await page.getByRole('status').filter({ hasText: /Chain intact: 1 streams, 1 events/ }).waitFor();
  await rowCount(page, 1);
  check((await column(page, 'Stream')).every((s) => s === id), 'an entry of another stream');
  // Live: the draft cancelled from a script appears at the top of the first page.
  const cancelled = await graphql(token, 'mutation($id: ID!) { cancelExperiment(id: $id, reason: "not needed") { version } }', { id });
  check(!cancelled.errors, `cancel: ${JSON.stringify(cancelled)}`);
  await page.locator('table.audit td[data-label="Event"]', { hasText: 'ExperimentCancelled' }).waitFor({ timeout: 15_000 });
  await rowCount(page, 2);
  log('a new entry appeared live');
  await page.getByRole('button', { name: 'Verify again' }).click();
  await page.getByRole('status').filter({ hasText: /Chain intact: 1 streams, 2 events/ }).waitFor();
  await shot(page, '21-audit-filtered');

  // By actor, and by time.
  await page.getByRole('button', { name: 'Clear' }).click();
  await rowCount(page, 20);
  await applyFilters(page, { Actor: 'nobody-at-all' });
  await page.getByText('No entry matches an actor containing “nobody-at-all”.').waitFor();
  await applyFilters(page, { Actor: adminActor });
  await page.locator('table.audit tbody tr').first().waitFor();
  const actors = await column(page, 'Actor');
  check(actors.length >= 1 && actors.every((a) => a.startsWith(`${adminActor} ADMIN · `)), `actors: ${actors}`);
  // Part of a name, in any case, finds it.
  const part = adminActor.slice('user:'.length).toUpperCase();
  await applyFilters(page, { Actor: part });
  await page.waitForFunction((n) => document.querySelectorAll('table.audit tbody tr').length === n, actors.length);
  const found = await column(page, 'Actor');
  check(found.every((a) => a.toUpperCase().includes(part)), `actors for ${part}: ${found}`);
  // The filter is in the address: a reload, and Back from another page, keep it.
  check(new URL(page.url()).searchParams.get('actor') === part, `the address: ${page.url()}`);
  await page.reload();
  await page.waitForFunction((n) => document.querySelectorAll('table.audit tbody tr').length === n, actors.length);
  check(await page.getByLabel('Actor', { exact: true }).inputValue() === part, 'a reload lost the actor filter');
  await nav(page, 'Home');
  await page.getByRole('heading', { name: 'Home', level: 1 }).waitFor();
  await page.goBack();
  await page.waitForFunction((n) => document.querySelectorAll('table.audit tbody tr').length === n, actors.length);
  check(await page.getByLabel('Actor', { exact: true }).inputValue() === part, 'Back lost the actor filter');
  await applyFilters(page, { Actor: '', 'Recorded before (your time)': '2000-01-01T00:00' });
  await page.getByText('No entry matches this time range.').waitFor();
  await applyFilters(page, { 'Recorded before (your time)': '', 'Recorded from (your time)': '2000-01-01T00:00' });
  await rowCount(page, 20);
  log('filtered by experiment, actor and time');
}

async function settingsAsAdmin(page) {
  await nav(page, 'Settings');
  await page.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
  const profile = page.getByRole('region', { name: 'Profile' });
  await profile.getByText(adminActor, { exact: true }).waitFor();
  await profile.getByText('ADMIN', { exact: true }).waitFor();

  // Preferences: the API's refusal in its words, then saved, and still there after a reload.
  await page.getByLabel('Rows per page (10 to 200)').fill('5');
  await page.getByRole('button', { name: 'Save preferences' }).click();
  await profile.getByRole('alert').filter({ hasText: 'pageSize: must be between 10 and 200' }).waitFor();
  await page.getByLabel('Rows per page (10 to 200)').fill('50');
  await page.getByLabel('Time zone (IANA)').fill('Europe/Berlin');
  await page.getByLabel('FAILED', { exact: true }).check();
  await page.getByRole('button', { name: 'Save preferences' }).click();
  await profile.getByRole('status').filter({ hasText: 'Preferences saved.' }).waitFor();
  await page.reload();
  await page.getByRole('heading', { name: 'Settings', level: 1 }).waitFor();
  await page.waitForFunction(() => document.getElementById('time-zone')?.value === 'Europe/Berlin');
  check(await page.getByLabel('Rows per page (10 to 200)').inputValue() === '50', 'the page size was not kept');
  check(await page.getByLabel('FAILED', { exact: true }).isChecked(), 'FAILED was not kept');
  log('preferences saved and read back after a reload');

  // Webhooks: added, then removed after a confirmation.
  const hooks = page.getByRole('region', { name: 'Webhooks' });
  await hooks.getByText('No webhook yet.').waitFor();
  const hookUrl = 'https://hooks.example/chaos-hook';
  await page.getByLabel('URL', { exact: true }).fill(hookUrl);
  await page.getByLabel(/^Event types/).fill('ExperimentCompleted, ExperimentFailed');
  await page.getByRole('button', { name: 'Add webhook' }).click();
  const hookRow = hooks.getByRole('row').filter({ hasText: hookUrl });
  await hookRow.waitFor();
  check((await hookRow.innerText()).includes('ExperimentCompleted, ExperimentFailed'), 'the webhook lost its events');
  // Its signing secret is shown once, until dismissed.
  const hookSecret = hooks.locator('[data-secret]');
  await hookSecret.waitFor();
  check(/^whsec_[0-9a-f]{64}$/.test((await hookSecret.innerText()).trim()), `not a signing secret: ${await hookSecret.innerText()}`);
  const firstSecret = (await hookSecret.innerText()).trim();
  await hooks.getByRole('button', { name: 'I have copied it' }).click();
  check(await hooks.locator('[data-secret]').count() === 0, 'the secret stayed on the page');
  // A new secret, issued on request, is shown once too, and named by its fingerprint.
  await page.getByLabel('Webhook', { exact: true }).selectOption({ index: 1 });
  await page.getByRole('button', { name: 'Issue a new secret' }).click();
  await hooks.getByText('the old one signs nothing more').waitFor();
  const rotated = hooks.locator('[data-secret]');
  await rotated.waitFor();
  const newSecret = (await rotated.innerText()).trim();
  check(/^whsec_[0-9a-f]{64}$/.test(newSecret) && newSecret !== firstSecret, `not a new secret: ${newSecret}`);
  check(/fingerprint, [0-9a-f]{16}\./.test(await hooks.locator('.secret').innerText()), 'no fingerprint shown');
  await hooks.getByRole('button', { name: 'I have copied it' }).click();
  // Declined, nothing happens; confirmed, it is gone.
  const asked = [];
  page.once('dialog', (dialog) => { asked.push(dialog.message()); dialog.dismiss(); });
  await hookRow.getByRole('button', { name: 'Remove' }).click();
  await page.waitForTimeout(300);
  check(await hookRow.isVisible(), 'a declined removal removed the webhook');
  page.once('dialog', (dialog) => { asked.push(dialog.message()); dialog.accept(); });
  await hookRow.getByRole('button', { name: 'Remove' }).click();
  await hooks.getByText('No webhook yet.').waitFor();
  check(asked.length === 2 && asked.every((q) => q === `Remove the webhook to ${hookUrl}?`), `asked: ${asked}`);
  log('a webhook added and removed');

  // API keys: the secret shown once, working until it is revoked.
  const keys = page.getByRole('region', { name: 'API keys' });
  await keys.getByText('No API key in force.').waitFor();
  await page.getByLabel('Name', { exact: true }).fill('ci pipeline');
  await page.getByLabel('Role', { exact: true }).selectOption('OPERATOR');
  await page.getByRole('button', { name: 'Create API key' }).click();
  const secretBox = keys.locator('code[data-secret]');
  await secretBox.waitFor();
  const secret = (await secretBox.innerText()).trim();
  check(secret.length >= 20, `a short secret: ${secret}`);
  await keys.getByText('it cannot be shown again').waitFor();
  const keyRow = keys.getByRole('row').filter({ hasText: 'ci pipeline' });
  await keyRow.waitFor();
  check(!(await keyRow.innerText()).includes(secret), 'the list shows the secret');
  await shot(page, '23-settings-apikey-created');
  const me = await graphql(secret, '{ me { id role } }');
  check(me.data?.me?.role === 'OPERATOR' && me.data.me.id.startsWith('key:'), `the new key does not work: ${JSON.stringify(me)}`);
  await keys.getByRole('button', { name: 'I have copied it' }).click();
  check(!(await page.content()).includes(secret), 'the secret is still on the page');
  page.once('dialog', (dialog) => dialog.accept());
  await keyRow.getByRole('button', { name: 'Revoke' }).click();
  await keys.getByText('No API key in force.').waitFor();
  const refused = await graphql(secret, '{ me { id } }');
  check(codeOf(refused) === 'UNAUTHENTICATED', `a revoked key still works: ${JSON.stringify(refused)}`);
  log(`an API key worked as ${me.data.me.id} (OPERATOR) and was refused once revoked`);

  // The platform's limits.
  const config = page.getByRole('region', { name: 'System configuration' });
  await page.getByLabel('Most targets per run').fill('7');
  await page.getByRole('button', { name: 'Save configuration' }).click();
  await config.getByRole('status').filter({ hasText: 'Configuration saved.' }).waitFor();
  await page.reload();
  await page.waitForFunction(() => document.getElementById('max-targets')?.value === '7');
  log('the configuration changed');
  await shot(page, '22-settings-admin');

  // Every one of those actions is in the audit log, under the admin's name.
  await nav(page, 'Audit log');
  await applyFilters(page, { Actor: adminActor });
  for (const event of ['WebhookAdded', 'WebhookSecretIssued', 'WebhookRemoved', 'ApiKeyCreated', 'ApiKeyRevoked', 'ConfigUpdated']) {
    await page.locator('table.audit td[data-label="Event"]', { hasText: event }).first().waitFor();
  }
  log('the audit log holds the admin\'s changes');
}

async function asAdmin(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  watch(page, 'admin');
  await page.goto(`${base}/`);
  await signIn(page, process.env.ADMIN_USER, process.env.ADMIN_PASSWORD);
  const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('chaos.session')).access_token);
  await auditLog(page, token);
  await settingsAsAdmin(page);

  // The preferences saved above apply: pages of 50 rows (fewer entries than that: one page),
  // and times on Berlin's clocks.
  await page.getByRole('button', { name: 'Clear' }).click();
  const all = await graphql(token, 'query { auditLog(filter: {}, first: 50) { sequence } }');
  const entries = all.data.auditLog.length;
  check(entries > 20, `only ${entries} audit entries to page through`);
  await rowCount(page, entries);
  const times = await column(page, 'When');
  check(times.every((t) => /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d CES?T$/.test(t)), `times not on Berlin's clocks: ${times.slice(0, 3)}`);
  log(`the preferences apply: ${entries} rows on a page, times like ${times[0]}`);
  await page.setViewportSize({ width: 375, height: 800 });
  await rowCount(page, entries);
  await page.getByRole('status').filter({ hasText: 'Chain intact' }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the audit log is ${overflow} px wider than a narrow screen`);
  await shot(page, '25-audit-narrow');
  await nav(page, 'Settings');
  await page.getByRole('button', { name: 'Save configuration' }).waitFor();
  const settingsOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(settingsOverflow <= 0, `the settings are ${settingsOverflow} px wider than a narrow screen`);
  log('both pages fit a 375 px screen');
  await context.close();
}

async function asViewer(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  watch(page, 'viewer');
  await page.goto(`${base}/`);
  await signIn(page, process.env.VIEWER_USER, process.env.VIEWER_PASSWORD);
  await nav(page, 'Audit log');
  await page.getByRole('status').filter({ hasText: 'Chain intact' }).waitFor();
  await rowCount(page, 20);
  // Another user's preferences are theirs: this one sees UTC.
  check((await column(page, 'When')).every((t) => t.endsWith(' UTC')), 'a viewer sees times in another user\'s time zone');

  await nav(page, 'Settings');
  await page.getByRole('region', { name: 'Profile' }).getByText('VIEWER', { exact: true }).waitFor();
  await page.getByRole('button', { name: 'Save preferences' }).waitFor();
  const config = page.getByRole('region', { name: 'System configuration' });
  await config.getByText('Most targets per run').waitFor();
  await config.getByText('7', { exact: true }).waitFor();
  check(await page.getByRole('heading', { name: /Webhooks|API keys/ }).count() === 0, 'a viewer sees the webhooks or API keys');
  const forbidden = /^(Add webhook|Create API key|Save configuration|Remove|Revoke)$/;
  check(await page.getByRole('button', { name: forbidden }).count() === 0, 'a viewer sees a control they may not use');
  check(await page.locator('#max-targets').count() === 0, 'a viewer can edit the configuration');
  await shot(page, '24-settings-viewer');

  // The API refuses the viewer's own token too.
  const token = await page.evaluate(() => JSON.parse(sessionStorage.getItem('chaos.session')).access_token);
  for (const [what, query] of [
    ['addWebhook', 'mutation { addWebhook(url: "http://127.0.0.1:9/x") { version } }'],
    ['createApiKey', 'mutation { createApiKey(name: "mine", role: "ADMIN") { secret } }'],
    ['updateConfig', 'mutation { updateConfig(maxTargetsPerRun: 99, maxDurationSecs: 99) { version } }'],
  ]) {
    const answer = await graphql(token, query);
    check(codeOf(answer) === 'FORBIDDEN', `${what} as a viewer: ${JSON.stringify(answer)}`);
  }
  log('a viewer sees the audit log and settings without admin controls; the API refuses them FORBIDDEN');
  await context.close();
}

run(async (browser) => {
  await asAdmin(browser);
  await asViewer(browser);
});

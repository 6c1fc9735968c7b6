// An auditor (a viewer) opens the audit log of a store in which one recorded event was
// changed after the fact: the page must say, as an alert, that the chain is broken, and name
// the stream and sequence (TAMPERED_STREAM, sequence 1). Run by graphql-api/tests/dashboard.rs;
// environment as harness.cjs, plus VIEWER_USER and VIEWER_PASSWORD.
'use strict';

const { base, check, log, shot, watch, signIn, run } = require('./harness.cjs');

run(async (browser) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  watch(page, 'auditor');
  await page.goto(`${base}/audit`);
  await signIn(page, process.env.VIEWER_USER, process.env.VIEWER_PASSWORD, { home: false });
  await page.getByRole('heading', { name: 'Audit log', level: 1 }).waitFor();
  const broken = page.getByRole('alert').filter({ hasText: 'Chain BROKEN' });
  await broken.waitFor();
  const text = await broken.innerText();
  const named = `Experiment/${process.env.TAMPERED_STREAM} at sequence 1`;
  check(text.includes(named), `the alert does not name ${named}: ${text}`);
  await shot(page, '26-audit-chain-broken');
  log(`an auditor is told the chain is broken: ${text.replace(/\s+/g, ' ').trim()}`);
  await context.close();
});

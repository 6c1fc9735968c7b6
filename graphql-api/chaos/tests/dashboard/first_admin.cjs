// A new store's first administrator, made from the link the server printed in its console.
// Run by graphql-api/tests/dashboard.rs against a `chaos serve` on a store with no user:
//   BASE_URL, FIRST_ADMIN_LINK (the printed link), ADMIN_USER, ADMIN_PASSWORD, ARTIFACTS,
//   CHROMIUM, PLAYWRIGHT_NODE_MODULES.
// Prints one line per step; exits non-zero with the reason on the first failure.
'use strict';

const { base, check, log, shot, watch, signIn, run } = require('./harness.cjs');

run(async (browser) => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const first = await context.newPage();
  watch(first, 'first admin, without the link');

  // Without the link, the page asks for the code; a wrong one is refused in words.
  await first.goto(`${base}/`);
  await first.getByRole('heading', { name: 'Create the first administrator' }).waitFor();
  check(await first.getByLabel('Set-up code').inputValue() === '', 'a code was filled in from nowhere');
  await first.getByLabel('Set-up code').fill('0123456789abcdef0123456789abcdef');
  await first.getByLabel('Your user name').fill(process.env.ADMIN_USER);
  await first.getByLabel('Password', { exact: true }).fill(process.env.ADMIN_PASSWORD);
  await first.getByLabel('The password again').fill(process.env.ADMIN_PASSWORD);
  await first.getByRole('button', { name: 'Create and sign in' }).click();
  await first.getByRole('alert').filter({ hasText: 'That set-up code is wrong or was used already.' }).waitFor();
  await first.close();
  log('a wrong set-up code is refused');

  // The printed link, opened as a console's link opens (a new tab), fills the code in; two
  // different passwords are caught on the page.
  const page = await context.newPage();
  watch(page, 'first admin');
  await page.goto(process.env.FIRST_ADMIN_LINK);
  await page.getByRole('heading', { name: 'Create the first administrator' }).waitFor();
  const code = process.env.FIRST_ADMIN_LINK.split('#first-admin=')[1];
  check(await page.getByLabel('Set-up code').inputValue() === code, 'the link did not fill the code in');
  await shot(page, '30-first-admin');
  await page.getByLabel('Your user name').fill(process.env.ADMIN_USER);
  await page.getByLabel('Password', { exact: true }).fill(process.env.ADMIN_PASSWORD);
  await page.getByLabel('The password again').fill(`${process.env.ADMIN_PASSWORD}!`);
  await page.getByRole('button', { name: 'Create and sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'The two passwords differ.' }).waitFor();
  await page.getByLabel('The password again').fill(process.env.ADMIN_PASSWORD);
  await page.getByRole('button', { name: 'Create and sign in' }).click();
  await page.getByRole('heading', { name: 'Home', level: 1 }).waitFor();
  check(!page.url().includes('first-admin'), `the spent code stayed in the address: ${page.url()}`);
  log('the first administrator is made and signed in; the code left the address bar');

  // From now on the page is an ordinary sign-in page, and the administrator signs in there.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByLabel('User name').waitFor();
  check(await page.getByRole('heading', { name: 'Create the first administrator' }).count() === 0,
    'the set-up form is still offered after the set-up');
  await signIn(page, process.env.ADMIN_USER, process.env.ADMIN_PASSWORD);
  log('signed out and in again with the password chosen');
  await context.close();
});

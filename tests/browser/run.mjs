// Drives headless Chromium (Debian's /usr/bin/chromium) through bulletin serve's pages:
//   node run.mjs BASE_URL UNSUBSCRIBE_PATH SCREENSHOT_DIR
// 1. opens the unsubscribe link, checks the page, screenshots it, presses the button and
//    waits for the done page;
// 2. opens the archive index and a campaign page at 375 px wide and checks that neither
//    scrolls sideways; screenshots the index.
// Any failure (including a console error, e.g. a style the Content-Security-Policy blocked)
// exits non-zero with the reason; success prints one JSON line.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, unsubscribePath, shots] = process.argv.slice(2);
if (!base || !unsubscribePath || !shots) {
  console.error('usage: node run.mjs BASE_URL UNSUBSCRIBE_PATH SCREENSHOT_DIR');
  process.exit(2);
}
const profile = mkdtempSync(join(tmpdir(), 'bulletin-chromium-'));
// A fresh profile per run (playwright passes it as --user-data-dir); headless adds --headless.
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run',
  ],
  viewport: { width: 375, height: 740 },
  javaScriptEnabled: false,
});
const fail = (why) => { throw new Error(why); };
const result = {};
try {
  const errors = [];
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error' && /Content.Security.Policy/i.test(m.text())) errors.push(m.text()); });

  // The confirmation page works without JavaScript (it is off in this context).
  const res = await page.goto(base + unsubscribePath);
  if (res.status() !== 200) fail(`confirmation page: HTTP ${res.status()}`);
  if ((await page.getAttribute('html', 'lang')) !== 'en') fail('no lang on the confirmation page');
  const button = page.getByRole('button', { name: 'Unsubscribe' });
  if ((await button.count()) !== 1) fail('not exactly one Unsubscribe button');
  const brand = await button.evaluate((b) => getComputedStyle(b).backgroundColor);
  if (brand === 'rgba(0, 0, 0, 0)') fail('the stylesheet did not apply (blocked by the CSP?)');
  await page.screenshot({ path: join(shots, 'unsubscribe-confirm.png') });
  await button.click();
  await page.getByRole('heading', { name: 'You are unsubscribed' }).waitFor();
  if ((await page.getByRole('button', { name: /Undo/ }).count()) !== 1) fail('no undo button on the done page');
  result.done = await page.textContent('h1');

  // The archive at phone width.
  const wide = async (url) => {
    const r = await page.goto(url);
    if (r.status() !== 200) fail(`${url}: HTTP ${r.status()}`);
    return page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
  };
  result.index_overflow = await wide(base + '/');
  if (result.index_overflow > 0) fail(`the archive index scrolls sideways by ${result.index_overflow}px at 375px`);
  await page.screenshot({ path: join(shots, 'archive-index.png'), fullPage: true });
  const first = await page.locator('li a').first().getAttribute('href');
  if (!first) fail('the archive index lists no issue');
  result.issue_overflow = await wide(new URL(first, base + '/').href);
  if (result.issue_overflow > 0) fail(`the issue page scrolls sideways by ${result.issue_overflow}px at 375px`);
  result.issue_title = await page.title();
  if (errors.length) fail(`console errors: ${errors.join(' | ')}`);
  console.log(JSON.stringify(result));
} catch (e) {
  console.error(`browser test failed: ${e.message}`);
  process.exitCode = 1;
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}

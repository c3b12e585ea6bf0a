// The live preview as a user sees it, in headless Chromium: loads the page that
// `bulletin preview --serve` serves, edits the newsletter and waits for the new text without
// reloading; renders the email at 375 and 600 px, light and dark, into docs/ (no horizontal
// scroll at 375 px); checks the HTML against caniemail's data (doiuse-email).
//
// Also: the language picker switches to the Spanish variant; the dark-mode pane shows what
// Chromium shows with prefers-color-scheme: dark emulated; a list edit reaches the page.
//
// node preview.mjs URL NEWSLETTER_FILE LIST_FILE DOCS_DIR
// Prints one JSON object; exits non-zero on the first failed expectation.
import { chromium } from 'playwright-core';
import { doIUseEmail } from 'doiuse-email';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, newsletter, list, docs] = process.argv.slice(2);
const fail = (why) => { console.error('FAIL: ' + why); process.exit(1); };

// Features caniemail lists as unsupported somewhere among the clients we promise, that the
// layout uses on purpose with a fallback; each is explained in README ("Email clients").
const EXPECTED = new Set([
  '@media', 'Attribute selector', 'Class selector', 'Descendant combinator', 'Type selector',
  'role attribute', 'aria-hidden attribute', 'word-break', 'overflow', 'opacity',
  'border-radius', '<body> element', 'display:none', 'table-layout',
]);
const CLIENTS = ['gmail.*', 'outlook.*', 'apple-mail.*', 'yahoo.*'];

const profile = mkdtempSync(join(tmpdir(), 'bulletin-chromium-'));
// A fresh profile each run (Playwright passes it as --user-data-dir).
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--no-first-run'],
  viewport: { width: 1500, height: 1000 },
});
const result = {};
try {
  const page = await browser.newPage();
  await page.goto(url);
  await page.waitForFunction(() => document.getElementById('subject').textContent.length > 0);
  result.subject = await page.textContent('#subject');
  result.preheader = await page.textContent('#preheader');
  const frameText = (id) => page.evaluate((id) => document.getElementById(id).contentDocument?.body?.innerText ?? '', id);
  await page.waitForFunction(() => (document.getElementById('desktop').contentDocument?.body?.innerText ?? '').includes('First version'));
  // The phone pane: nothing wider than 375 px.
  result.mobileScrollWidth = await page.evaluate(() => document.getElementById('mobile').contentDocument.documentElement.scrollWidth);
  if (result.mobileScrollWidth > 375) fail(`the 375 px pane scrolls sideways: ${result.mobileScrollWidth} px`);
  await page.screenshot({ path: join(docs, 'live-preview.png') });

  // Edit the newsletter; the page must show it by itself.
  await page.evaluate(() => { window.notReloaded = true; });
  const source = readFileSync(newsletter, 'utf8');
  const started = Date.now();
  writeFileSync(newsletter, source.replace('First version', 'Edited in the editor'));
  await page.waitForFunction(
    () => (document.getElementById('desktop').contentDocument?.body?.innerText ?? '').includes('Edited in the editor'),
    null, { timeout: 5000 });
  result.updateMs = Date.now() - started;
  if (!(await page.evaluate(() => window.notReloaded === true))) fail('the page was reloaded instead of updated');
  result.editedText = (await frameText('mobile')).includes('Edited in the editor');

  // A list edit reaches the page too.
  writeFileSync(list, readFileSync(list, 'utf8').replace(',Ana\n', ',Anabel\n'));
  await page.waitForFunction(() => document.getElementById('subject').textContent.startsWith('Hello Anabel'),
    null, { timeout: 5000 });
  result.listEdit = await page.textContent('#subject');

  // The language picker: shown once there is a variant; picking Spanish renders it.
  const desktopText = () => frameText('desktop');
  if (!(await page.isVisible('#lang'))) fail('no language picker although n.es.md exists');
  result.languages = await page.$$eval('#lang option', (os) => os.map((o) => o.value));
  await page.selectOption('#lang', 'es');
  await page.waitForFunction(() => (document.getElementById('desktop').contentDocument?.body?.innerText ?? '').includes('Versión en español'),
    null, { timeout: 5000 });
  result.spanishSubject = await page.textContent('#subject');
  result.spanishLang = await page.evaluate(() => document.getElementById('mobile').contentDocument.documentElement.lang);
  await page.selectOption('#lang', '');
  await page.waitForFunction(() => (document.getElementById('desktop').contentDocument?.body?.innerText ?? '').includes('Edited in the editor'),
    null, { timeout: 5000 });
  result.backToOwn = (await desktopText()).includes('Edited in the editor');

  // The dark pane is the message as a client honouring prefers-color-scheme: dark shows it:
  // the same computed colours as the email itself in a 375 px page with dark emulated.
  const SELECTORS = ['.email', '.wrapper', '.container', '.content', '.content h1', '.content p a',
    '.caption', '.md-table td', '.footer', '.footer a', '.button-link'];
  const colours = (doc, selectors) => Object.fromEntries(selectors.map((sel) => {
    const el = doc.querySelector(sel);
    if (!el) return [sel, null];
    const cs = doc.defaultView.getComputedStyle(el);
    return [sel, [cs.color, cs.backgroundColor, cs.borderTopColor].join(' / ')];
  }));
  result.darkPane = await page.evaluate(([f, sels]) =>
    (new Function('return ' + f))()(document.getElementById('dark').contentDocument, sels), [colours.toString(), SELECTORS]);
  const lightPane = await page.evaluate(([f, sels]) =>
    (new Function('return ' + f))()(document.getElementById('mobile').contentDocument, sels), [colours.toString(), SELECTORS]);
  {
    const p = await browser.newPage();
    await p.setViewportSize({ width: 375, height: 800 });
    await p.emulateMedia({ colorScheme: 'dark' });
    await p.goto(url + 'email', { waitUntil: 'load' });
    result.darkEmulated = await p.evaluate(([f, sels]) =>
      (new Function('return ' + f))()(document, sels), [colours.toString(), SELECTORS]);
    await p.close();
  }
  for (const sel of SELECTORS) {
    if (result.darkPane[sel] === null) fail(`the message has no ${sel}`);
    if (result.darkPane[sel] !== result.darkEmulated[sel]) {
      fail(`dark pane ${sel}: ${result.darkPane[sel]}, with dark emulated: ${result.darkEmulated[sel]}`);
    }
  }
  if (result.darkPane['.container'] === lightPane['.container']) fail('the dark pane is not dark');

  // The email alone, at the widths and schemes people read it in.
  const view = await (await page.request.get(url + 'api/view')).json();
  const html = view.view.html;
  result.screenshots = [];
  for (const width of [375, 600]) {
    for (const scheme of ['light', 'dark']) {
      const p = await browser.newPage();
      await p.setViewportSize({ width, height: 800 });
      await p.emulateMedia({ colorScheme: scheme });
      await p.goto(url + 'email', { waitUntil: 'load' });
      const scroll = await p.evaluate(() => document.documentElement.scrollWidth);
      if (scroll > width) fail(`${width} px ${scheme}: the email is ${scroll} px wide`);
      const file = `email-${width}-${scheme}.png`;
      await p.screenshot({ path: join(docs, file), fullPage: true });
      result.screenshots.push(file);
      await p.close();
    }
  }

  // caniemail, through doiuse-email.
  const report = doIUseEmail(html, { emailClients: CLIENTS });
  const features = [...new Set(report.errors.map((e) => e.match(/^`([^`]+)`/)?.[1] ?? e))].sort();
  result.caniemail = features;
  const unexpected = features.filter((f) => !EXPECTED.has(f));
  if (unexpected.length) fail('doiuse-email reports what README does not explain: ' + unexpected.join(', ') + '\n' + report.errors.join('\n'));
  // And README's list is exact: nothing in it that is no longer reported.
  const stale = [...EXPECTED].filter((f) => !features.includes(f));
  if (stale.length) fail('README explains what doiuse-email no longer reports: ' + stale.join(', '));
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(result));

// The built-in viewer (GET /logs/{type}/{id}) in real headless Chromium against the real service.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  launchBrowser, openPage, screenshot, Service, shownRows, uniqueName, visibleLines, waitEnded, waitLines,
} from './lib/harness.js';

const ESC = '\x1b';

/** A believable CI log with colours, for the screenshots. */
function buildLog() {
  const c = (code, text) => `${ESC}[${code}m${text}${ESC}[0m`;
  const lines = [
    `${c('1', '$ cargo build --release')}`,
    `${c('1;32', '   Compiling')} proc-macro2 v1.0.86`,
    `${c('1;32', '   Compiling')} serde v1.0.204`,
    `${c('1;32', '   Compiling')} tokio v1.39.2`,
    `${c('1;33', 'warning')}${c('1', ': unused variable: `retry`')}`,
    `  ${c('1;34', '-->')} src/session.rs:42:9`,
    `${c('1;32', '    Finished')} release [optimized] target(s) in 48.31s`,
    `${c('1', '$ cargo test')}`,
  ];
  for (let i = 1; i <= 24; i++) {
    const ok = i !== 17;
    lines.push(`test hub::tests::case_${String(i).padStart(2, '0')} ... ${ok ? c('32', 'ok') : c('1;31', 'FAILED')}`);
  }
  lines.push(`${c('38;5;208', 'note:')} run with ${c('4', 'RUST_BACKTRACE=1')} for a backtrace`);
  lines.push(`test result: ${c('1;31', 'FAILED')}. 23 passed; 1 failed; finished in 2.04s`);
  lines.push(`${c('38;2;120;160;255', 'deploy')}: pushing image registry.local/web:${c('1', '1.4.2')}`);
  return lines;
}
const stripAnsi = (s) => s.replace(/\x1b\[[0-9;:]*m/g, '');

describe('viewer', () => {
  let service;
  let browser;

  before(async () => {
    service = await Service.start('viewer');
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await service?.close();
  });

  it('shows exactly the text of the log, then the ended status', async () => {
    const id = uniqueName('exact');
    const lines = [
      'first line',
      '    four leading spaces',
      '',
      'tab\tseparated\tcolumns',
      'unicode: 日志 · naïve café · 🚀',
      'html-ish: <b>not bold</b> &amp; &lt;',
      '   ',
      'trailing spaces   ',
      'x'.repeat(300),
      'last line',
    ];
    await service.append('ci', id, lines, { done: true });
    const { page, context, errors } = await openPage(browser);
    await page.goto(service.viewerUrl('ci', id));
    await waitEnded(page);
    const rows = await shownRows(page);
    assert.deepEqual(rows, lines.map((text, i) => ({ n: i + 1, text })));
    assert.match(await page.textContent('#status'), /^ended · 10 lines · \d+\.\d s$/);
    assert.equal(await page.textContent('#count'), '10 lines');
    assert.equal(await page.textContent('#title'), `ci / ${id}`);
    assert.equal(await page.title(), `ci / ${id} · sse-logs`);
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('renders ANSI colours and attributes as styles and strips every other escape', async () => {
    const id = uniqueName('ansi');
    const lines = [
      `${ESC}[31mred${ESC}[0m plain ${ESC}[1;4mbold-under${ESC}[0m`,
      `${ESC}[38;5;208m256-orange${ESC}[0m ${ESC}[38;5;245mgrey${ESC}[0m ${ESC}[48;5;21mblue-bg${ESC}[0m`,
      `${ESC}[38;2;10;20;30mtruecolor${ESC}[0m ${ESC}[38:2::200:100:50mcolon-rgb${ESC}[m`,
      `${ESC}[92mbright-green${ESC}[39m ${ESC}[3mitalic${ESC}[23m ${ESC}[7minverse${ESC}[27m`,
      `${ESC}]0;window title${ESC}\\${ESC}[2K${ESC}[1Acursor${ESC}[?25l moves${ESC}(B ${ESC}]8;;http://x.test/${ESC}\\link${ESC}]8;;${ESC}\\ end`,
      `progress 10%\rprogress 100%`,
      `bell\x07 and backspace\x08 gone`,
    ];
    await service.append('ci', id, lines, { done: true });
    const { page, context } = await openPage(browser, { colorScheme: 'dark' });
    await page.goto(service.viewerUrl('ci', id));
    await waitEnded(page);
    const texts = (await shownRows(page)).map((r) => r.text);
    assert.deepEqual(texts, [
      'red plain bold-under',
      '256-orange grey blue-bg',
      'truecolor colon-rgb',
      'bright-green italic inverse',
      'cursor moves link end',
      'progress 100%',
      'bell and backspace gone',
    ]);
    const style = (n, text) => page.evaluate(([n, text]) => {
      const row = document.querySelector(`#rows .row[data-n="${n}"] .tx`);
      const span = [...row.querySelectorAll('span')].find((s) => s.textContent === text);
      if (!span) return null;
      const cs = getComputedStyle(span);
      return { color: cs.color, bg: cs.backgroundColor, weight: cs.fontWeight, deco: cs.textDecorationLine, italic: cs.fontStyle };
    }, [n, text]);
    assert.equal((await style(1, 'red')).color, 'rgb(255, 123, 114)'); // --a1 of the dark palette
    const bu = await style(1, 'bold-under');
    assert.equal(bu.weight, '700');
    assert.equal(bu.deco, 'underline');
    assert.equal((await style(2, '256-orange')).color, 'rgb(255, 135, 0)');
    assert.equal((await style(2, 'grey')).color, 'rgb(138, 138, 138)');
    assert.equal((await style(2, 'blue-bg')).bg, 'rgb(0, 0, 255)');
    assert.equal((await style(3, 'truecolor')).color, 'rgb(10, 20, 30)');
    assert.equal((await style(3, 'colon-rgb')).color, 'rgb(200, 100, 50)');
    assert.equal((await style(4, 'bright-green')).color, 'rgb(86, 211, 100)'); // --a10
    assert.equal((await style(4, 'italic')).italic, 'italic');
    const inv = await style(4, 'inverse');
    assert.equal(inv.color, 'rgb(13, 17, 23)'); // the page background as text colour
    assert.equal(inv.bg, 'rgb(230, 237, 243)');
    // "plain" is an unstyled text node, not a span.
    assert.equal(await style(1, ' plain '), null);
    assert.equal(await page.$$eval('#rows .tx', (els) => els.some((el) => /[\x00-\x08\x0b-\x1f\x7f]/.test(el.textContent))), false);
    await context.close();
  });

  it('never turns log text into markup', async () => {
    const id = uniqueName('xss');
    const lines = [
      '<img src=x onerror=alert(1)>',
      '<script>alert(2)</script>',
      `${ESC}[31m<svg onload=alert(3)>${ESC}[0m`,
      '"><iframe src=javascript:alert(4)>',
    ];
    await service.append('ci', id, lines, { done: true });
    const { page, context, dialogs, errors } = await openPage(browser);
    await page.goto(service.viewerUrl('ci', id));
    await waitEnded(page);
    assert.deepEqual((await shownRows(page)).map((r) => r.text), lines.map(stripAnsi));
    assert.equal(await page.locator('#rows img, #rows script, #rows svg, #rows iframe').count(), 0);
    assert.equal(await page.locator('img, iframe, svg').count(), 0);
    // The page is also served with a CSP that would stop anything that slipped through.
    const res = await fetch(service.viewerUrl('ci', id));
    assert.match(res.headers.get('content-security-policy'), /default-src 'none'/);
    assert.deepEqual(dialogs, []);
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('shows lines written while it is open, live, and follows them', async () => {
    const id = '1423'; // each run has its own database, so a readable id is unique enough
    const log = buildLog();
    const { page, context } = await openPage(browser);
    await page.goto(service.viewerUrl('ci', id));
    await page.locator('#status.live').waitFor();
    assert.equal(await page.textContent('#empty'), 'Waiting for the first line…');
    await service.append('ci', id, log.slice(0, 8));
    await waitLines(page, 8);
    assert.deepEqual((await shownRows(page)).map((r) => r.text), log.slice(0, 8).map(stripAnsi));
    assert.equal(await page.isVisible('#empty'), false);
    // Enough lines to overflow the viewport: following keeps the newest one in view.
    await service.append('ci', id, log.slice(8));
    await waitLines(page, log.length);
    await page.waitForFunction((n) => {
      const vp = document.getElementById('viewport');
      const row = document.querySelector(`#rows .row[data-n="${n}"]`);
      return row && row.getBoundingClientRect().bottom <= vp.getBoundingClientRect().bottom + 1 &&
        vp.scrollTop + vp.clientHeight >= vp.scrollHeight - 1;
    }, log.length);
    assert.equal(await page.textContent('#status'), 'live');
    await screenshot(page, 'viewer-live.png');
    await service.append('ci', id, [], { done: true });
    await waitEnded(page);
    assert.match(await page.textContent('#status'), new RegExp(`^ended · ${log.length} lines`));
    await screenshot(page, 'viewer-ended.png');
    await context.close();

    // The same log in the light scheme.
    const light = await openPage(browser, { colorScheme: 'light' });
    await light.page.goto(service.viewerUrl('ci', id));
    await waitEnded(light.page);
    assert.equal(await light.page.evaluate(() => getComputedStyle(document.body).backgroundColor), 'rgb(255, 255, 255)');
    await screenshot(light.page, 'viewer-ended-light.png');
    await light.context.close();
  });

  it('stops following when the user scrolls up, and resumes with the follow button', async () => {
    const id = uniqueName('follow');
    const numbered = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => `line ${from + i}`);
    await service.append('ci', id, numbered(1, 300));
    const { page, context } = await openPage(browser);
    await page.goto(service.viewerUrl('ci', id));
    await waitLines(page, 300);
    await page.waitForFunction(() => [...document.querySelectorAll('#rows .row')].some((r) => r.dataset.n === '300'));
    assert.ok((await visibleLines(page)).includes(300));
    assert.equal(await page.getAttribute('#follow', 'aria-pressed'), 'true');

    await page.hover('#viewport');
    await page.evaluate(() => {
      window.scrollEnded = new Promise((resolve) => document.getElementById('viewport').addEventListener('scrollend', resolve, { once: true }));
    });
    await page.mouse.wheel(0, -600);
    await page.waitForFunction(() => !window.sseLogs.state().follow);
    await page.evaluate(() => window.scrollEnded); // the smooth scroll has finished
    assert.ok(await page.$eval('#viewport', (vp) => vp.scrollTop + vp.clientHeight < vp.scrollHeight - 200));
    const top = await page.$eval('#viewport', (vp) => vp.scrollTop);
    const seen = await visibleLines(page);

    await service.append('ci', id, numbered(301, 350));
    await waitLines(page, 350);
    await page.locator('#follow', { hasText: 'Follow (50 new)' }).waitFor();
    assert.equal(await page.$eval('#viewport', (vp) => vp.scrollTop), top, 'the view stays where the user put it');
    assert.deepEqual(await visibleLines(page), seen);
    assert.equal(await page.getAttribute('#follow', 'aria-pressed'), 'false');

    await page.click('#follow');
    await page.waitForFunction(() => window.sseLogs.state().follow);
    await page.waitForFunction(() => [...document.querySelectorAll('#rows .row')].some((r) => r.dataset.n === '350'));
    assert.ok((await visibleLines(page)).includes(350));
    await service.append('ci', id, numbered(351, 360));
    await waitLines(page, 360);
    await page.waitForFunction(() => {
      const row = document.querySelector('#rows .row[data-n="360"]');
      const vp = document.getElementById('viewport').getBoundingClientRect();
      return row && row.getBoundingClientRect().bottom <= vp.bottom + 1;
    });
    assert.equal(await page.textContent('#follow'), 'Following');

    // Keyboard: PageUp in the log pauses, End resumes.
    await page.focus('#viewport');
    await page.keyboard.press('PageUp');
    await page.waitForFunction(() => !window.sseLogs.state().follow);
    await page.keyboard.press('End');
    await page.waitForFunction(() => window.sseLogs.state().follow);
    await context.close();
  });

  it('highlights #L120 when opened with it, also before line 120 has arrived', async () => {
    const id = uniqueName('anchor');
    const lines = Array.from({ length: 500 }, (_, i) => `row number ${i + 1}`);
    const { page, context } = await openPage(browser);
    await page.goto(service.viewerUrl('ci', id, '#L120'));
    await page.locator('#status.live').waitFor();
    await service.append('ci', id, lines.slice(0, 60));
    await waitLines(page, 60);
    await service.append('ci', id, lines.slice(60), { done: true });
    await waitEnded(page);
    const highlighted = () => page.$$eval('#rows .row.sel', (rows) => rows.map((r) => Number(r.dataset.n)));
    await page.waitForFunction(() => document.querySelector('#rows .row.sel'));
    assert.deepEqual(await highlighted(), [120]);
    assert.ok((await visibleLines(page)).includes(120), 'line 120 is scrolled into view');
    assert.equal(await page.textContent('#rows .row.sel .tx'), 'row number 120');
    await context.close();

    // An already-complete log opened with the link.
    const again = await openPage(browser);
    await again.page.goto(service.viewerUrl('ci', id, '#L120'));
    await waitEnded(again.page);
    await again.page.waitForFunction(() => document.querySelector('#rows .row.sel'));
    assert.deepEqual(await again.page.$$eval('#rows .row.sel', (rows) => rows.map((r) => Number(r.dataset.n))), [120]);
    assert.ok((await visibleLines(again.page)).includes(120));

    // Clicking numbers selects a range, updates the address, and "copy" copies exactly those lines.
    await again.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: service.base });
    await again.page.click('#rows .row[data-n="125"] .ln');
    await again.page.click('#rows .row[data-n="130"] .ln', { modifiers: ['Shift'] });
    assert.equal(new URL(again.page.url()).hash, '#L125-L130');
    assert.deepEqual(await again.page.$$eval('#rows .row.sel', (rows) => rows.map((r) => Number(r.dataset.n))),
      [125, 126, 127, 128, 129, 130]);
    assert.equal(await again.page.textContent('#copy'), 'Copy lines 125–130');
    await again.page.click('#copy');
    await again.page.locator('#toast.show', { hasText: 'Copied lines 125–130' }).waitFor();
    const copied = await again.page.evaluate(() => navigator.clipboard.readText());
    assert.equal(copied, lines.slice(124, 130).join('\n') + '\n');

    // Editing the address to another line jumps there.
    await again.page.evaluate(() => { location.hash = '#L400'; });
    await again.page.waitForFunction(() => document.querySelector('#rows .row.sel')?.dataset.n === '400');
    assert.ok((await visibleLines(again.page)).includes(400));
    await again.context.close();
  });

  it('searches: highlights matches, jumps between them, filters to matching lines', async () => {
    const id = '1424';
    const log = buildLog();
    const filler = Array.from({ length: 200 }, (_, i) => `step ${i + 1}: nothing to see`);
    const lines = [...log.slice(0, 8), ...filler.slice(0, 100), ...log.slice(8), ...filler.slice(100)];
    await service.append('ci', id, lines, { done: true });
    const { page, context } = await openPage(browser);
    await page.goto(service.viewerUrl('ci', id));
    await waitEnded(page);
    const matching = lines.map((l, i) => [stripAnsi(l), i + 1]).filter(([l]) => /failed/i.test(l)).map(([, n]) => n);
    assert.equal(matching.length, 2);

    // "/" focuses the search box from anywhere.
    await page.focus('#viewport');
    await page.keyboard.press('/');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'q');
    await page.keyboard.type('FAILED');
    await page.locator('#hits', { hasText: '2 lines' }).waitFor();
    await page.keyboard.press('Enter');
    await page.locator('#hits', { hasText: '1 / 2' }).waitFor();
    await page.waitForFunction((n) => document.querySelector('#rows .row.cur')?.dataset.n === String(n), matching[0]);
    assert.ok((await visibleLines(page)).includes(matching[0]));
    assert.equal(await page.textContent('#rows .row.cur mark'), 'FAILED');
    await page.keyboard.press('Enter');
    await page.locator('#hits', { hasText: '2 / 2' }).waitFor();
    await page.waitForFunction((n) => document.querySelector('#rows .row.cur')?.dataset.n === String(n), matching[1]);
    await page.keyboard.press('Shift+Enter');
    await page.locator('#hits', { hasText: '1 / 2' }).waitFor();

    // Case-insensitive, every occurrence marked.
    await page.fill('#q', 'case_1');
    await page.locator('#hits', { hasText: '10 lines' }).waitFor();
    await page.keyboard.press('Enter');
    await page.locator('#hits', { hasText: '1 / 10' }).waitFor();
    await screenshot(page, 'viewer-search.png');

    await page.click('#filter');
    assert.equal(await page.getAttribute('#filter', 'aria-pressed'), 'true');
    await page.locator('#count', { hasText: `10 of ${lines.length} lines` }).waitFor();
    const shown = await shownRows(page);
    assert.deepEqual(shown.map((r) => r.n), lines.map((l, i) => [l, i + 1]).filter(([l]) => l.includes('case_1')).map(([, n]) => n));
    assert.ok(shown.every((r) => r.text.includes('case_1')));
    await screenshot(page, 'viewer-filter.png');
    await page.click('#filter');
    await page.waitForFunction((want) => document.getElementById('count').textContent === want, `${lines.length} lines`);
    await page.fill('#q', '');
    await page.waitForFunction(() => document.querySelectorAll('#rows mark').length === 0);
    await context.close();
  });

  it('downloads the whole log as .txt from the raw route, in one streamed request', async () => {
    const id = uniqueName('download');
    const lines = Array.from({ length: 23_456 }, (_, i) => `${i + 1}: ${i % 7 === 0 ? `${ESC}[33mwarn${ESC}[0m ` : ''}payload ${'#'.repeat(i % 13)}`);
    for (let i = 0; i < lines.length; i += 10_000) await service.append('ci', id, lines.slice(i, i + 10_000));
    await service.append('ci', id, [], { done: true });
    const { page, context } = await openPage(browser);
    const apiCalls = [];
    page.on('request', (req) => { if (req.url().includes('/api/')) apiCalls.push(req.url()); });
    await page.goto(service.viewerUrl('ci', id));
    await waitEnded(page);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    assert.equal(download.suggestedFilename(), `ci-${id}.txt`);
    const text = fs.readFileSync(await download.path(), 'utf8');
    assert.equal(text, lines.join('\n') + '\n');
    assert.ok(new URL(download.url()).pathname.endsWith('/raw'), download.url());
    assert.ok(!apiCalls.some((u) => new URL(u).searchParams.get('limit')), 'no snapshot paging');
    await context.close();
  });

  it('reads type and id percent-decoded from its URL and passes access_token on to the API', async () => {
    const type = 'ci job';
    const id = 'build/7 ü';
    await service.append(type, id, ['hello from a strange name'], { done: true });
    const { page, context } = await openPage(browser);
    const apiCalls = [];
    page.on('request', (req) => { if (req.url().includes('/api/')) apiCalls.push(req.url()); });
    await page.goto(service.viewerUrl(type, id, '?access_token=s3cr%2Bt'));
    await waitEnded(page);
    assert.equal(await page.textContent('#title'), 'ci job / build/7 ü');
    assert.deepEqual((await shownRows(page)).map((r) => r.text), ['hello from a strange name']);
    assert.ok(apiCalls.length >= 1);
    for (const u of apiCalls) {
      const url = new URL(u);
      const base = '/api/v1/logs/ci%20job/build%2F7%20%C3%BC';
      assert.ok([base, `${base}/stream`].includes(url.pathname), url.pathname);
      assert.equal(url.searchParams.get('access_token'), 's3cr+t');
    }
    // The HTML is the same bytes for every log: nothing from the request is written into it.
    const a = await (await fetch(service.viewerUrl('x<script>', '"1"'))).text();
    const b = await (await fetch(service.viewerUrl('ci', '1'))).text();
    assert.equal(a, b);
    await context.close();
  });
});

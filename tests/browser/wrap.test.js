// Wrapped lines in the viewer (issue 17): a toggle between one row per line (scrolling sideways) and
// long lines wrapped onto several rows, remembered; still only a window of rows in the DOM; #L,
// scrolling and following keep working with rows of different heights.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { launchBrowser, mongo, openPage, Service, uniqueName, visibleLines, waitComplete, waitLines } from './lib/harness.js';

const TOTAL = 20_000;
// Every 7th line is long (over 400 characters, several rows at 1280 px); a few have tabs and wide characters.
function line(n) {
  if (n % 7 === 0) return `${n}: ${'lorem ipsum dolor sit amet '.repeat(16)}end ${n}`;
  if (n % 101 === 0) return `${n}:\tcolumns\tand\t日志 🚀 ${'wide '.repeat(40)}`;
  return `${n}: short line`;
}

/** The rows in the DOM, with their boxes relative to the log area. */
function boxes(page) {
  return page.evaluate(() => {
    const vp = document.getElementById('viewport').getBoundingClientRect();
    return [...document.querySelectorAll('#rows .row')].map((row) => {
      const r = row.getBoundingClientRect();
      return { n: Number(row.dataset.n), top: r.top - vp.top, bottom: r.bottom - vp.top, height: r.height };
    });
  });
}
const frame = (page) => page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));

/**
 * The rows in the DOM are consecutive lines and cover the whole visible part of the log: down to
 * the viewport's bottom, or to the end mark under the last line of an ended log where it shows.
 */
async function assertCovered(page, what) {
  const rows = await boxes(page);
  const height = await page.evaluate(() => {
    const vp = document.getElementById('viewport');
    const mark = document.getElementById('endmark');
    if (!mark || mark.hidden) return vp.clientHeight;
    const top = mark.getBoundingClientRect().top - vp.getBoundingClientRect().top;
    return Math.min(vp.clientHeight, top - parseFloat(getComputedStyle(mark).marginTop));
  });
  assert.ok(rows.length > 0, what);
  for (let k = 1; k < rows.length; k++) {
    assert.equal(rows[k].n, rows[k - 1].n + 1, `${what}: consecutive lines`);
    assert.ok(Math.abs(rows[k].top - rows[k - 1].bottom) < 1, `${what}: rows touch (${JSON.stringify(rows.slice(k - 1, k + 1))})`);
  }
  assert.ok(rows[0].top <= 0.5 && rows.at(-1).bottom >= height - 0.5, `${what}: the rows cover the view`);
}

describe('wrap', () => {
  let service;
  let browser;
  let db;
  const id = uniqueName('wrap');

  before(async () => {
    service = await Service.start('wrap');
    browser = await launchBrowser();
    db = await mongo(service);
    const docs = Array.from({ length: TOTAL }, (_, i) => ({ type: 'ci', id, log: line(i + 1) }));
    for (let k = 0; k < TOTAL; k += 10_000) await db.collection.insertMany(docs.slice(k, k + 10_000), { ordered: true });
    await db.collection.insertOne({ type: 'ci', id, log: '[DONE]' });
  });

  after(async () => {
    await db?.client.close();
    await browser?.close();
    await service?.close();
  });

  it('wraps long lines, keeps only a window of rows, and is remembered', async () => {
    const { page, context, errors } = await openPage(browser);
    await page.goto(service.viewerUrl('ci', id));
    await waitComplete(page);
    await page.waitForFunction((n) => document.querySelector(`#rows .row[data-n="${n}"]`), TOTAL);
    assert.equal(await page.getAttribute('#wrap', 'aria-pressed'), 'false');
    const row = await page.evaluate(() => document.querySelector('#rows .row').getBoundingClientRect().height);
    assert.ok((await boxes(page)).every((b) => b.height === row), 'one row per line');
    assert.ok(await page.$eval('#viewport', (vp) => vp.scrollWidth > vp.clientWidth + 100), 'long lines scroll sideways');

    await page.focus('#viewport');
    await page.keyboard.press('w');
    await page.waitForFunction(() => window.sseLogs.state().wrap);
    assert.equal(await page.getAttribute('#wrap', 'aria-pressed'), 'true');
    await frame(page);
    const wrapped = await boxes(page);
    const long = wrapped.filter((b) => b.n % 7 === 0);
    assert.ok(long.length > 0 && long.every((b) => b.height >= 3 * row && b.height % row === 0), JSON.stringify(long));
    assert.ok(wrapped.filter((b) => b.n % 7 && b.n % 101).every((b) => b.height === row));
    assert.ok(await page.$eval('#viewport', (vp) => vp.scrollWidth <= vp.clientWidth), 'no sideways scrolling');
    assert.ok(wrapped.length < 150, `${wrapped.length} rows in the DOM`);
    // Still at the end: following the (ended) log.
    assert.ok((await visibleLines(page)).includes(TOTAL));
    await assertCovered(page, 'at the end');

    // Anywhere in the middle the rows are consecutive and fill the view, and stay few.
    for (const f of [0.5, 0.13, 0.77]) {
      await page.$eval('#viewport', (vp, x) => { vp.scrollTop = vp.scrollHeight * x; }, f);
      await frame(page);
      await assertCovered(page, `at ${f}`);
      assert.ok((await boxes(page)).length < 150);
    }

    // A link to a line in wrapped mode.
    await page.evaluate(() => { location.hash = '#L12341'; });
    await page.waitForFunction(() => document.querySelector('#rows .row.sel')?.dataset.n === '12341');
    assert.ok((await visibleLines(page)).includes(12341));
    assert.equal(await page.textContent('#rows .row.sel .tx'), line(12341));

    // Remembered across a reload, and `w` turns it off again.
    await page.reload();
    await waitComplete(page);
    assert.equal(await page.getAttribute('#wrap', 'aria-pressed'), 'true');
    await page.waitForFunction(() => document.querySelector('#rows .row.sel')?.dataset.n === '12341');
    assert.ok((await visibleLines(page)).includes(12341));
    await page.focus('#viewport');
    await page.keyboard.press('w');
    await page.waitForFunction(() => !window.sseLogs.state().wrap);
    await frame(page);
    assert.ok((await boxes(page)).every((b) => b.height === row));
    assert.ok((await visibleLines(page)).includes(12341), 'the view stays on the same lines');
    await page.reload();
    await waitComplete(page);
    assert.equal(await page.getAttribute('#wrap', 'aria-pressed'), 'false');
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('follows a live log with wrapped lines', async () => {
    const live = uniqueName('live');
    const { page, context, errors } = await openPage(browser);
    await page.addInitScript(() => localStorage.setItem('sse-logs.wrap', '1'));
    await page.goto(service.viewerUrl('ci', live));
    await page.locator('#status.live').waitFor();
    for (let k = 0; k < 5; k++) {
      const from = k * 40 + 1;
      await service.append('ci', live, Array.from({ length: 40 }, (_, i) => line(from + i)));
      await waitLines(page, from + 39);
      await page.waitForFunction((n) => {
        const vp = document.getElementById('viewport');
        const row = document.querySelector(`#rows .row[data-n="${n}"]`);
        return row && Math.abs(row.getBoundingClientRect().bottom - vp.getBoundingClientRect().bottom) < 1.5;
      }, from + 39);
    }
    assert.equal(await page.evaluate(() => window.sseLogs.state().follow), true);
    await assertCovered(page, 'following');
    assert.deepEqual(errors, []);
    await context.close();
  });
});

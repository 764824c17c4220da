// Line times in the viewer (issue 17): off by default, the time of day or the time since the log
// started (remembered), the log's duration in the header, section durations from line times; times
// come with the tail, the backfill and the live lines.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openPage, uniqueName, waitComplete, waitEnded, withService } from './lib/harness.js';

const BASE = Date.UTC(2026, 0, 2, 3, 4, 5); // 03:04:05 UTC; the pages run in UTC
const at = (n) => BASE + (n - 1) * 1500; // line n, 1.5 s after the one before

/** The time column of the rows in the DOM: { n: text }. */
function timeColumn(page) {
  return page.$$eval('#rows .row', (rows) => Object.fromEntries(rows.map((row) => [row.dataset.n, row.querySelector('.tm')?.textContent ?? null])));
}

describe('line times', () => {
  const env = withService('times');

  /** A log written as a producer with its own clock would: each document with its `ts`. */
  async function write(id, count, text = (n) => `line ${n}`, { done = true } = {}) {
    const docs = Array.from({ length: count }, (_, i) => ({ type: 'ci', id, log: text(i + 1), ts: new Date(at(i + 1)) }));
    for (let k = 0; k < docs.length; k += 10_000) await env.db.collection.insertMany(docs.slice(k, k + 10_000), { ordered: true });
    if (done) await env.db.collection.insertOne({ type: 'ci', id, log: '[DONE]', ts: new Date(at(count + 1)) });
  }

  it('toggles off → clock → elapsed → off, remembered across reloads; shows the log\'s and each section\'s duration', async () => {
    const id = uniqueName('toggle');
    await write(id, 60, (n) => (n === 11 ? '::group::Compile' : n === 21 ? '::endgroup::' : `line ${n}`));
    const { page, context, errors } = await openPage(env.browser, { timezoneId: 'UTC' });
    await page.goto(env.service.viewerUrl('ci', id));
    await waitEnded(page);
    // Off by default: no time column at all.
    assert.equal(await page.inputValue('#times'), 'off');
    assert.equal(await page.locator('#rows .tm').count(), 0);
    // First to last line: 59 × 1.5 s.
    assert.equal(await page.textContent('#took'), 'took 1 min 29 s');
    assert.equal(await page.textContent('#rows .row[data-n="11"] .meta'), '9 lines · 15.0 s');

    await page.selectOption('#times', 'clock');
    await page.waitForFunction(() => document.querySelector('#rows .row .tm'));
    let col = await timeColumn(page);
    assert.equal(col[1], '03:04:05');
    assert.equal(col[41], '03:05:05');
    assert.equal(col[11], '03:04:20'); // the section's header shows its start marker's time
    assert.equal(await page.getAttribute('#rows .row[data-n="41"] .tm', 'title'), new Date(at(41)).toISOString());
    assert.equal(await page.evaluate(() => window.sseLogs.time(60)), at(60));

    await page.reload();
    await waitEnded(page);
    assert.equal(await page.inputValue('#times'), 'clock');
    await page.waitForFunction(() => document.querySelector('#rows .row[data-n="1"] .tm')?.textContent === '03:04:05');

    await page.focus('#viewport');
    await page.keyboard.press('t');
    await page.waitForFunction(() => document.querySelector('#rows .row[data-n="1"] .tm')?.textContent === '+0:00');
    col = await timeColumn(page);
    assert.equal(col[41], '+1:00');
    assert.equal(col[60], '+1:28');
    assert.equal(await page.inputValue('#times'), 'elapsed');
    await page.reload();
    await waitEnded(page);
    await page.waitForFunction(() => document.querySelector('#rows .row[data-n="60"] .tm')?.textContent === '+1:28');

    await page.focus('#viewport');
    await page.keyboard.press('t');
    await page.waitForFunction(() => !document.querySelector('#rows .tm'));
    await page.reload();
    await waitEnded(page);
    assert.equal(await page.inputValue('#times'), 'off');
    assert.equal(await page.locator('#rows .tm').count(), 0);
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('has the times of lines filled in behind the tail, and counts elapsed times from line 1', async () => {
    const id = uniqueName('backfill');
    await write(id, 5000);
    const { page, context, errors } = await openPage(env.browser, { timezoneId: 'UTC' });
    await page.addInitScript(() => localStorage.setItem('sse-logs.times', 'elapsed'));
    await page.goto(env.service.viewerUrl('ci', id), { waitUntil: 'commit' });
    await waitComplete(page);
    for (const n of [1, 2, 2999, 3000, 3001, 5000]) {
      assert.equal(await page.evaluate((k) => window.sseLogs.time(k), n), at(n), `line ${n}`);
    }
    // 4,999 × 1.5 s = 2 h 4 min 58.5 s after line 1.
    await page.waitForFunction(() => document.querySelector('#rows .row[data-n="5000"] .tm')?.textContent === '+2:04:58');
    assert.equal(await page.textContent('#took'), 'took 2 h 4 min');
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('has the times of live lines', async () => {
    const id = uniqueName('live');
    const { page, context, errors } = await openPage(env.browser, { timezoneId: 'UTC' });
    await page.addInitScript(() => localStorage.setItem('sse-logs.times', 'clock'));
    await page.goto(env.service.viewerUrl('ci', id));
    await page.locator('#status.live').waitFor();
    await env.service.append('ci', id, ['first']);
    await page.waitForFunction(() => window.sseLogs.state().lines === 1);
    await env.service.append('ci', id, ['second', 'third']);
    await page.waitForFunction(() => window.sseLogs.state().lines === 3);
    const snapshot = await (await fetch(env.service.logUrl('ci', id, '?from=0&times=1'))).json();
    assert.equal(snapshot.times.length, 3);
    const clock = (ms) => new Date(ms).toISOString().slice(11, 19);
    for (let n = 1; n <= 3; n++) {
      assert.equal(await page.evaluate((k) => window.sseLogs.time(k), n), snapshot.times[n - 1]);
      assert.equal(await page.textContent(`#rows .row[data-n="${n}"] .tm`), clock(snapshot.times[n - 1]));
    }
    assert.match(await page.textContent('#took'), /^running \d+\.\d s$/);
    assert.deepEqual(errors, []);
    await context.close();
  });
});

// A 200,000-line log with a section every 1,000 lines (issue 17): it still opens at its last line,
// ends with the right sections, and opening or closing sections stays quick. The figures are printed
// and saved to artifacts/sections.json; speed is a benchmark here, not an assertion.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { artifacts, launchBrowser, mongo, openPage, Service, uniqueName, visibleLines } from './lib/harness.js';

const TOTAL = 200_000;
const EVERY = 1000;
const SECTIONS = TOTAL / EVERY;
const K = '\r\x1b[0K';
const T0 = 1_700_000_000;

let service;
let browser;
let db;
const report = {
  machine: '2-core VM shared with other work; headless Chromium; SecantusDB',
  binary: process.env.SSE_LOGS_BIN || 'target/debug/sse-logs',
};

before(async () => {
  service = await Service.start('sections-big');
  browser = await launchBrowser();
  db = await mongo(service);
});

after(async () => {
  fs.writeFileSync(path.join(artifacts, 'sections.json'), JSON.stringify(report, null, 2) + '\n');
  await db?.client.close();
  await browser?.close();
  await service?.close();
});

// Section k (0-based) is lines k*1000+1 (its start) to k*1000+1000 (its end); the last one ends
// early, at line 199,990, so that the log's last ten lines lie outside any section.
function line(n) {
  const k = Math.floor((n - 1) / EVERY), first = k * EVERY + 1;
  const last = k === SECTIONS - 1 ? TOTAL - 10 : first + EVERY - 1;
  if (n === first) return `section_start:${T0 + k * 10}:step_${k}${K}\x1b[1mStep ${k}\x1b[0m`;
  if (n === last) return `section_end:${T0 + k * 10 + 9}:step_${k}${K}`;
  if (n > last) return `job cleanup ${n}`;
  return n % 10 === 0
    ? `\x1b[1;32m[${n}]\x1b[0m deploy step ${n}: rolling out shard_${n % 997} ... \x1b[32mok\x1b[0m`
    : `[${n}] deploy step ${n}: rolling out shard_${n % 997} to cluster eu-west ... ok`;
}

async function write(id) {
  const BATCH = 20_000;
  for (let start = 1; start <= TOTAL; start += BATCH) {
    const docs = Array.from({ length: BATCH }, (_, i) => ({ type: 'ci', id, log: line(start + i) }));
    await db.collection.insertMany(docs, { ordered: true });
  }
  await db.collection.insertOne({ type: 'ci', id, log: '[DONE]' });
}

/** Waits until the service's change stream has passed everything written so far (see big.test.js). */
async function settle() {
  const id = uniqueName('settle');
  const res = await fetch(service.logUrl('ci', id, '/stream?from=0'));
  const reader = res.body.getReader();
  await db.collection.insertOne({ type: 'ci', id, log: 'settled' });
  let text = '';
  while (!text.includes('data: settled')) {
    const { value, done } = await reader.read();
    if (done) throw new Error('the settle stream ended');
    text += new TextDecoder().decode(value);
  }
  await reader.cancel();
}

/** In the page: does one thing (clicks a header, presses a key, clicks "next match"), then times
 * the work it did (synchronous) and until the second frame after it. */
function timed(page, what, arg) {
  return page.evaluate(async ([w, a]) => {
    const t0 = performance.now();
    if (w === 'header') document.querySelector(`#rows .row[data-n="${a}"] .tx`).click();
    else if (w === 'key') document.dispatchEvent(new KeyboardEvent('keydown', { key: a }));
    else document.getElementById('next').click();
    const sync = performance.now() - t0;
    await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    return { syncMs: +sync.toFixed(1), frameMs: +(performance.now() - t0).toFixed(1) };
  }, [what, arg]);
}
const rowsNow = (page) => page.evaluate(() => window.sseLogs.state().rows);

it(`opens a ${TOTAL.toLocaleString('en-US')}-line log with ${SECTIONS} sections at its end; opening and closing stay quick`, async (t) => {
  const id = uniqueName('big');
  const tw = performance.now();
  await write(id);
  report.writeMs = Math.round(performance.now() - tw);
  await settle();

  const { page, context, errors } = await openPage(browser);
  await page.goto(service.viewerUrl('ci', id), { waitUntil: 'commit' });
  const lastVisible = await page.waitForFunction((want) => {
    const vp = document.getElementById('viewport').getBoundingClientRect();
    const row = document.querySelector(`#rows .row[data-n="${want}"]:not(.pending)`);
    if (!row) return false;
    const r = row.getBoundingClientRect();
    return r.top >= vp.top - 1 && r.bottom <= vp.bottom + 1 ? performance.now() : false;
  }, TOTAL, { polling: 'raf', timeout: 60_000 }).then((h) => h.jsonValue());
  const complete = await page.waitForFunction(() => window.sseLogs.state().complete && window.sseLogs.state().sectionsFinal &&
    performance.now(), null, { timeout: 120_000 }).then((h) => h.jsonValue());
  assert.equal(await page.textContent(`#rows .row[data-n="${TOTAL}"] .tx`), `job cleanup ${TOTAL}`);
  const secs = await page.evaluate(() => window.sseLogs.sections());
  assert.equal(secs.length, SECTIONS);
  assert.ok(secs.every((s, k) => s.line === k * EVERY + 1 && s.title === `Step ${k}` && s.open && s.depth === 0 &&
    s.durationMs === 9000 && s.lines === (k === SECTIONS - 1 ? EVERY - 12 : EVERY - 2)), JSON.stringify(secs.slice(0, 2)));
  assert.equal(await rowsNow(page), TOTAL - SECTIONS, 'every line but the end markers');
  const stats = await page.evaluate(() => window.sseLogs.stats);
  assert.equal(stats.duplicates, 0);
  assert.equal(stats.gaps, 0);

  // One section, on screen: close it, open it again.
  await page.evaluate(() => { location.hash = '#L150001'; });
  await page.waitForFunction(() => document.querySelector('#rows .row.sel')?.dataset.n === '150001');
  const close = await timed(page, 'header', 150_001);
  assert.equal(await rowsNow(page), TOTAL - SECTIONS - (EVERY - 2));
  assert.ok((await visibleLines(page)).includes(150_001), 'the header stays in view');
  const open = await timed(page, 'header', 150_001);
  assert.equal(await rowsNow(page), TOTAL - SECTIONS);
  // All of them: [ and ].
  const closeAll = await timed(page, 'key', '[');
  assert.equal(await rowsNow(page), SECTIONS + 10);
  // Search into a closed section opens it.
  await page.fill('#q', 'deploy step 123456:');
  await page.locator('#hits', { hasText: '1 line' }).waitFor();
  const search = await timed(page, 'next');
  await page.waitForFunction(() => document.querySelector('#rows .row.cur')?.dataset.n === '123456');
  assert.equal(await rowsNow(page), SECTIONS + 10 + (EVERY - 2));
  await page.focus('#viewport'); // keys typed into the search box are text
  const openAll = await timed(page, 'key', ']');
  assert.equal(await rowsNow(page), TOTAL - SECTIONS);
  // A jump to the middle with every section open, as large.test.js measures without sections.
  const jump = await page.evaluate(async () => {
    const vp = document.getElementById('viewport');
    const t0 = performance.now();
    vp.scrollTop = vp.scrollHeight / 2;
    await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    return +(performance.now() - t0).toFixed(1);
  });
  const cdp = await context.newCDPSession(page);
  await cdp.send('HeapProfiler.collectGarbage');
  const { usedSize } = await cdp.send('Runtime.getHeapUsage');
  Object.assign(report, {
    lastLineVisibleMs: Math.round(lastVisible),
    tailAnsweredMs: stats.tailMs,
    wholeLogAndSectionsMs: Math.round(complete),
    closeOne: close, openOne: open, closeAll, openAll, searchIntoClosed: search, jumpToMiddleMs: jump,
    heapMB: Math.round(usedSize / 1048576),
    domRows: await page.locator('#rows .row').count(),
  });
  t.diagnostic(`200k lines, 200 sections: last line visible ${report.lastLineVisibleMs} ms after navigation (tail answered at ${report.tailAnsweredMs} ms); whole log and final sections ${report.wholeLogAndSectionsMs} ms; JS heap ${report.heapMB} MB`);
  t.diagnostic(`close one section ${close.syncMs} ms (next frame ${close.frameMs} ms), open it ${open.syncMs} ms (${open.frameMs}); close all ${closeAll.syncMs} ms (${closeAll.frameMs}), open all ${openAll.syncMs} ms (${openAll.frameMs}); search into a closed section ${search.syncMs} ms (${search.frameMs}); jump to the middle ${jump} ms; ${report.domRows} rows in the DOM`);
  assert.deepEqual(errors, []);
  await context.close();
});

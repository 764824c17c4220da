// 200,000 lines: the viewer loads them (half as backlog, half live) and still answers a scroll
// within 100 ms. The figures are printed and saved to artifacts/perf.json.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, it } from 'node:test';
import { artifacts, launchBrowser, openPage, Service, uniqueName, waitComplete, waitLines } from './lib/harness.js';

const TOTAL = 200_000;
const BATCH = 10_000; // one append request: ~700 KB, under the default 1 MiB body limit
const BUDGET_MS = 100;

let service;
let browser;

before(async () => {
  service = await Service.start('large');
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await service?.close();
});

function line(n) {
  const step = String(n).padStart(6, '0');
  return n % 10 === 0
    ? `\x1b[1;32m[${step}]\x1b[0m build step ${n}: compiling module_${n % 997} ... \x1b[32mok\x1b[0m`
    : `[${step}] build step ${n}: compiling module_${n % 997} ... ok (${(n % 83) / 10}s)`;
}
const plain = (n) => line(n).replace(/\x1b\[[0-9;]*m/g, '');

async function appendRange(from, to) {
  for (let start = from; start <= to; start += BATCH) {
    const end = Math.min(to, start + BATCH - 1);
    await service.append('ci', id, Array.from({ length: end - start + 1 }, (_, i) => line(start + i)));
  }
}

const id = uniqueName('large');
const stats = (xs) => {
  if (xs.length === 0) return { median: null, p95: null, max: null, n: 0 };
  const s = [...xs].sort((a, b) => a - b);
  return { median: +s[Math.floor(s.length / 2)].toFixed(1), p95: +s[Math.floor(s.length * 0.95)].toFixed(1), max: +s.at(-1).toFixed(1), n: s.length };
};

/** In the page: jump to a line by setting scrollTop; time until that line's row is in the DOM and a frame has been presented. */
function jumpInPage(page, n) {
  return page.evaluate(async (target) => {
    const vp = document.getElementById('viewport');
    const row = vp.querySelector('.row') || { getBoundingClientRect: () => ({ height: 20 }) };
    const h = row.getBoundingClientRect().height;
    const t0 = performance.now();
    vp.scrollTop = (target - 1) * h;
    const frame = () => new Promise((r) => requestAnimationFrame(r));
    await frame(); // scroll events are dispatched before this frame's callbacks
    const shown = !!vp.querySelector(`#rows .row[data-n="${target}"]`);
    await frame(); // ...and the frame with the new rows has been produced
    return { ms: performance.now() - t0, shown };
  }, n);
}

/** From outside: a real mouse wheel through the browser's input pipeline; time until other lines are on screen. */
async function wheel(page, dy, { mustMove = true } = {}) {
  const before = await page.evaluate(() => {
    const vp = document.getElementById('viewport');
    window.scrollEnded = new Promise((resolve) => vp.addEventListener('scrollend', resolve, { once: true }));
    return vp.querySelector('#rows .row')?.dataset.n;
  });
  const t0 = performance.now();
  await page.mouse.wheel(0, dy);
  try {
    // While lines stream in, following can pin the view to the end, where a wheel moves nothing:
    // such a wheel is left out of the (printed, not asserted) while-streaming figures.
    await page.waitForFunction((b) => document.querySelector('#rows .row')?.dataset.n !== b, before,
      { polling: 'raf', timeout: mustMove ? 30_000 : 5_000 });
  } catch (e) {
    if (mustMove) throw e;
    return null;
  }
  const ms = performance.now() - t0;
  await page.evaluate(() => window.scrollEnded); // let the smooth scroll finish before the next step
  return ms;
}

it(`loads ${TOTAL.toLocaleString('en-US')} lines and answers a scroll within ${BUDGET_MS} ms`, async (t) => {
  const tw = performance.now();
  await appendRange(1, TOTAL / 2);
  const writeMs = performance.now() - tw;

  const { page, context, errors } = await openPage(browser);
  await context.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__longTasks.push(e.duration); })
      .observe({ type: 'longtask', buffered: true });
  });
  const t0 = performance.now();
  await page.goto(service.viewerUrl('ci', id));
  await waitLines(page, TOTAL / 2, 120_000);
  const backlogMs = performance.now() - t0;

  // The second half arrives live, while we scroll around.
  const live = [];
  const liveWheels = [];
  let writtenAt = 0;
  const writing = appendRange(TOTAL / 2 + 1, TOTAL).then(() => service.append('ci', id, [], { done: true }))
    .then(() => { writtenAt = performance.now(); });
  await page.hover('#viewport');
  for (let i = 0; i < 10; i++) {
    const target = 1 + Math.floor(Math.random() * (TOTAL / 2 - 100));
    const r = await jumpInPage(page, target);
    assert.ok(r.shown, `line ${target} rendered`);
    live.push(r.ms);
    const ms = await wheel(page, i % 2 ? -2000 : 2400, { mustMove: false });
    if (ms !== null) liveWheels.push(ms);
  }
  await writing;
  await waitComplete(page, 120_000);
  const loadMs = performance.now() - t0;
  const catchUpMs = performance.now() - writtenAt;

  const jumps = [];
  for (let i = 0; i < 30; i++) {
    const target = 1 + Math.floor(Math.random() * (TOTAL - 100));
    const r = await jumpInPage(page, target);
    assert.ok(r.shown, `line ${target} rendered`);
    jumps.push(r.ms);
  }
  await jumpInPage(page, TOTAL / 2);
  const wheels = [];
  for (let i = 0; i < 20; i++) wheels.push(await wheel(page, i % 2 ? -2000 : 2400));

  // The text is right far down the log, and the DOM stays small.
  await page.evaluate(() => { location.hash = '#L187654'; });
  await page.waitForFunction(() => document.querySelector('#rows .row.sel')?.dataset.n === '187654');
  assert.equal(await page.textContent('#rows .row.sel .tx'), plain(187654));
  const sample = await page.$$eval('#rows .row', (rows) => rows.map((r) => [Number(r.dataset.n), r.querySelector('.tx').textContent]));
  for (const [n, text] of sample) assert.equal(text, plain(n));
  const page_ = await page.evaluate(() => ({
    domNodes: document.getElementsByTagName('*').length,
    heapMB: performance.memory ? Math.round(performance.memory.usedJSHeapSize / 1048576) : null,
    longTasks: window.__longTasks.length,
    longestTaskMs: Math.round(Math.max(0, ...window.__longTasks)),
    state: window.sseLogs.state(),
    stats: window.sseLogs.stats,
  }));
  assert.equal(page_.state.lines, TOTAL);
  assert.equal(page_.stats.duplicates, 0);
  assert.equal(page_.stats.gaps, 0);
  assert.match(await page.textContent('#status'), /^ended · 200,000 lines/);
  assert.ok(page_.domNodes < 2000, `DOM nodes: ${page_.domNodes}`);

  // A search over all 200,000 lines stays interactive too.
  const ts = performance.now();
  await page.fill('#q', 'module_996 ');
  await page.locator('#hits', { hasText: /lines$/ }).waitFor();
  const searchMs = performance.now() - ts;
  const hits = await page.evaluate(() => window.sseLogs.state().matches);
  assert.equal(hits, Array.from({ length: TOTAL }, (_, i) => plain(i + 1)).filter((l) => l.includes('module_996 ')).length);

  const report = {
    lines: TOTAL,
    writeFirstHalfMs: Math.round(writeMs),
    backlogFirstHalfMs: Math.round(backlogMs),
    loadAllMs: Math.round(loadMs),
    writeSecondHalfWhileOpenMs: Math.round(writtenAt - t0 - backlogMs),
    endedAfterLastWriteMs: Math.round(catchUpMs),
    scrollJumpWhileStreamingMs: stats(live),
    wheelWhileStreamingMs: stats(liveWheels),
    scrollJumpMs: stats(jumps),
    wheelToNewLinesMs: stats(wheels),
    searchAllMs: Math.round(searchMs),
    ...page_,
  };
  delete report.state;
  delete report.stats;
  fs.writeFileSync(path.join(artifacts, 'perf.json'), JSON.stringify(report, null, 2) + '\n');
  t.diagnostic(`200k lines: backlog of 100k in ${report.backlogFirstHalfMs} ms, all 200k in ${report.loadAllMs} ms`);
  t.diagnostic(`scroll jump (scrollTop to painted row): median ${report.scrollJumpMs.median} ms, max ${report.scrollJumpMs.max} ms; while streaming: max ${report.scrollJumpWhileStreamingMs.max} ms`);
  t.diagnostic(`mouse wheel to new lines on screen (incl. CDP round trip): median ${report.wheelToNewLinesMs.median} ms, max ${report.wheelToNewLinesMs.max} ms; while streaming: median ${report.wheelWhileStreamingMs.median} ms, max ${report.wheelWhileStreamingMs.max} ms`);
  t.diagnostic(`search over 200k lines: ${report.searchAllMs} ms; DOM elements: ${report.domNodes}; JS heap: ${report.heapMB} MB; longest task: ${report.longestTaskMs} ms`);

  // The 95th percentile, not the single worst sample: on a shared 2-core machine one sample can
  // catch a garbage collection or another process; the maximum is printed above.
  assert.ok(report.scrollJumpMs.p95 < BUDGET_MS, `scroll answered in ${report.scrollJumpMs.p95} ms (p95)`);
  assert.ok(report.scrollJumpWhileStreamingMs.p95 < BUDGET_MS, `scroll while streaming answered in ${report.scrollJumpWhileStreamingMs.p95} ms (p95)`);
  assert.ok(report.wheelToNewLinesMs.p95 < BUDGET_MS, `wheel answered in ${report.wheelToNewLinesMs.p95} ms (p95)`);
  assert.deepEqual(errors, []);
  await context.close();
});

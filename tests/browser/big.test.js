// Big logs open at their end (issue 15): an ended 200,000-line log written straight into MongoDB
// shows its last line first, then fills in the rest behind it; a line written while the backlog
// is still loading appears once, in its place; `raw` serves the text to curl; and the page holds
// 1,000,000 lines. The figures are printed and saved to artifacts/big.json (not timed assertions).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, it } from 'node:test';
import { artifacts, launchBrowser, mongo, openPage, Service, uniqueName } from './lib/harness.js';

const TOTAL = 200_000;
const MILLION = 1_000_000;

let service;
let browser;
let db;
const report = {
  machine: '2-core VM shared with other work; headless Chromium; SecantusDB',
  binary: process.env.SSE_LOGS_BIN || 'target/debug/sse-logs',
};

before(async () => {
  service = await Service.start('big');
  browser = await launchBrowser();
  db = await mongo(service);
});

after(async () => {
  fs.writeFileSync(path.join(artifacts, 'big.json'), JSON.stringify(report, null, 2) + '\n');
  await db?.client.close();
  await browser?.close();
  await service?.close();
});

// ~80 bytes; one line in ten with ANSI colour.
function line(n) {
  const step = String(n).padStart(7, '0');
  return n % 10 === 0
    ? `\x1b[1;32m[${step}]\x1b[0m deploy step ${n}: rolling out shard_${n % 997} ... \x1b[32mok\x1b[0m`
    : `[${step}] deploy step ${n}: rolling out shard_${n % 997} to cluster eu-west ... ok (${(n % 83) / 10}s)`;
}
const plain = (n) => line(n).replace(/\x1b\[[0-9;]*m/g, '');

/** Writes lines from..to straight into MongoDB, as a build process does (ordered, so `_id`s increase). */
async function write(id, from, to, { done = false } = {}) {
  const BATCH = 20_000;
  for (let start = from; start <= to; start += BATCH) {
    const end = Math.min(to, start + BATCH - 1);
    const docs = Array.from({ length: end - start + 1 }, (_, i) => ({ type: 'ci', id, log: line(start + i) }));
    await db.collection.insertMany(docs, { ordered: true });
  }
  if (done) await db.collection.insertOne({ type: 'ci', id, log: '[DONE]' });
}

/**
 * Waits until the service's change stream has passed everything written so far: a line written
 * now reaches a stream subscriber only after the hub has read every earlier insert. So a log is
 * opened as people open a finished build's log, not while the service still digests its writes.
 */
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

/** `sse_logs_tail_reads_total{how}`: `?tail=` answers by how their position was found. */
async function tailReads(how) {
  const text = await (await fetch(service.url('/metrics'))).text();
  const line = text.split('\n').find((l) => l.startsWith(`sse_logs_tail_reads_total{how="${how}"} `));
  assert.ok(line, 'the series is exported');
  return Number(line.split(' ').pop());
}

/** In the page: ms from navigation until line n's row is inside the visible part of the log. */
function lineVisibleAt(page, n, timeout = 60_000) {
  return page.waitForFunction((want) => {
    const vp = document.getElementById('viewport').getBoundingClientRect();
    const row = document.querySelector(`#rows .row[data-n="${want}"]:not(.pending)`);
    if (!row) return false;
    const r = row.getBoundingClientRect();
    return r.top >= vp.top - 1 && r.bottom <= vp.bottom + 1 ? performance.now() : false;
  }, n, { polling: 'raf', timeout }).then((handle) => handle.jsonValue());
}

/** In the page: ms from navigation until the whole log is in memory. */
function completeAt(page, timeout = 120_000) {
  return page.waitForFunction(() => window.sseLogs.state().complete && performance.now(), null, { timeout })
    .then((handle) => handle.jsonValue());
}

async function heapMB(page) {
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('HeapProfiler.collectGarbage');
  const { usedSize } = await cdp.send('Runtime.getHeapUsage');
  await cdp.detach();
  return Math.round(usedSize / 1048576);
}

const ended = uniqueName('ended');

it(`opens an ended ${TOTAL.toLocaleString('en-US')}-line log at its end, then fills in the rest`, async (t) => {
  const tw = performance.now();
  await write(ended, 1, TOTAL, { done: true });
  report.write200kMs = Math.round(performance.now() - tw);
  await settle();

  const indexTails = await tailReads('index');
  const { page, context, errors } = await openPage(browser);
  await page.goto(service.viewerUrl('ci', ended), { waitUntil: 'commit' });
  const lastVisible = await lineVisibleAt(page, TOTAL);
  // The page opened at the tail without a count: the index's length, counted as the log ended.
  assert.equal(await tailReads('index'), indexTails + 1);
  assert.equal(await page.textContent(`#rows .row[data-n="${TOTAL}"] .tx`), plain(TOTAL));
  const complete = await completeAt(page);
  const ts = performance.now();
  await page.fill('#q', 'shard_996 ');
  await page.locator('#hits', { hasText: /lines$/ }).waitFor();
  const searchMs = performance.now() - ts;
  const expected = Array.from({ length: TOTAL }, (_, i) => plain(i + 1)).filter((l) => l.includes('shard_996 ')).length;
  assert.equal(await page.evaluate(() => window.sseLogs.state().matches), expected);

  const state = await page.evaluate(() => ({ ...window.sseLogs.state(), stats: window.sseLogs.stats }));
  assert.equal(state.lines, TOTAL);
  assert.equal(state.stats.duplicates, 0, 'no line twice');
  assert.equal(state.stats.gaps, 0, 'no line missing');
  assert.equal(state.stats.tail + state.stats.backfilled, TOTAL, 'each line arrived once: tail + backfill');
  for (const n of [1, 2, 9_999, 10_000, TOTAL - state.stats.tail, TOTAL - state.stats.tail + 1, TOTAL]) {
    assert.equal(await page.evaluate((k) => window.sseLogs.line(k), n), plain(n), `line ${n}`);
  }
  assert.match(await page.textContent('#status'), /^ended · 200,000 lines/);
  Object.assign(report, {
    lastLineVisibleMs: Math.round(lastVisible),
    tailAnsweredMs: state.stats.tailMs,
    wholeLogLoadedMs: Math.round(complete),
    searchAfterLoadMs: Math.round(searchMs),
    heap200kMB: await heapMB(page),
  });
  t.diagnostic(`200k ended log: last line visible ${report.lastLineVisibleMs} ms after navigation (tail answered at ${report.tailAnsweredMs} ms); whole log loaded ${report.wholeLogLoadedMs} ms; then a search over it ${report.searchAfterLoadMs} ms; JS heap ${report.heap200kMB} MB`);
  assert.deepEqual(errors, []);
  await context.close();
});

it('opens a link to #L120 of a big log at line 120', async () => {
  const { page, context, errors } = await openPage(browser);
  await page.goto(service.viewerUrl('ci', ended, '#L120'));
  await page.waitForFunction(() => document.querySelector('#rows .row.sel:not(.pending)')?.dataset.n === '120');
  assert.equal(await page.textContent('#rows .row.sel .tx'), plain(120));
  assert.equal(await page.evaluate(() => window.sseLogs.state().follow), false);
  assert.deepEqual(errors, []);
  await context.close();
});

it('shows a line written while the backlog is loading exactly once, in its place', async (t) => {
  const id = uniqueName('live');
  await write(id, 1, TOTAL);
  await settle();
  const { page, context, errors } = await openPage(browser);
  await page.goto(service.viewerUrl('ci', id), { waitUntil: 'commit' });
  await lineVisibleAt(page, TOTAL);
  const loadingWhenWritten = await page.evaluate(() => !window.sseLogs.state().complete);
  const tw = performance.now();
  await write(id, TOTAL + 1, TOTAL + 3);
  await lineVisibleAt(page, TOTAL + 3);
  const liveMs = performance.now() - tw;
  await write(id, TOTAL + 4, TOTAL + 4, { done: true });
  await completeAt(page);
  const state = await page.evaluate(() => ({ ...window.sseLogs.state(), stats: window.sseLogs.stats }));
  assert.ok(loadingWhenWritten, 'the live lines were written while the backlog was still loading');
  assert.equal(state.lines, TOTAL + 4);
  assert.equal(state.stats.duplicates, 0, 'no line twice at the seams');
  assert.equal(state.stats.gaps, 0, 'no line missing at the seams');
  assert.equal(state.stats.tail + state.stats.backfilled + state.stats.received, TOTAL + 4, 'each line arrived once');
  for (let n = TOTAL - 2; n <= TOTAL + 4; n++) {
    assert.equal(await page.evaluate((k) => window.sseLogs.line(k), n), plain(n), `line ${n}`);
  }
  const tailStart = TOTAL - state.stats.tail;
  for (const n of [tailStart, tailStart + 1]) {
    assert.equal(await page.evaluate((k) => window.sseLogs.line(k), n), plain(n), `line ${n} at the backfill seam`);
  }
  report.liveLineWhileLoadingMs = Math.round(liveMs);
  t.diagnostic(`a line written while the 200k backlog was loading: on screen ${report.liveLineWhileLoadingMs} ms after the insert, exactly once`);
  assert.deepEqual(errors, []);
  await context.close();
});

it('serves the 200,000 lines as text to curl', async (t) => {
  const url = service.logUrl('ci', ended, '/raw');
  const { stdout } = await promisify(execFile)('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total}', url]);
  const [status, bytes, seconds] = stdout.split(' ');
  const expected = Array.from({ length: TOTAL }, (_, i) => plain(i + 1).length).reduce((a, b) => a + b, 0);
  assert.equal(status, '200');
  assert.ok(Number(bytes) > expected, `${bytes} bytes`); // the text, escape sequences included
  const text = await (await fetch(url)).text();
  const lines = text.split('\n');
  assert.equal(lines.length, TOTAL + 1);
  assert.equal(lines[TOTAL - 1], line(TOTAL));
  assert.equal(lines[TOTAL], '');
  report.rawCurl = { seconds: Number(seconds), linesPerSecond: Math.round(TOTAL / Number(seconds)), bytes: Number(bytes) };
  t.diagnostic(`raw with curl: 200k lines (${(Number(bytes) / 1048576).toFixed(1)} MiB) in ${Number(seconds).toFixed(2)} s: ${report.rawCurl.linesPerSecond} lines/s`);
});

it(`holds ${MILLION.toLocaleString('en-US')} lines`, async (t) => {
  const id = uniqueName('million');
  const tw = performance.now();
  await write(id, 1, MILLION, { done: true });
  report.write1MMs = Math.round(performance.now() - tw);
  await settle();
  const { page, context, errors } = await openPage(browser);
  const crashed = [];
  page.on('crash', () => crashed.push('crash'));
  await page.goto(service.viewerUrl('ci', id), { waitUntil: 'commit' });
  const lastVisible = await lineVisibleAt(page, MILLION, 120_000);
  const complete = await completeAt(page, 300_000);
  const state = await page.evaluate(() => ({ ...window.sseLogs.state(), stats: window.sseLogs.stats }));
  assert.equal(state.lines, MILLION);
  assert.equal(state.stats.duplicates, 0);
  assert.equal(state.stats.gaps, 0);
  assert.equal(await page.evaluate((k) => window.sseLogs.line(k), 654_321), plain(654_321));
  await page.evaluate(() => { location.hash = '#L777777'; });
  await page.waitForFunction(() => document.querySelector('#rows .row.sel')?.dataset.n === '777777');
  assert.equal(await page.textContent('#rows .row.sel .tx'), plain(777_777));
  report.million = {
    lastLineVisibleMs: Math.round(lastVisible),
    wholeLogLoadedMs: Math.round(complete),
    heapMB: await heapMB(page),
  };
  t.diagnostic(`1M lines (written in ${(report.write1MMs / 1000).toFixed(1)} s): last line visible ${report.million.lastLineVisibleMs} ms after navigation; whole log loaded ${report.million.wholeLogLoadedMs} ms; JS heap ${report.million.heapMB} MB`);
  assert.deepEqual(crashed, []);
  assert.deepEqual(errors, []);
  await context.close();
});

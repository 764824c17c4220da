// Sections in the viewer (issue 17): GitHub Actions groups, GitLab sections and Buildkite headers,
// nested, collapsed or expanded by default, growing live, opened by search and #L, and bad markers
// shown as text. docs/viewer.png is taken here.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import {
  openPage,
  root,
  screenshot,
  uniqueName,
  visibleLines,
  waitComplete,
  waitEnded,
  withService,
} from './lib/harness.js';

const ESC = '\x1b';

/**
 * Every row in the DOM: number, text, and for headers whether open and what the header says. Lines
 * appended in one request share one time, so durations (" · 0.0 s") are left out unless asked for.
 */
async function rows(page, { durations = false } = {}) {
  const all = await page.$$eval('#rows .row', (els) => els.map((row) => {
    const out = { n: Number(row.dataset.n), text: row.querySelector('.tx').textContent };
    const depth = Number(row.style.getPropertyValue('--d') || 0);
    if (depth) out.depth = depth;
    if (row.classList.contains('hdr')) {
      out.open = row.querySelector('.tog').getAttribute('aria-expanded') === 'true';
      out.meta = row.querySelector('.meta').textContent;
    }
    return out;
  }));
  if (!durations) for (const r of all) if (r.meta) r.meta = r.meta.replace(/ · [0-9.]+ s\b/, '');
  return all;
}
const numbers = (rs) => rs.map((r) => r.n);
const sections = (page) => page.evaluate(() => window.sseLogs.sections());

/** Clicks a section's header and waits until it has turned. */
async function toggle(page, n) {
  const was = await page.getAttribute(`#rows .row[data-n="${n}"] .tog`, 'aria-expanded');
  await page.click(`#rows .row[data-n="${n}"] .tx`);
  await page.waitForFunction(([k, w]) =>
    document.querySelector(`#rows .row[data-n="${k}"] .tog`)?.getAttribute('aria-expanded') === String(w !== 'true'), [n, was]);
}

describe('sections', () => {
  const env = withService('sections');

  it('GitHub groups: closed by default, nested, markers hidden, line counts in the headers', async () => {
    const id = uniqueName('github');
    await env.service.append('ci', id, [
      'Run actions/checkout@v4', //           1
      '::group::Install dependencies', //     2
      'npm ci', //                            3
      '::group::Resolve', //                  4
      'resolved 120 packages', //             5
      '::endgroup::', //                      6
      'added 120 packages', //                7
      '::endgroup::', //                      8
      '::group::Lint', //                     9
      'eslint .', //                          10
      '::endgroup::', //                      11
      'All checks passed', //                 12
    ], { done: true });
    const { page, context, errors } = await openPage(env.browser);
    await page.goto(env.service.viewerUrl('ci', id));
    await waitEnded(page);
    assert.deepEqual(await rows(page), [
      { n: 1, text: 'Run actions/checkout@v4' },
      { n: 2, text: 'Install dependencies', open: false, meta: '5 lines' },
      { n: 9, text: 'Lint', open: false, meta: '1 line' },
      { n: 12, text: 'All checks passed' },
    ]);
    await toggle(page, 2);
    assert.deepEqual(numbers(await rows(page)), [1, 2, 3, 4, 7, 9, 12]);
    assert.deepEqual((await rows(page)).find((r) => r.n === 4), { n: 4, text: 'Resolve', depth: 1, open: false, meta: '1 line' });
    await toggle(page, 4);
    assert.deepEqual(await rows(page), [
      { n: 1, text: 'Run actions/checkout@v4' },
      { n: 2, text: 'Install dependencies', open: true, meta: '5 lines' },
      { n: 3, text: 'npm ci', depth: 1 },
      { n: 4, text: 'Resolve', depth: 1, open: true, meta: '1 line' },
      { n: 5, text: 'resolved 120 packages', depth: 2 },
      { n: 7, text: 'added 120 packages', depth: 1 },
      { n: 9, text: 'Lint', open: false, meta: '1 line' },
      { n: 12, text: 'All checks passed' },
    ]);
    // Closing the outer group hides the inner one too, which keeps its own state.
    await toggle(page, 2);
    assert.deepEqual(numbers(await rows(page)), [1, 2, 9, 12]);
    await page.focus('#viewport');
    await page.keyboard.press(']');
    await page.waitForFunction(() => window.sseLogs.state().rows === 9);
    assert.deepEqual(numbers(await rows(page)), [1, 2, 3, 4, 5, 7, 9, 10, 12]);
    await page.keyboard.press('[');
    await page.waitForFunction(() => window.sseLogs.state().rows === 4);
    assert.deepEqual(numbers(await rows(page)), [1, 2, 9, 12]);
    assert.deepEqual((await sections(page)).map((s) => [s.line, s.title, s.dialect, s.depth, s.end]), [
      [2, 'Install dependencies', 'github', 0, 8], [4, 'Resolve', 'github', 1, 6], [9, 'Lint', 'github', 0, 11],
    ]);
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('GitLab sections: open unless [collapsed=true], durations from their timestamps, ANSI in titles', async () => {
    const id = uniqueName('gitlab');
    const K = `\r${ESC}[0K`;
    await env.service.append('ci', id, [
      `section_start:1700000000:prepare${K}Preparing the environment`, //            1
      'Using docker executor', //                                                   2
      `section_end:1700000003:prepare${K}`, //                                       3
      `${ESC}[0Ksection_start:1700000003:build[collapsed=true]${K}${ESC}[32;1mBuilding${ESC}[0m`, // 4
      'make all', //                                                                5
      `section_start:1700000004:tests${K}Tests`, //                                  6
      'all green', //                                                               7
      `section_end:1700000010:tests${K}`, //                                         8
      `section_end:1700000075:build${K}`, //                                         9
      'Job succeeded', //                                                           10
    ], { done: true });
    const { page, context, errors } = await openPage(env.browser);
    await page.goto(env.service.viewerUrl('ci', id));
    await waitEnded(page);
    assert.deepEqual(await rows(page, { durations: true }), [
      { n: 1, text: 'Preparing the environment', open: true, meta: '1 line · 3.0 s' },
      { n: 2, text: 'Using docker executor', depth: 1 },
      { n: 4, text: 'Building', open: false, meta: '4 lines · 1 min 12 s' },
      { n: 10, text: 'Job succeeded' },
    ]);
    // The title keeps its colour.
    assert.equal(await page.$eval('#rows .row[data-n="4"] .tx span', (s) => getComputedStyle(s).color), 'rgb(63, 185, 80)'); // --a2
    await toggle(page, 4);
    assert.deepEqual((await rows(page, { durations: true })).slice(2), [
      { n: 4, text: 'Building', open: true, meta: '4 lines · 1 min 12 s' },
      { n: 5, text: 'make all', depth: 1 },
      { n: 6, text: 'Tests', depth: 1, open: true, meta: '1 line · 6.0 s' },
      { n: 7, text: 'all green', depth: 2 },
      { n: 10, text: 'Job succeeded' },
    ]);
    assert.deepEqual((await sections(page)).map((s) => [s.line, s.dialect, s.depth, s.end, s.durationMs]), [
      [1, 'gitlab', 0, 3, 3000], [4, 'gitlab', 0, 9, 72000], [6, 'gitlab', 1, 8, 6000],
    ]);
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('Buildkite: --- closed, +++ open, ~~~ open when it holds an error, ^^^ +++ opens the previous one; headers do not nest', async () => {
    const id = uniqueName('buildkite');
    await env.service.append('ci', id, [
      '--- :pipeline: Setup', //      1
      'fetching', //                  2
      '+++ :hammer: Build', //        3
      'compiling', //                 4
      '~~~ Flaky tests', //           5
      'retry 1 passed', //            6
      '~~~ Integration', //           7
      'connecting', //                8
      'request FAILED: 503', //       9
      '--- Upload', //                10
      'uploading', //                 11
      '^^^ +++', //                   12
      'upload done', //               13
    ], { done: true });
    const { page, context, errors } = await openPage(env.browser);
    await page.goto(env.service.viewerUrl('ci', id));
    await waitEnded(page);
    assert.deepEqual(await rows(page), [
      { n: 1, text: ':pipeline: Setup', open: false, meta: '1 line' },
      { n: 3, text: ':hammer: Build', open: true, meta: '1 line' },
      { n: 4, text: 'compiling', depth: 1 },
      { n: 5, text: 'Flaky tests', open: false, meta: '1 line' },
      { n: 7, text: 'Integration', open: true, meta: '2 lines · 1 error' },
      { n: 8, text: 'connecting', depth: 1 },
      { n: 9, text: 'request FAILED: 503', depth: 1 },
      { n: 10, text: 'Upload', open: true, meta: '3 lines' },
      { n: 11, text: 'uploading', depth: 1 },
      { n: 13, text: 'upload done', depth: 1 },
    ]);
    assert.deepEqual((await sections(page)).map((s) => [s.line, s.depth, s.closed]),
      [[1, 0, true], [3, 0, true], [5, 0, true], [7, 0, true], [10, 0, false]]);
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('live: new lines land in the open section that holds the newest line, which is open while the log is live', async () => {
    const id = uniqueName('live');
    const watcher = await openPage(env.browser);
    const page = watcher.page;
    await page.goto(env.service.viewerUrl('ci', id));
    await page.locator('#status.live').waitFor();
    await env.service.append('ci', id, ['checkout', '::group::Build', 'step 1']);
    await page.waitForFunction(() => window.sseLogs.state().lines === 3);
    assert.deepEqual(await rows(page), [
      { n: 1, text: 'checkout' },
      { n: 2, text: 'Build', open: true, meta: '1 line' },
      { n: 3, text: 'step 1', depth: 1 },
    ]);
    await env.service.append('ci', id, ['step 2']);
    await page.locator('#rows .row[data-n="2"] .meta', { hasText: '2 lines' }).waitFor();
    assert.deepEqual((await rows(page)).at(-1), { n: 4, text: 'step 2', depth: 1 });
    await env.service.append('ci', id, ['::endgroup::', '::group::Test', 'test 1']);
    await page.waitForFunction(() => window.sseLogs.state().lines === 7);
    await env.service.append('ci', id, ['test 2']);
    await page.locator('#rows .row[data-n="6"] .meta', { hasText: '2 lines' }).waitFor();
    // Build stays open here: it was open while it was live, and the reader saw it so.
    assert.deepEqual(await rows(page), [
      { n: 1, text: 'checkout' },
      { n: 2, text: 'Build', open: true, meta: '2 lines' },
      { n: 3, text: 'step 1', depth: 1 },
      { n: 4, text: 'step 2', depth: 1 },
      { n: 6, text: 'Test', open: true, meta: '2 lines' },
      { n: 7, text: 'test 1', depth: 1 },
      { n: 8, text: 'test 2', depth: 1 },
    ]);

    // A page opened now: the finished group is closed, the live one open; its lines keep arriving there.
    const late = await openPage(env.browser);
    await late.page.goto(env.service.viewerUrl('ci', id));
    await late.page.waitForFunction(() => window.sseLogs.state().lines === 8);
    assert.deepEqual(numbers(await rows(late.page)), [1, 2, 6, 7, 8]);
    assert.equal((await rows(late.page))[1].open, false);
    await env.service.append('ci', id, ['::group::Nested', 'deep']);
    await late.page.waitForFunction(() => window.sseLogs.state().lines === 10);
    assert.deepEqual((await rows(late.page)).slice(2), [
      { n: 6, text: 'Test', open: true, meta: '4 lines' },
      { n: 7, text: 'test 1', depth: 1 },
      { n: 8, text: 'test 2', depth: 1 },
      { n: 9, text: 'Nested', depth: 1, open: true, meta: '1 line' },
      { n: 10, text: 'deep', depth: 2 },
    ]);
    // The newest line is in view (following).
    assert.ok((await visibleLines(late.page)).includes(10));
    await env.service.append('ci', id, ['::endgroup::', '::endgroup::', 'done'], { done: true });
    await waitEnded(late.page);
    await waitEnded(page);
    assert.deepEqual(numbers(await rows(late.page)), [1, 2, 6, 7, 8, 9, 10, 13]);
    assert.deepEqual((await sections(late.page)).map((s) => [s.line, s.lines, s.end]), [[2, 2, 5], [6, 5, 12], [9, 1, 11]]);
    assert.deepEqual(watcher.errors, []);
    assert.deepEqual(late.errors, []);
    await watcher.context.close();
    await late.context.close();
  });

  it('search opens a closed section to show a match; #L opens the sections around the line', async () => {
    const id = uniqueName('reveal');
    const filler = (from, n) => Array.from({ length: n }, (_, i) => `filler ${from + i}`);
    // Closed, the log is a few rows; open, the lines sought are far below the first screen.
    const lines = [
      ...filler(1, 5), //                           1-5
      '::group::Outer', //                          6
      ...filler(7, 144), //                         7-150
      '::group::Inner', //                          151
      'the needle is here', //                      152
      ...filler(153, 100), //                       153-252
      '::endgroup::', //                            253
      '::endgroup::', //                            254
      ...filler(255, 5), //                         255-259
    ];
    await env.service.append('ci', id, lines, { done: true });
    const { page, context } = await openPage(env.browser);
    await page.goto(env.service.viewerUrl('ci', id));
    await waitEnded(page);
    assert.equal(await page.evaluate(() => window.sseLogs.state().rows), 5 + 1 + 5);
    await page.fill('#q', 'needle');
    await page.locator('#hits', { hasText: '1 line' }).waitFor();
    assert.equal(await page.locator('#rows .row[data-n="152"]').count(), 0, 'the match is in a closed section');
    await page.press('#q', 'Enter');
    await page.waitForFunction(() => document.querySelector('#rows .row.cur')?.dataset.n === '152');
    assert.ok((await visibleLines(page)).includes(152));
    assert.equal(await page.textContent('#rows .row.cur mark'), 'needle');
    assert.deepEqual((await sections(page)).map((s) => s.open), [true, true]);
    await context.close();

    const linked = await openPage(env.browser);
    await linked.page.goto(env.service.viewerUrl('ci', id, '#L200'));
    await waitEnded(linked.page);
    await linked.page.waitForFunction(() => document.querySelector('#rows .row.sel')?.dataset.n === '200');
    assert.ok((await visibleLines(linked.page)).includes(200));
    assert.deepEqual((await sections(linked.page)).map((s) => s.open), [true, true]);
    assert.equal(await linked.page.textContent('#rows .row.sel .tx'), 'filler 200');
    await linked.context.close();
  });

  it('shows stray and unbalanced markers as text; an unclosed section ends at the end of the log', async () => {
    const id = uniqueName('stray');
    await env.service.append('ci', id, [
      '::endgroup::', //                                        1: nothing to end
      `section_end:1700000000:nothing\r${ESC}[0Kend of nothing`, // 2: nothing to end
      '^^^ +++', //                                             3: no Buildkite section yet
      `section_start:1700000001:a\r${ESC}[0KSection A`, //       4
      'in a', //                                                5
      `section_end:1700000002:b\r${ESC}[0Kend of b`, //          6: b was never started
      `section_end:1700000003:a\r${ESC}[0K`, //                  7
      '::group::Open forever', //                               8
      'inside 1', //                                            9
      'inside 2', //                                            10
    ], { done: true });
    const { page, context, errors } = await openPage(env.browser);
    await page.goto(env.service.viewerUrl('ci', id));
    await waitEnded(page);
    assert.deepEqual(await rows(page, { durations: true }), [
      { n: 1, text: '::endgroup::' },
      { n: 2, text: 'end of nothing' },
      { n: 3, text: '^^^ +++' },
      { n: 4, text: 'Section A', open: true, meta: '2 lines · 2.0 s' },
      { n: 5, text: 'in a', depth: 1 },
      { n: 6, text: 'end of b', depth: 1 },
      { n: 8, text: 'Open forever', open: false, meta: '2 lines · 0.0 s' }, // one append: one time
    ]);
    await toggle(page, 8);
    assert.deepEqual(numbers(await rows(page)), [1, 2, 3, 4, 5, 6, 8, 9, 10]);
    assert.deepEqual((await sections(page)).map((s) => [s.line, s.lines, s.closed, s.end]), [[4, 2, true, 7], [8, 2, false, null]]);
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('a big log read from its tail first ends with the same sections as if read from line 1', async () => {
    // 5,000 lines: the page reads the last 2,000 first. A group opened at line 100 ends at line 4,500,
    // inside that tail, where it first looks like a stray end; and line 4,800 really is one.
    const id = uniqueName('tailfirst');
    const text = (n) => {
      if (n === 100) return '::group::Outer';
      if (n === 4000) return '::group::Inner';
      if (n === 4100 || n === 4500 || n === 4800) return '::endgroup::';
      return `line ${n}`;
    };
    const docs = Array.from({ length: 5000 }, (_, i) => ({ type: 'ci', id, log: text(i + 1) }));
    await env.db.collection.insertMany(docs, { ordered: true });
    await env.db.collection.insertOne({ type: 'ci', id, log: '[DONE]' });
    const { page, context, errors } = await openPage(env.browser);
    await page.goto(env.service.viewerUrl('ci', id), { waitUntil: 'commit' });
    await page.waitForFunction(() => document.querySelector('#rows .row[data-n="5000"]'));
    await waitComplete(page);
    await page.waitForFunction(() => window.sseLogs.state().sectionsFinal);
    assert.deepEqual((await sections(page)).map((s) => [s.line, s.depth, s.lines, s.end, s.open]),
      [[100, 0, 4399, 4500, false], [4000, 1, 99, 4100, false]]);
    // Outer is closed: its header is followed by the first line after its end marker.
    await page.evaluate(() => { location.hash = '#L99'; });
    await page.waitForFunction(() => document.querySelector('#rows .row.sel')?.dataset.n === '99');
    const around = numbers(await rows(page));
    assert.deepEqual(around.slice(around.indexOf(99), around.indexOf(99) + 4), [99, 100, 4501, 4502]);
    await page.evaluate(() => { location.hash = '#L4800'; });
    await page.waitForFunction(() => document.querySelector('#rows .row.sel')?.dataset.n === '4800');
    assert.equal(await page.textContent('#rows .row.sel .tx'), '::endgroup::');
    assert.equal(await page.evaluate(() => window.sseLogs.state().rows), 99 + 1 + 500); // 1-99, Outer, 4501-5000
    const stats = await page.evaluate(() => window.sseLogs.stats);
    assert.equal(stats.duplicates, 0);
    assert.equal(stats.gaps, 0);
    // Lines 4,000 to 5,000 came in the tail, line 100 in the backfill: the case this test is about.
    assert.ok(5000 - stats.tail < 4000 && stats.tail + stats.backfilled === 5000, JSON.stringify(stats));
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('looks right (docs/viewer.png)', async () => {
    const id = 'web#5124';
    const t0 = Date.UTC(2026, 2, 14, 9, 41, 7);
    const c = (code, s) => `${ESC}[${code}m${s}${ESC}[0m`;
    const K = `\r${ESC}[0K`;
    const ts = Math.floor(t0 / 1000);
    const script = [
      [0, `${c('1;36', 'Running with gitlab-runner 17.4.0')} on runner-7 (docker)`],
      [0.2, `section_start:${ts}:prepare[collapsed=true]${K}${c('1', 'Preparing the Docker executor')}`],
      ...Array.from({ length: 14 }, (_, i) => [0.2, `Pulling layer ${i + 1}/14`]),
      [3.1, `section_end:${ts + 3}:prepare${K}`],
      [3.1, `section_start:${ts + 3}:build${K}${c('1', 'cargo build --release')}`],
      [3.4, `${c('1;32', '   Compiling')} proc-macro2 v1.0.86`],
      [5.0, `${c('1;32', '   Compiling')} tokio v1.39.2`],
      [9.8, `${c('1;33', 'warning')}: unused variable: \`retry\``],
      [31.2, `${c('1;32', '    Finished')} release [optimized] target(s) in 28.1s`],
      [31.2, `section_end:${ts + 31}:build${K}`],
      [31.3, `section_start:${ts + 31}:test${K}${c('1', 'cargo test')}`],
      [31.5, '::group::unit tests'],
      ...Array.from({ length: 40 }, (_, i) => [32 + i * 0.05, `test hub::tests::case_${String(i + 1).padStart(2, '0')} ... ${c('32', 'ok')}`]),
      [34.1, '::endgroup::'],
      [34.2, '::group::integration tests'],
      [34.4, `test api::stream_resumes ... ${c('32', 'ok')}`],
      [35.0, `test api::slow_client_catches_up ... ${c('32', 'ok')}`],
      [36.9, `test api::resync_after_failover ... ${c('1;31', 'FAILED')}`],
      [37.0, '::error file=tests/api.rs,line=212::resync_after_failover: expected 5000 lines, got 4999'],
      [37.1, `test api::shutdown_ends_streams ... ${c('32', 'ok')}`],
      [37.2, `test result: ${c('1;31', 'FAILED')}. 3 passed; 1 failed; finished in 5.7s`],
    ];
    await env.db.collection.insertMany(script.map(([at, log]) => ({ type: 'build', id, log, ts: new Date(t0 + at * 1000) })), { ordered: true });
    const { page, context, errors } = await openPage(env.browser, { width: 1280, height: 520, timezoneId: 'UTC' });
    await page.goto(env.service.viewerUrl('build', id));
    await page.locator('#status.live').waitFor();
    await page.selectOption('#times', 'elapsed');
    // Preparing is closed ([collapsed=true]), the unit tests group too (GitHub's default), and the
    // group holding the newest line is open while the log is live.
    await page.waitForFunction(() => document.querySelector('#rows .row.err .tx')?.textContent.includes('FAILED'));
    assert.deepEqual((await sections(page)).map((s) => [s.title, s.open]), [
      ['Preparing the Docker executor', false], ['cargo build --release', true], ['cargo test', true],
      ['unit tests', false], ['integration tests', true],
    ]);
    const file = await screenshot(page, 'viewer.png');
    fs.copyFileSync(file, path.join(root, 'docs/viewer.png'));
    assert.deepEqual(errors, []);
    await context.close();
  });
});

// Errors in the viewer (issue 17): GitHub ::error/::warning annotations shown as their message and
// marked, lines matching the error patterns counted, e / Shift+E between them, a failed log opening at
// its first error, and the patterns set with ?errors=.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openPage, uniqueName, visibleLines, waitComplete, waitEnded, withService } from './lib/harness.js';

const filler = (from, n) => Array.from({ length: n }, (_, i) => `step ${from + i}: fine`);
const current = (page) => page.evaluate(() => Number(document.querySelector('#rows .row.ecur')?.dataset.n || 0));

describe('errors', () => {
  const env = withService('errors');

  it('shows annotations as their message, marks and counts errors, and e / Shift+E go between them', async () => {
    const id = uniqueName('nav');
    const lines = [
      'starting', //                                             1
      '::error file=app.js,line=1,col=5::Something broke', //    2
      ...filler(3, 147), //                                      3-149
      '::warning title=Old API::Deprecated API %25 used', //     150
      'build FAILED', //                                         151
      ...filler(152, 148), //                                    152-299
      'Traceback (most recent call last):', //                   300
      ...filler(301, 149), //                                    301-449
      'thread main panicked at src/lib.rs:3:5', //               450
      ...filler(451, 150), //                                    451-600
    ];
    const { page, context, errors } = await openPage(env.browser);
    await page.goto(env.service.viewerUrl('ci', id));
    await page.locator('#status.live').waitFor();
    await env.service.append('ci', id, lines);
    await page.waitForFunction(() => window.sseLogs.state().lines === 600);
    // A live log stays at its end, errors or not.
    assert.ok((await visibleLines(page)).includes(600));
    assert.deepEqual(await page.evaluate(() => window.sseLogs.errorLines()), [2, 151, 300, 450]);
    assert.equal(await page.textContent('#errnav'), '4 errors · 1 warning');

    await page.focus('#viewport');
    await page.keyboard.press('e'); // from the end: around to the first
    await page.waitForFunction(() => document.querySelector('#rows .row.ecur')?.dataset.n === '2');
    assert.ok((await visibleLines(page)).includes(2));
    assert.equal(await page.textContent('#errnav'), '1 / 4 errors · 1 warning');
    assert.equal(await page.evaluate(() => window.sseLogs.state().follow), false);
    // The annotation shows its message, marked red; its parameters are its tooltip.
    const ann = await page.$eval('#rows .row[data-n="2"]', (row) => ({
      cls: row.className, text: row.querySelector('.tx').textContent, title: row.querySelector('.tx').title,
      color: getComputedStyle(row.querySelector('.tx')).color,
      label: getComputedStyle(row.querySelector('.tx'), '::before').content,
    }));
    assert.deepEqual(ann, { cls: 'row err ecur ann', text: 'Something broke', title: 'file=app.js,line=1,col=5',
      color: 'rgb(248, 81, 73)', label: '"error"' });
    const press = async (key, n) => {
      await page.keyboard.press(key);
      await page.waitForFunction((want) => document.querySelector('#rows .row.ecur')?.dataset.n === String(want), n);
      assert.ok((await visibleLines(page)).includes(n), `${key} to line ${n}`);
    };
    await press('e', 151);
    const warning = await page.$eval('#rows .row[data-n="150"]', (row) => ({
      cls: row.className, text: row.querySelector('.tx').textContent, color: getComputedStyle(row.querySelector('.tx')).color,
    }));
    assert.deepEqual(warning, { cls: 'row warn ann', text: 'Deprecated API % used', color: 'rgb(210, 153, 34)' });
    // A line matching a pattern keeps its text and gets a red number.
    assert.equal(await page.$eval('#rows .row[data-n="151"] .ln', (a) => getComputedStyle(a).color), 'rgb(248, 81, 73)');
    assert.equal(await page.textContent('#rows .row[data-n="151"] .tx'), 'build FAILED');
    for (const [key, n] of [['e', 300], ['e', 450], ['e', 2], ['Shift+E', 450], ['Shift+E', 300]]) await press(key, n);
    assert.equal(await page.textContent('#errnav'), '3 / 4 errors · 1 warning');
    // The header's button goes to the next one too.
    await page.click('#errnav');
    await page.waitForFunction(() => document.querySelector('#rows .row.ecur')?.dataset.n === '450');
    // Annotations are searched by their message.
    await page.fill('#q', 'something broke');
    await page.locator('#hits', { hasText: '1 line' }).waitFor();
    await page.fill('#q', 'file=app');
    await page.locator('#hits', { hasText: 'no match' }).waitFor();
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('opens an ended log that failed at its first error (opening closed sections), unless #L says otherwise', async () => {
    const id = uniqueName('failed');
    const lines = [
      ...filler(1, 199), //                         1-199
      '::group::Run tests', //                      200
      ...filler(201, 49), //                        201-249
      'test parser ... FAILED', //                  250
      ...filler(251, 49), //                        251-299
      '::endgroup::', //                            300
      ...filler(301, 200), //                       301-500
      '::error::2 tests failed', //                 501
      ...filler(502, 99), //                        502-600
    ];
    await env.service.append('ci', id, lines, { done: true });
    const { page, context, errors } = await openPage(env.browser);
    await page.goto(env.service.viewerUrl('ci', id));
    await waitEnded(page);
    await page.waitForFunction(() => document.querySelector('#rows .row.ecur')?.dataset.n === '250');
    assert.ok((await visibleLines(page)).includes(250));
    assert.deepEqual(await page.evaluate(() => window.sseLogs.sections().map((s) => s.open)), [true]);
    assert.equal(await page.evaluate(() => window.sseLogs.state().follow), false);
    assert.equal(await page.textContent('#errnav'), '1 / 2 errors');
    await context.close();

    const linked = await openPage(env.browser);
    await linked.page.goto(env.service.viewerUrl('ci', id, '#L420'));
    await waitEnded(linked.page);
    await linked.page.waitForFunction(() => document.querySelector('#rows .row.sel')?.dataset.n === '420');
    assert.ok((await visibleLines(linked.page)).includes(420));
    assert.equal(await linked.page.locator('#rows .row.ecur').count(), 0);
    await linked.context.close();

    // A log without errors opens at its end, as before.
    const okId = uniqueName('passed');
    await env.service.append('ci', okId, filler(1, 600), { done: true });
    const ok = await openPage(env.browser);
    await ok.page.goto(env.service.viewerUrl('ci', okId));
    await waitEnded(ok.page);
    await ok.page.waitForFunction(() => document.querySelector('#rows .row[data-n="600"]'));
    assert.ok((await visibleLines(ok.page)).includes(600));
    assert.equal(await ok.page.isVisible('#errnav'), false);
    assert.deepEqual(errors, []);
    await ok.context.close();
  });

  it('opens a big failed log at its first error when that lies before the tail the page reads first', async () => {
    const id = uniqueName('bigfail');
    const text = (n) => (n === 321 ? 'ERROR: disk full' : n === 4321 ? 'error: retrying' : `line ${n}`);
    await env.db.collection.insertMany(Array.from({ length: 5000 }, (_, i) => ({ type: 'ci', id, log: text(i + 1) })), { ordered: true });
    await env.db.collection.insertOne({ type: 'ci', id, log: '[DONE]' });
    const { page, context, errors } = await openPage(env.browser);
    await page.goto(env.service.viewerUrl('ci', id), { waitUntil: 'commit' });
    await waitComplete(page);
    await page.waitForFunction(() => document.querySelector('#rows .row.ecur:not(.pending)')?.dataset.n === '321');
    assert.ok((await visibleLines(page)).includes(321));
    assert.equal(await page.textContent('#rows .row.ecur .tx'), 'ERROR: disk full');
    assert.deepEqual(await page.evaluate(() => window.sseLogs.errorLines()), [321, 4321]);
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('takes its error patterns from ?errors= (regular expressions, comma-separated); annotations always count', async () => {
    const id = uniqueName('patterns');
    await env.service.append('ci', id, [
      'E1234 bad thing happened', //     1
      'error: not an error here', //     2
      'W0001 only a warning', //         3
      '::error::always counted', //      4
      'FAILED (but not by these rules)', // 5
      'FATAL: stop', //                  6
    ]);
    const { page, context, errors } = await openPage(env.browser);
    await page.goto(env.service.viewerUrl('ci', id, `?errors=${encodeURIComponent('^E\\d{4},^FATAL')}`));
    await page.waitForFunction(() => window.sseLogs.state().lines === 6);
    assert.deepEqual(await page.evaluate(() => window.sseLogs.errorLines()), [1, 4, 6]);
    assert.equal(await page.textContent('#errnav'), '3 errors');
    await context.close();

    // A pattern that is no regular expression is named and left out.
    const bad = await openPage(env.browser);
    await bad.page.goto(env.service.viewerUrl('ci', id, `?errors=${encodeURIComponent('(unclosed,^W\\d+')}`));
    await bad.page.waitForFunction(() => window.sseLogs.state().lines === 6);
    await bad.page.locator('#toast.show', { hasText: 'Not a regular expression, ignored: (unclosed' }).waitFor();
    assert.deepEqual(await bad.page.evaluate(() => window.sseLogs.errorLines()), [3, 4]);
    await bad.context.close();

    // And the defaults: error, ERROR, FAILED, panicked at, Traceback (plain, case-sensitive substrings).
    const defaults = await openPage(env.browser);
    await defaults.page.goto(env.service.viewerUrl('ci', id));
    await defaults.page.waitForFunction(() => window.sseLogs.state().lines === 6);
    assert.deepEqual(await defaults.page.evaluate(() => window.sseLogs.errorLines()), [2, 4, 5]);
    assert.deepEqual(errors, []);
    await defaults.context.close();
  });
});

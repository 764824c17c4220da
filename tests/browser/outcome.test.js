// How a log ended, and idle logs, on the index page and in the viewer, in real headless Chromium:
// a failed, a succeeded and an idle log are told apart at a glance (a colour and a word), the
// index counts the failed ones and filters by state, and both pages' titles say it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { launchBrowser, openPage, screenshot, Service, uniqueName, waitEnded } from './lib/harness.js';

/** Waits until the index row of ci/id shows every field of `want`; returns the row. */
async function waitRow(page, id, want) {
  const handle = await page.waitForFunction(
    ([i, w]) => {
      const row = window.sseLogsIndex && window.sseLogsIndex.state().rows.find((r) => r.type === 'ci' && r.id === i);
      return row && Object.entries(w).every(([k, v]) => row[k] === v) && row;
    },
    [id, want],
    { timeout: 30_000 },
  );
  return handle.jsonValue();
}

describe('outcome and idle', () => {
  let service, browser;
  const tag = uniqueName('out');
  const failed = `${tag}-failed`, passed = `${tag}-passed`, quiet = `${tag}-quiet`;

  before(async () => {
    // A short idle time, so that a log with no new line turns idle within the test.
    service = await Service.start('outcome', { SSE_LOGS__INDEX__IDLE_AFTER_SECS: '2' });
    browser = await launchBrowser();
    await service.append('ci', failed, ['compiling', 'error: 1 test failed'], { done: true, outcome: 'failed', exitCode: 2 });
    await service.append('ci', passed, ['compiling', 'all tests passed'], { done: true, outcome: 'succeeded', exitCode: 0 });
    await service.append('ci', quiet, ['waiting for a runner']);
  });
  after(async () => {
    await browser?.close();
    await service?.close();
  });

  it('tells failed, succeeded and idle logs apart on the index page, counts the failed and filters by state', async () => {
    const { page, context, errors } = await openPage(browser);
    await page.goto(service.url('/'));
    const bad = await waitRow(page, failed, { kind: 'failed', state: 'failed · exit 2' });
    const good = await waitRow(page, passed, { kind: 'succeeded', state: 'succeeded' });
    const idle = await waitRow(page, quiet, { kind: 'idle', state: 'idle' });
    assert.match(idle.age, /^idle since \d\d:\d\d:\d\d$/);
    assert.equal(new Set([bad.color, good.color, idle.color]).size, 3, 'three colours');
    assert.equal(await page.textContent('#failed'), '1 failed');
    assert.equal(await page.title(), '✗ 1 failed · Logs · sse-logs');
    await screenshot(page, 'outcome-index.png');

    await page.click('button[data-state=failed]');
    await page.waitForFunction((id) => {
      const rows = window.sseLogsIndex.state().rows;
      return rows.length === 1 && rows[0].id === id;
    }, failed);
    await page.click('button[data-state=idle]');
    await page.waitForFunction((id) => {
      const rows = window.sseLogsIndex.state().rows;
      return rows.length === 1 && rows[0].id === id;
    }, quiet);
    assert.equal(await page.title(), 'Logs · sse-logs', 'no failed log in view');

    // A new line wakes the idle log up.
    await service.append('ci', quiet, ['runner found']);
    await page.click('button[data-state=all]');
    await waitRow(page, quiet, { kind: 'live', state: 'live', lines: '2 lines' });
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('says how a log ended in the viewer header, at its end line and in the title', async () => {
    for (const [id, word, mark, title] of [
      [failed, 'failed · exit 2', '— failed · exit 2 —', `✗ failed · exit 2 · ci / ${failed} · sse-logs`],
      [passed, 'succeeded', '— succeeded —', `✓ succeeded · ci / ${passed} · sse-logs`],
    ]) {
      const { page, context, errors } = await openPage(browser);
      await page.goto(service.viewerUrl('ci', id));
      await waitEnded(page);
      const status = await page.textContent('#status');
      assert.ok(status.startsWith(`${word} · 2 lines · `), status);
      assert.equal(await page.textContent('#endmark'), mark);
      assert.equal(await page.isVisible('#endmark'), true);
      assert.equal(await page.title(), title);
      const colors = await page.evaluate(() => [getComputedStyle(document.getElementById('status')).color,
        getComputedStyle(document.getElementById('endmark')).color]);
      assert.equal(colors[0], colors[1], 'the header and the end line share the outcome colour');
      await screenshot(page, `outcome-viewer-${word.split(' ')[0]}.png`);
      assert.deepEqual(errors, []);
      await context.close();
    }
  });

  it('says in the viewer that a live log went idle, and since when', async () => {
    const id = `${tag}-sleepy`;
    await service.append('ci', id, ['started']);
    const { page, context, errors } = await openPage(browser);
    await page.goto(service.viewerUrl('ci', id));
    await page.waitForFunction(() => window.sseLogs.state().idleSince !== null, null, { timeout: 30_000 });
    assert.match(await page.textContent('#status'), /^idle · no line since /);
    assert.equal(await page.title(), `◌ idle · ci / ${id} · sse-logs`);
    await service.append('ci', id, ['woke up']);
    await page.waitForFunction(() => window.sseLogs.state().idleSince === null && window.sseLogs.state().lines === 2);
    assert.equal(await page.textContent('#status'), 'live');
    assert.equal(await page.title(), `ci / ${id} · sse-logs`);
    assert.deepEqual(errors, []);
    await context.close();
  });
});

// The index page (GET /) in real headless Chromium: logs written by another process appear live,
// grow, end; filters and the keyboard work; docs/index.png is taken here.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { openPage, root, screenshot, Service, uniqueName, withService } from './lib/harness.js';

/** The rows the page shows now. */
const rows = (page) => page.evaluate(() => window.sseLogsIndex.state().rows);

/** Waits until the row of type/id shows every field of `want` (e.g. { state: 'live' }). */
function waitRow(page, type, id, want = {}) {
  return page.waitForFunction(
    ([t, i, w]) => {
      const row = window.sseLogsIndex && window.sseLogsIndex.state().rows.find((r) => r.type === t && r.id === i);
      return row && Object.entries(w).every(([k, v]) => row[k] === v);
    },
    [type, id, want],
    { timeout: 30_000 },
  );
}

describe('index page', () => {
  const env = withService('index');

  it('shows a log written straight into MongoDB appear, grow and end, live', async () => {
    const { page, context, errors } = await openPage(env.browser);
    await page.goto(env.service.url('/'));
    await page.waitForFunction(() => window.sseLogsIndex.state().connected);
    assert.match(await page.textContent('#empty'), /No logs yet/);

    const id = uniqueName('deploy');
    await env.db.collection.insertOne({ type: 'deploy', id, log: 'rolling out' });
    await waitRow(page, 'deploy', id, { state: 'live', lines: '1 line' });
    assert.equal(await page.textContent('#status'), 'live');

    await env.db.collection.insertMany([{ type: 'deploy', id, log: 'step 1' }, { type: 'deploy', id, log: 'step 2' }]);
    await waitRow(page, 'deploy', id, { lines: '3 lines' });

    await env.db.collection.insertOne({ type: 'deploy', id, log: '[DONE]' });
    await waitRow(page, 'deploy', id, { state: 'ended' });
    const [row] = (await rows(page)).filter((r) => r.id === id);
    assert.equal(row.lines, '4 lines');
    assert.match(row.age, /^ended \d+ s ago$/);
    const href = await page.getAttribute(`a.row[data-id="${id}"]`, 'href');
    assert.equal(href, `/logs/deploy/${id}`);
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('filters by type, state and id, and is usable from the keyboard', async () => {
    const tag = uniqueName('kb');
    await env.service.append('build', `${tag}-api`, ['compiling'], { done: true });
    await env.service.append('build', `${tag}-web`, ['compiling']);
    await env.service.append('ci', `${tag}-lint`, ['checking']);
    const { page, context, errors } = await openPage(env.browser);
    await page.goto(env.service.url('/'));
    await waitRow(page, 'ci', `${tag}-lint`);

    await page.selectOption('#type', 'build');
    await page.waitForFunction(() => window.sseLogsIndex.state().rows.every((r) => r.type === 'build'));
    await page.click('button[data-state=live]');
    await page.waitForFunction((t) => {
      const ids = window.sseLogsIndex.state().rows.map((r) => r.id);
      return ids.includes(`${t}-web`) && !ids.includes(`${t}-api`);
    }, tag);
    await page.click('button[data-state=all]');
    await page.selectOption('#type', '');

    await page.keyboard.press('/');
    assert.equal(await page.evaluate(() => document.activeElement.id), 'q');
    await page.keyboard.type(`${tag}-LI`);
    await page.waitForFunction((t) => {
      const ids = window.sseLogsIndex.state().rows.map((r) => r.id);
      return ids.length === 1 && ids[0] === `${t}-lint`;
    }, tag);
    await page.keyboard.press('ArrowDown');
    assert.equal(await page.evaluate(() => document.activeElement.dataset.id), `${tag}-lint`);
    await Promise.all([page.waitForURL(`**/logs/ci/${tag}-lint`), page.keyboard.press('Enter')]);
    assert.deepEqual(errors, []);
    await context.close();
  });

  it('looks right (docs/index.png)', async () => {
    const shot = await Service.start('index-shot');
    try {
      // How each ended: a succeeded, a failed (exit 101), a cancelled, a bare [DONE], and three live.
      const logs = [
        ['deploy', 'web-1041', 212, true, 'succeeded', 0], ['build', 'api#5120', 1834, true, 'failed', 101],
        ['ci', 'lint-5121', 96, true, 'cancelled', 130], ['deploy', 'worker-1042', 64, true],
        ['build', 'web#5122', 2410, false], ['ci', 'test-5122', 731, false], ['deploy', 'web-1043', 18, false],
      ];
      for (const [type, id, n, done, outcome, exitCode] of logs) {
        await shot.append(type, id, Array.from({ length: n }, (_, k) => `line ${k + 1}`), { done, outcome, exitCode });
      }
      const { page, context } = await openPage(env.browser, { width: 1100, height: 420 });
      await page.goto(shot.url('/'));
      // Growth is announced at most once a second: wait for the whole counts.
      await waitRow(page, 'build', 'web#5122', { lines: '2,410 lines' });
      await waitRow(page, 'deploy', 'web-1043', { lines: '18 lines' });
      await waitRow(page, 'build', 'api#5120', { state: 'failed · exit 101' });
      assert.deepEqual((await rows(page)).map((r) => r.id), logs.map(([, id]) => id).reverse());
      await page.keyboard.press('ArrowDown');
      await page.keyboard.press('ArrowDown');
      const file = await screenshot(page, 'index.png');
      fs.copyFileSync(file, path.join(root, 'docs/index.png'));
      await context.close();
    } finally {
      await shot.close();
    }
  });
});

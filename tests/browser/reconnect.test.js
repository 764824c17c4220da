// The viewer across a restart of the service: EventSource comes back with Last-Event-ID and the
// page continues where it was, without a duplicate or a gap.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { openPage, shownRows, uniqueName, waitEnded, waitLines, withService } from './lib/harness.js';

const env = withService('reconnect');

it('continues after the env.service restarts, without duplicates', async () => {
  // This test writes as an external producer does: straight into MongoDB, from one process,
  // so the lines' _ids increase in commit order across the restart (DESIGN.md's invariant; two
  // env.service processes appending within the same second would not guarantee it).
  const type = 'deploy';
  const id = uniqueName('restart');
  const text = (n) => `line ${n} of the deploy`;
  const write = (from, to) => env.db.collection.insertMany(
    Array.from({ length: to - from + 1 }, (_, i) => ({ type, id, log: text(from + i) })), { ordered: true });

  const { page, context, errors } = await openPage(env.browser, { height: 600 });
  const streams = [];
  page.on('request', (req) => {
    if (req.url().includes('/stream')) {
      streams.push(req.allHeaders().then((h) => ({ url: req.url(), lastEventId: h['last-event-id'] })));
    }
  });
  await page.goto(env.service.viewerUrl(type, id));
  await page.locator('#status.live').waitFor();
  await write(1, 40);
  await waitLines(page, 40);

  await env.service.stop();
  await page.locator('#status', { hasText: 'reconnecting from line 41' }).waitFor({ timeout: 15_000 });
  await write(41, 70); // written while the env.service is down
  await env.service.restart();
  await page.locator('#status.live').waitFor({ timeout: 20_000 });
  await waitLines(page, 70);
  await write(71, 91);
  await env.db.collection.insertOne({ type, id, log: '[DONE]' });
  await waitEnded(page);

  const state = await page.evaluate(() => ({ ...window.sseLogs.state(), stats: window.sseLogs.stats }));
  assert.equal(state.lines, 91);
  assert.equal(state.stats.duplicates, 0, 'the server sent no line twice');
  assert.equal(state.stats.gaps, 0, 'the server skipped no line');
  assert.equal(state.stats.received, 91, 'each line arrived exactly once');
  const opened = await Promise.all(streams);
  assert.ok(opened.length >= 2, 'the page reconnected');
  // EventSource's own reconnect: the same URL, with Last-Event-ID.
  assert.equal(opened.at(-1).url, opened[0].url);
  assert.equal(opened.at(-1).lastEventId, '40', 'EventSource resumed with Last-Event-ID');
  const lines = [];
  for (let n = 1; n <= 91; n++) lines.push(await page.evaluate((k) => window.sseLogs.line(k), n));
  assert.deepEqual(lines, Array.from({ length: 91 }, (_, i) => text(i + 1)));
  const rows = await shownRows(page); // the last screenful, as displayed
  assert.ok(rows.length > 10);
  for (const row of rows) assert.equal(row.text, text(row.n));
  assert.match(await page.textContent('#status'), /^ended · 91 lines/);
  assert.deepEqual(errors, []);
  await context.close();
});

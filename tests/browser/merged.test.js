// The merged viewer (GET /logs?log=T:I&log=T:I) in real headless Chromium against the real service.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ObjectId } from 'mongodb';
import { launchBrowser, mongo, openPage, screenshot, Service, uniqueName } from './lib/harness.js';

/** An ObjectId written at `seconds` (its time is what a backlog line's `t` is), unique by `serial`. */
function idAt(seconds, serial) {
  return new ObjectId(seconds.toString(16).padStart(8, '0') + serial.toString(16).padStart(16, '0'));
}

/** The rows the page shows: [{ label, text, end }]. */
function rows(page) {
  return page.$$eval('#lines .row', (els) => els.map((el) => ({
    label: el.querySelector('.l').textContent,
    colour: getComputedStyle(el.querySelector('.l')).color,
    text: el.querySelector('.x').textContent,
    end: el.classList.contains('end'),
  })));
}

describe('merged viewer', () => {
  let service;
  let browser;

  before(async () => {
    service = await Service.start('merged');
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await service?.close();
  });

  it('merges two logs in time order over one connection, live, with both ends', async () => {
    const a = uniqueName('build');
    const b = uniqueName('deploy');
    // Interleaved in time, each log written in one go: a at T, T+2, T+4; b at T+1, T+3.
    const t0 = Math.floor(Date.now() / 1000) - 100;
    const { client, collection } = await mongo(service);
    try {
      await collection.insertMany([0, 2, 4].map((dt, i) => ({ _id: idAt(t0 + dt, i + 1), type: 'ci', id: a, log: `a${i + 1}` })));
      await collection.insertMany([1, 3].map((dt, i) => ({ _id: idAt(t0 + dt, i + 11), type: 'ci', id: b, log: `b${i + 1}` })));
    } finally {
      await client.close();
    }

    const { page, errors } = await openPage(browser);
    const streams = [];
    page.on('request', (request) => {
      if (new URL(request.url()).pathname.endsWith('/api/v1/streams')) streams.push(request.url());
    });
    await page.goto(service.url(`/logs?log=ci:${encodeURIComponent(a)}&log=ci:${encodeURIComponent(b)}`));
    await page.waitForFunction(() => document.querySelectorAll('#lines .row').length >= 5, null, { timeout: 30_000 });

    let shown = await rows(page);
    assert.deepEqual(shown.map((r) => r.text), ['a1', 'b1', 'a2', 'b2', 'a3'], 'time order across logs');
    assert.deepEqual(shown.map((r) => r.label), [a, b, a, b, a], 'a label per log (the ids: one type)');
    assert.notEqual(shown[0].colour, shown[1].colour, 'a colour per log');

    await service.append('ci', b, ['b live']);
    await page.waitForFunction(() => [...document.querySelectorAll('#lines .x')].some((x) => x.textContent === 'b live'),
      null, { timeout: 30_000 });
    shown = await rows(page);
    assert.equal(shown.at(-1).text, 'b live', 'a live line comes last: it is the newest');

    await service.append('ci', a, [], { done: true });
    await service.append('ci', b, [], { done: true });
    await page.waitForFunction(() => document.getElementById('status').classList.contains('ended'), null, { timeout: 30_000 });
    shown = await rows(page);
    const ends = shown.filter((r) => r.end).map((r) => r.label).sort();
    assert.deepEqual(ends, [a, b].sort(), 'each log shows its end');
    assert.deepEqual(
      await page.$$eval('#legend .state', (els) => els.map((el) => el.textContent)),
      ['ended', 'ended'],
    );
    await screenshot(page, 'merged.png');

    assert.equal(streams.length, 1, `one connection to /api/v1/streams: ${streams.join(', ')}`);
    assert.deepEqual(errors, []);
    await page.context().close();
  });

  it('starts after @N, takes ids with ":" and "@", and passes access_token on', async () => {
    const id = `${uniqueName('odd')}:x@y`;
    await service.append('ci job', id, ['one', 'two', 'three'], { done: true });
    await service.append('ci', id, ['other'], { done: true });
    const { page, context, errors } = await openPage(browser);
    const streams = [];
    page.on('request', (request) => { if (request.url().includes('/api/')) streams.push(new URL(request.url())); });
    const logs = [`ci job:${id}@1`, `ci:${id}`];
    const query = logs.map((l) => `log=${encodeURIComponent(l)}`).join('&');
    await page.goto(service.url(`/logs?${query}&access_token=s3cr%2Bt`));
    await page.waitForFunction(() => document.getElementById('status').classList.contains('ended'), null, { timeout: 30_000 });
    const shown = await rows(page);
    assert.deepEqual(shown.filter((r) => !r.end).map((r) => [r.label, r.text]).sort(),
      [[`ci job:${id}`, 'three'], [`ci job:${id}`, 'two'], [`ci:${id}`, 'other']], 'type:id labels when the types differ');
    assert.equal(streams.length, 1);
    assert.equal(streams[0].pathname, '/api/v1/streams');
    assert.deepEqual(streams[0].searchParams.getAll('log'), logs);
    assert.equal(streams[0].searchParams.get('access_token'), 's3cr+t');
    assert.deepEqual(errors, []);
    await context.close();
  });
});

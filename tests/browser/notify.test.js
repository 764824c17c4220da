// The viewer's "Notify me" button in real headless Chromium: the page asks for the notification
// permission only when the button is clicked, and, with it granted, shows a notification saying
// how the followed log ended. The page's Notification is wrapped (still calling the real one) so
// that the test sees what it was asked to show: headless Chromium draws no notification itself.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { launchBrowser, openPage, Service, uniqueName, waitEnded, waitLines } from './lib/harness.js';

/** Counts permission requests and records each notification the page creates. */
function recordNotifications() {
  const Real = window.Notification;
  window.notifyRecord = { asked: 0, shown: [] };
  class Recorded extends Real {
    constructor(title, options) {
      super(title, options);
      window.notifyRecord.shown.push({ title, body: options && options.body });
    }
  }
  Recorded.requestPermission = (...args) => {
    window.notifyRecord.asked++;
    return Real.requestPermission(...args);
  };
  window.Notification = Recorded;
}

describe('notify me', () => {
  let service, browser;
  const tag = uniqueName('notify');

  before(async () => {
    service = await Service.start('notify');
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await service?.close();
  });

  it('asks for the permission on the click only, and shows how the log ended when it ends', async () => {
    const id = `${tag}-deploy`;
    await service.append('ci', id, ['deploying', 'migrating the database']);
    const { page, context } = await openPage(browser, { permissions: ['notifications'] });
    await context.addInitScript(recordNotifications);
    await page.goto(service.url(`/logs/ci/${id}`));
    await waitLines(page, 2);
    assert.equal(await page.evaluate(() => window.notifyRecord.asked), 0, 'not asked on load');
    assert.equal(await page.isVisible('#notify'), true);
    await page.click('#notify');
    await page.waitForFunction(() => window.sseLogs.state().notify);
    assert.equal(await page.textContent('#notify'), 'Will notify');
    await service.append('ci', id, [], { done: true, outcome: 'failed', exitCode: 2 });
    await waitEnded(page);
    const shown = await page.evaluate(() => window.notifyRecord.shown);
    assert.deepEqual(shown, [{ title: `ci / ${id}: failed · exit 2`, body: '2 lines' }]);
    assert.equal(await page.isVisible('#notify'), false, 'nothing left to wait for');
    await context.close();
  });

  it('asks for the permission when clicked without it, and stays off when it is refused', async () => {
    const id = `${tag}-ask`;
    await service.append('ci', id, ['one line']);
    const { page, context } = await openPage(browser);
    await context.addInitScript(recordNotifications);
    await page.goto(service.url(`/logs/ci/${id}`));
    await waitLines(page, 1);
    assert.equal(await page.evaluate(() => window.notifyRecord.asked), 0, 'not asked on load');
    await page.click('#notify');
    await page.waitForFunction(() => window.notifyRecord.asked === 1);
    // Headless Chromium refuses a permission the context was not granted.
    await page.waitForFunction(() => document.getElementById('notify').textContent === 'Notifications blocked');
    assert.equal(await page.getAttribute('#notify', 'aria-pressed'), 'false');
    assert.equal(await page.evaluate(() => window.sseLogs.state().notify), false);
    await context.close();
  });

  it('does not notify when the button was not clicked', async () => {
    const id = `${tag}-quiet`;
    await service.append('ci', id, ['one line']);
    const { page, context } = await openPage(browser, { permissions: ['notifications'] });
    await context.addInitScript(recordNotifications);
    await page.goto(service.url(`/logs/ci/${id}`));
    await waitLines(page, 1);
    await service.append('ci', id, [], { done: true, outcome: 'succeeded', exitCode: 0 });
    await waitEnded(page);
    assert.deepEqual(await page.evaluate(() => window.notifyRecord), { asked: 0, shown: [] });
    await context.close();
  });
});

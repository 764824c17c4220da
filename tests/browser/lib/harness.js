// Test harness: the sse-logs binary on a free port against the test MongoDB, and headless Chromium.
//
// Environment: SSE_LOGS_TEST_MONGODB_URI (required), SSE_LOGS_BIN (default target/debug/sse-logs),
// CHROMIUM (default /usr/bin/chromium).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MongoClient } from 'mongodb';
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { after, afterEach, before } from 'node:test';

const here = path.dirname(fileURLToPath(import.meta.url));
export const root = path.resolve(here, '../../..');
export const artifacts = path.resolve(here, '../artifacts');
fs.mkdirSync(artifacts, { recursive: true });

const mongoUri = process.env.SSE_LOGS_TEST_MONGODB_URI;
if (!mongoUri) throw new Error('SSE_LOGS_TEST_MONGODB_URI must point at a MongoDB-compatible server');
const bin = process.env.SSE_LOGS_BIN || path.join(root, 'target/debug/sse-logs');

export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

export function uniqueName(prefix) {
  return `${prefix}_${randomBytes(5).toString('hex')}`;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// Never leave a service behind, even when a test file dies half-way.
const running = new Set();
process.on('exit', () => { for (const child of running) child.kill('SIGKILL'); });

const delay = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** One sse-logs process; `restart()` brings it back on the same port and database. */
export class Service {
  constructor(name) {
    this.name = name;
    this.database = uniqueName('browser');
    this.port = 0;
    this.child = null;
    this.logPath = path.join(artifacts, `${name}.service.log`);
    fs.writeFileSync(this.logPath, '');
  }

  static async start(name, env = {}) {
    const service = new Service(name);
    service.port = await freePort();
    service.env = env;
    await service.spawn();
    return service;
  }

  get base() { return `http://127.0.0.1:${this.port}`; }

  url(p) { return this.base + p; }

  async spawn() {
    const log = fs.openSync(this.logPath, 'a');
    const child = spawn(bin, ['serve'], {
      env: {
        ...process.env,
        SSE_LOGS__MONGODB__URI: mongoUri,
        SSE_LOGS__MONGODB__DATABASE: this.database,
        SSE_LOGS__HTTP__BIND: `127.0.0.1:${this.port}`,
        RUST_LOG: process.env.RUST_LOG || 'warn',
        ...this.env,
      },
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    this.child = child;
    running.add(child);
    child.once('exit', () => running.delete(child));
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    let gone = null;
    this.exited.then((how) => { gone = how; });
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (gone) throw new Error(`sse-logs exited while starting (${JSON.stringify(gone)}); see ${this.logPath}`);
      try {
        const res = await fetch(this.url('/readyz'));
        if (res.status === 200) return;
      } catch { /* not listening yet */ }
      if (Date.now() > deadline) throw new Error(`sse-logs not ready after 30 s; see ${this.logPath}`);
      await delay(50); // polling readiness: there is no event to wait for
    }
  }

  /** SIGTERM and wait for the exit (the service ends every stream cleanly first). */
  async stop() {
    if (!this.child) return;
    const child = this.child;
    this.child = null;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const how = await this.exited;
    clearTimeout(timer);
    return how;
  }

  async restart() {
    await this.stop();
    await this.spawn();
  }

  logUrl(type, id, suffix = '') {
    return this.url(`/api/v1/logs/${encodeURIComponent(type)}/${encodeURIComponent(id)}${suffix}`);
  }

  viewerUrl(type, id, rest = '') {
    return this.url(`/logs/${encodeURIComponent(type)}/${encodeURIComponent(id)}${rest}`);
  }

  /**
   * Appends through the service: an array of lines (JSON body), optionally ending the log, and
   * then saying how (`outcome`, `exitCode`).
   */
  async append(type, id, lines, { done = false, outcome, exitCode } = {}) {
    const res = await fetch(this.logUrl(type, id), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ lines, done, outcome, exit_code: exitCode }),
    });
    const body = await res.json();
    if (res.status !== 201) throw new Error(`append answered ${res.status}: ${JSON.stringify(body)}`);
    return body;
  }

  /** Appends a text/plain body (one line per \n). */
  async appendText(type, id, text) {
    const res = await fetch(this.logUrl(type, id), {
      method: 'POST', headers: { 'content-type': 'text/plain; charset=utf-8' }, body: text,
    });
    const body = await res.json();
    if (res.status !== 201) throw new Error(`append answered ${res.status}: ${JSON.stringify(body)}`);
    return body;
  }

  /** Stops the process and drops its database. */
  async close() {
    await this.stop();
    const client = new MongoClient(mongoUri, { serverSelectionTimeoutMS: 5000 });
    try {
      await client.db(this.database).dropDatabase();
    } finally {
      await client.close();
    }
  }
}

/** A MongoDB client on the service's database, for writing as an external producer would. */
export async function mongo(service) {
  const client = new MongoClient(mongoUri, { serverSelectionTimeoutMS: 5000 });
  await client.connect();
  return { client, collection: client.db(service.database).collection('sse_logs') };
}

// Every page opened with `openPage` is checked for page errors (uncaught exceptions in the page):
// when its context closes, and after each test for the pages still open, so that a test fails
// for an error in a page it opened, whether or not it looks at `errors` itself.
const openPages = new Set();

function assertNoPageErrors(opened) {
  const thrown = opened.errors.splice(0).map((err) => `${err.name}: ${err.message}`);
  assert.deepEqual(thrown, [], `uncaught errors in ${opened.url}`);
}

afterEach(() => {
  for (const opened of openPages) assertNoPageErrors(opened);
});

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
  });
}

/**
 * A page in a fresh context that records page errors and dialogs as they happen (`errors`,
 * `dialogs`); closing its context fails if the page had page errors (see `openPages`).
 */
export async function openPage(browser, { colorScheme = 'dark', width = 1280, height = 800, ...rest } = {}) {
  const context = await browser.newContext({ viewport: { width, height }, colorScheme, acceptDownloads: true, ...rest });
  const page = await context.newPage();
  const errors = [];
  const dialogs = [];
  const opened = { errors, url: '' };
  page.on('pageerror', (err) => errors.push(err));
  page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) opened.url = frame.url(); });
  page.on('dialog', (dialog) => { dialogs.push(dialog.message()); dialog.dismiss().catch(() => {}); });
  openPages.add(opened);
  const close = context.close.bind(context);
  context.close = async (...args) => {
    await close(...args);
    if (openPages.delete(opened)) assertNoPageErrors(opened);
  };
  context.once('close', () => openPages.delete(opened));
  return { context, page, errors, dialogs };
}

/** The rows the viewer currently has in the DOM: [{ n, text }]. */
export function shownRows(page) {
  return page.$$eval('#rows .row', (rows) =>
    rows.map((row) => ({ n: Number(row.dataset.n), text: row.querySelector('.tx').textContent })));
}

/** The line numbers of the rows whose box is inside the visible part of the log. */
export function visibleLines(page) {
  return page.evaluate(() => {
    const vp = document.getElementById('viewport').getBoundingClientRect();
    return [...document.querySelectorAll('#rows .row')]
      .filter((row) => { const r = row.getBoundingClientRect(); return r.top >= vp.top - 1 && r.bottom <= vp.bottom + 1; })
      .map((row) => Number(row.dataset.n));
  });
}

export function waitEnded(page, timeout = 30_000) {
  return page.waitForFunction(() => window.sseLogs && window.sseLogs.state().ended, null, { timeout });
}

/** Ended, and every line of the log is in the page (a big log fills in behind its tail). */
export function waitComplete(page, timeout = 30_000) {
  return page.waitForFunction(() => window.sseLogs && window.sseLogs.state().complete, null, { timeout });
}

export function waitLines(page, n, timeout = 30_000) {
  return page.waitForFunction((want) => window.sseLogs && window.sseLogs.state().lines >= want, n, { timeout });
}

export async function screenshot(page, name) {
  const file = path.join(artifacts, name);
  await page.screenshot({ path: file });
  return file;
}

/**
 * A service, a headless browser and a MongoDB client for the tests of one file or `describe`,
 * started before them (then `setup(env)`, e.g. to write a log) and closed after them.
 */
export function withService(name, setup = async () => {}) {
  const env = {};
  before(async () => {
    env.service = await Service.start(name);
    env.browser = await launchBrowser();
    env.db = await mongo(env.service);
    await setup(env);
  });
  after(async () => {
    await env.db?.client.close();
    await env.browser?.close();
    await env.service?.close();
  });
  return env;
}

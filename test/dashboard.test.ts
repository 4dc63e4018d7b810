/**
 * The dashboard, in headless Chromium (Debian's /usr/bin/chromium, driven by
 * playwright-core) against a real coordinator and three real worker
 * processes: a worker is SIGKILLed mid-run and the page shows it dead and its
 * tasks re-dispatched; filter and paging of the task table; cancel and retry
 * disabled without the client token and working with it. Plus the auth modes
 * (public, token, off) and the SSE stream, with in-process coordinators.
 *
 * Screenshots go to test-output/dashboard/. With
 * REGROUP_DASHBOARD_SCREENSHOT=docs/img/dashboard.png the last one is also
 * written there (the README's picture).
 */
import { after, afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, copyFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Client } from '../src/client/index.js';
import { Coordinator } from '../src/coordinator/index.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { Worker } from '../src/worker/index.js';
import type { WorkerView } from '../src/protocol/http.js';
import {
  killAll,
  liveProcesses,
  sleep,
  startServer,
  startWorker,
  tempDir,
  until,
} from '../src/testing/procs.js';

const HANDLERS = fileURLToPath(new URL('../../test/fixtures/fault-handlers.js', import.meta.url));
const OUT = fileURLToPath(new URL('../../test-output/dashboard/', import.meta.url));
const TOKEN = 'dashboard-test-client-token-0123';
/** Every wait on the page is for a DOM state; this only bounds a test that would hang. */
const WAIT = { timeout: 30_000 };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
  await killAll();
});
after(() => assert.equal(liveProcesses(), 0, 'a test left a process running'));

async function browser(): Promise<Browser> {
  const b = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-background-networking',
      '--disable-gpu',
      '--disable-component-update',
      '--no-first-run',
    ],
  });
  cleanups.push(() => b.close());
  return b;
}

async function newPage(b: Browser, url: string): Promise<Page> {
  const page = await b.newPage({ viewport: { width: 1280, height: 1000 } });
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  cleanups.push(() => assert.deepEqual(errors, [], 'the page threw'));
  await page.goto(url);
  return page;
}

async function shot(page: Page, name: string): Promise<string> {
  mkdirSync(OUT, { recursive: true });
  const file = join(OUT, name);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

async function workers(url: string): Promise<WorkerView[]> {
  const r = await fetch(`${url}/v1/workers`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return ((await r.json()) as { workers: WorkerView[] }).workers;
}

const rowsOf = (page: Page): Promise<{ index: number; state: string }[]> =>
  page.$$eval('#tasks tbody tr', (trs) =>
    trs.map((tr) => ({
      index: Number(tr.getAttribute('data-task-index')),
      state: tr.getAttribute('data-state') ?? '',
    })),
  );

describe('dashboard in a browser', () => {
  it('a live run: a worker is killed, the page shows it dead and its tasks re-dispatched; filter, paging, cancel and retry', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const { url } = await startServer(join(t.dir, 'r.db'), {
      extra: ['--client-token', TOKEN],
    });
    const ws = [];
    for (const name of ['w1', 'w2', 'w3'])
      ws.push(await startWorker(url, HANDLERS, name, ['--concurrency', '2']));
    const client = new Client({ url, token: TOKEN });
    cleanups.push(() => client.close());

    const b = await browser();
    const page = await newPage(b, url);
    await page.waitForSelector('#conn[data-state=live]', WAIT);
    for (const name of ['w1', 'w2', 'w3'])
      await page.waitForSelector(`#workers tr[data-worker=${name}][data-health=alive]`, WAIT);

    // 30 slow-ish tasks on 6 slots; w2 is killed while it runs two of them.
    const inputs = Array.from({ length: 30 }, (_, n) => ({ n, ms: 400 }));
    const slow = await client.submit('slowSquare', inputs);
    await until('w2 running tasks', async () =>
      (await workers(url)).some((w) => w.name === 'w2' && w.running > 0),
    );
    await page.waitForSelector(`.group[data-group=${slow.id}][data-state=sealed]`, WAIT);
    await ws[1]!.kill();

    await page.waitForSelector('#workers tr[data-worker=w2][data-health=dead]', WAIT);
    assert.equal(
      await page.textContent('#workers tr[data-worker=w2] td:nth-child(4)'),
      '0 / 2',
      'a dead worker has no slot in use',
    );
    const sentence = page.locator('#timeline li[data-kind="worker.dead"]', {
      hasText: / re-dispatched to .* in \d+\.\d s$/,
    });
    await sentence.waitFor(WAIT);
    const text = (await sentence.textContent()) ?? '';
    assert.match(
      text,
      /w2 dead \((disconnected|silent)\): \d+ tasks? back to pending, re-dispatched to (w1|w3)( and w[13])? in \d+\.\d s$/,
    );
    await shot(page, '1-worker-dead.png');

    // The group reaches 100%; every task succeeded.
    await page.waitForSelector(
      `.group[data-group=${slow.id}][data-pct="100"][data-state=done]`,
      WAIT,
    );
    assert.match(
      (await page.textContent(`.group[data-group=${slow.id}] .progress`)) ?? '',
      /^30 \/ 30 \(100%\)$/,
    );

    // The tasks table: filter by state, then page through 30 tasks 20 at a time.
    await page.click(`.group[data-group=${slow.id}]`);
    await page.waitForSelector(`.group[data-group=${slow.id}][aria-selected=true]`, WAIT);
    await page.selectOption('#task-state', 'failed');
    await page.waitForSelector('#page-info:text("no tasks failed")', WAIT);
    assert.equal((await rowsOf(page)).length, 0);
    await page.selectOption('#task-state', 'succeeded');
    await page.waitForSelector('#tasks tbody tr[data-task-index="19"]', WAIT);
    let rows = await rowsOf(page);
    assert.deepEqual(
      rows.map((r) => r.index),
      Array.from({ length: 20 }, (_, i) => i),
    );
    assert.ok(rows.every((r) => r.state === 'succeeded'));
    assert.equal(await page.isDisabled('#prev'), true);
    await page.click('#next');
    await page.waitForSelector('#tasks tbody tr[data-task-index="20"]', WAIT);
    const attemptsOf = (): Promise<string[]> =>
      page.$$eval('#tasks tbody tr td:nth-child(3)', (tds) =>
        tds.map((td) => td.textContent ?? ''),
      );
    const lastAttempts = await attemptsOf();
    rows = await rowsOf(page);
    assert.deepEqual(
      rows.map((r) => r.index),
      Array.from({ length: 10 }, (_, i) => 20 + i),
    );
    assert.equal(await page.isDisabled('#next'), true, 'the last page');
    await page.click('#prev');
    await page.waitForSelector('#tasks tbody tr[data-task-index="0"]', WAIT);
    // The tasks the dead worker held ran again: attempt 2 (on one of the pages).
    const attempts = [...(await attemptsOf()), ...lastAttempts];
    assert.equal(attempts.length, 30);
    assert.ok(
      attempts.every((a) => a === '1' || a === '2'),
      attempts.join(','),
    );
    assert.ok(
      attempts.includes('2'),
      `a re-dispatched task shows attempt 2: ${attempts.join(',')}`,
    );

    // Cancel and retry: disabled without the token, working with it.
    const failing = await client.submit('alwaysFails', ['a', 'b', 'c'], {
      options: { maxAttempts: 1 },
    });
    const long = await client.submit('slowSquare', [
      { n: 1, ms: 60_000 },
      { n: 2, ms: 60_000 },
    ]);
    const retryBtn = `.group[data-group=${failing.id}] button.retry`;
    const cancelBtn = `.group[data-group=${long.id}] button.cancel`;
    await page.waitForSelector(`.group[data-group=${failing.id}][data-state=done]`, WAIT);
    await page.waitForSelector(cancelBtn, WAIT);
    assert.equal(await page.isDisabled(retryBtn), true, 'retry needs the token');
    assert.equal(await page.isDisabled(cancelBtn), true, 'cancel needs the token');
    assert.match((await page.getAttribute(retryBtn, 'title')) ?? '', /client token/);
    assert.match((await page.textContent('#actions-hint')) ?? '', /Enter the client token/);

    // A wrong token: the API says so, in one line with its code.
    await page.fill('#token', 'not-the-right-token-at-all');
    await page.click('#token-save');
    await page.waitForSelector(`${retryBtn}:not([disabled])`, WAIT);
    await page.click(retryBtn);
    await page.waitForSelector('#action-msg[data-result=error]', WAIT);
    assert.match((await page.textContent('#action-msg')) ?? '', /retry failed: unauthorized/);

    await page.fill('#token', TOKEN);
    await page.click('#token-save');
    assert.equal(
      await page.evaluate(() =>
        (
          globalThis as unknown as { sessionStorage: { getItem(k: string): string | null } }
        ).sessionStorage.getItem('regroup.token'),
      ),
      TOKEN,
      'kept for this tab only',
    );
    await page.click(retryBtn);
    await page.waitForSelector('#action-msg[data-result=ok]', WAIT);
    assert.match((await page.textContent('#action-msg')) ?? '', /retried 3 failed tasks/);
    await page.waitForSelector(
      `#timeline li[data-kind="group.retried"]:text("group ${failing.id}: 3 failed tasks retried")`,
      WAIT,
    );
    await page.click(cancelBtn);
    await page.waitForSelector(`.group[data-group=${long.id}][data-state=canceled]`, WAIT);
    await page.waitForSelector(`#timeline li[data-kind="group.canceled"]`, WAIT);
    await page.waitForSelector(`.group[data-group=${failing.id}][data-state=done]`, WAIT);
    assert.equal((await long.status()).state, 'canceled');

    // The chart has a few seconds of points.
    await until(
      'a few seconds in the chart',
      async () => Number(await page.getAttribute('#chart', 'data-points')) >= 3,
      WAIT.timeout,
    );
    await page.click(`.group[data-group=${slow.id}]`);
    await page.selectOption('#task-state', '');
    await page.waitForSelector('#tasks tbody tr[data-task-index="0"]', WAIT);
    const file = await shot(page, '2-after-actions.png');
    const docs = process.env['REGROUP_DASHBOARD_SCREENSHOT'];
    if (docs) {
      mkdirSync(dirname(docs), { recursive: true });
      copyFileSync(file, docs);
    }
  });
});

describe('dashboard access', () => {
  async function coordinator(o: { dashboard?: 'public' | 'token' | 'off'; token?: string }) {
    const t = tempDir();
    const c = new Coordinator({
      store: new SqliteStore({ path: join(t.dir, 'd.db') }),
      port: 0,
      clientToken: o.token ?? null,
      ...(o.dashboard ? { dashboard: o.dashboard } : {}),
    });
    const url = await c.start();
    cleanups.push(async () => {
      await c.stop();
      t.cleanup();
    });
    return { c, url };
  }

  it('public (the default): page and data without a token, never a task input or result; /v1 still needs the token', async () => {
    const { url } = await coordinator({ token: TOKEN });
    const client = new Client({ url, token: TOKEN });
    cleanups.push(() => client.close());
    // A task that returns a secret and one that fails, so that there is a
    // result, an error and a checkpoint to (not) leak, besides the input.
    const worker = new Worker({
      url,
      name: 'secret-keeper',
      logger: () => {},
      handlers: {
        secretHandler: async (x: { password: string; fail?: boolean }, ctx) => {
          await ctx.saveCheckpoint({ saved: 'hunter2-checkpoint' });
          if (x.fail) throw new Error('it failed');
          return { token: 'hunter2-result' };
        },
      },
    });
    await worker.start();
    cleanups.push(() => worker.close());
    const g = await client.submit(
      'secretHandler',
      [{ password: 'hunter2-input' }, { password: 'hunter2-input', fail: true }],
      { options: { maxAttempts: 1 } },
    );
    const settled = await g.waitSettled();
    assert.deepEqual(
      settled.map((o) => o.state),
      ['succeeded', 'failed'],
    );
    const page = await fetch(`${url}/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type') ?? '', /^text\/html/);
    const snap = await fetch(`${url}/dashboard/snapshot`);
    assert.equal(snap.status, 200);
    const snapText = await snap.text();
    assert.match(snapText, new RegExp(g.id));
    const tasks = await fetch(`${url}/dashboard/tasks?group=${g.id}`);
    assert.equal(tasks.status, 200);
    const body = (await tasks.json()) as { tasks: Record<string, unknown>[]; next: null };
    assert.equal(body.tasks.length, 2);
    assert.deepEqual(
      body.tasks.map((t) => t['state']),
      ['succeeded', 'failed'],
    );
    assert.deepEqual(Object.keys(body.tasks[0]!).sort(), [
      'attempt',
      'durationMs',
      'error',
      'finishedAt',
      'index',
      'startedAt',
      'state',
      'taskId',
      'worker',
      'workerId',
    ]);
    assert.match(JSON.stringify(body), /it failed/, 'error messages are shown');
    assert.doesNotMatch(snapText + JSON.stringify(body), /hunter2/);
    assert.equal((await fetch(`${url}/v1/groups`)).status, 401, 'the API still needs the token');
    const bad = await fetch(`${url}/dashboard/tasks?group=${g.id}&state=lost`);
    assert.equal(bad.status, 400);
    assert.equal(
      ((await bad.json()) as { error: { code: string } }).error.code,
      'validation_failed',
    );
    assert.equal((await fetch(`${url}/dashboard/tasks?group=g_nope`)).status, 404);
    assert.equal((await fetch(`${url}/dashboard/nothing`)).status, 404);
    assert.equal((await fetch(`${url}/`, { method: 'POST' })).status, 405);
  });

  it('a waiting group says why on its line and in its detail, as text (a label is never markup); the reason goes when a worker can run it', async () => {
    const { url } = await coordinator({});
    const client = new Client({ url });
    cleanups.push(() => client.close());
    const squarer = new Worker({
      url,
      name: 'squarer',
      logger: () => {},
      handlers: { square: async (x: number) => x * x },
    });
    await squarer.start();
    cleanups.push(() => squarer.close());
    const typo = await client.submit('sqaure', [1, 2]);
    const label = '<img src=x onerror="document.title=1">';
    const labeled = await client.submit('square', [3], { options: { requires: [label] } });

    const b = await browser();
    const page = await newPage(b, url);
    await page.waitForSelector('#conn[data-state=live]', WAIT);
    const typoLine = `.group[data-group=${typo.id}][data-waiting=no_handler] .waiting`;
    await page.waitForSelector(typoLine, WAIT);
    assert.match(
      (await page.textContent(typoLine)) ?? '',
      /^waiting \d+(\.\d)? s: no worker offers handler "sqaure" \(did you mean "square"\?\); connected workers offer: square$/,
    );
    const labeledLine = `.group[data-group=${labeled.id}][data-waiting=no_label] .waiting`;
    await page.waitForSelector(labeledLine, WAIT);
    assert.ok(((await page.textContent(labeledLine)) ?? '').includes(`has labels ${label};`));
    assert.equal(await page.locator('#groups img, #tasks-box img').count(), 0, 'no markup');
    assert.equal(await page.title(), 'regroup dashboard');

    // The detail of the group clicked (press, hold, release) says why and what to do.
    await page.click(`.group[data-group=${typo.id}]`, { delay: 150 });
    await page.waitForSelector(`.group[data-group=${typo.id}][aria-selected=true]`, WAIT);
    await page.waitForSelector('#tasks-waiting[data-code=no_handler]:not([hidden])', WAIT);
    assert.match(
      (await page.textContent('#tasks-waiting')) ?? '',
      /no worker offers handler "sqaure".*Start a worker whose handler module exports the handler/,
    );
    await shot(page, '3-waiting.png');

    // A worker that offers "sqaure" joins: the group runs, and the reason goes.
    const fixer = new Worker({
      url,
      name: 'fixer',
      logger: () => {},
      handlers: { sqaure: async (x: number) => x * x },
    });
    await fixer.start();
    cleanups.push(() => fixer.close());
    assert.deepEqual(await typo.wait(), [1, 4]);
    await page.waitForSelector(
      `.group[data-group=${typo.id}][data-state=done]:not([data-waiting])`,
      WAIT,
    );
    await page.waitForSelector('#tasks-waiting[hidden]', { state: 'attached', ...WAIT });
    assert.equal(await page.locator(`.group[data-group=${typo.id}] .waiting`).count(), 0);
    await page.waitForSelector(`.group[data-group=${labeled.id}][data-waiting=no_label]`, WAIT);
  });

  it('token: the page loads but asks for the token; with it, the data flows', async () => {
    const { url } = await coordinator({ dashboard: 'token', token: TOKEN });
    assert.equal((await fetch(`${url}/`)).status, 200, 'the page itself holds no data');
    assert.equal((await fetch(`${url}/dashboard/snapshot`)).status, 401);
    assert.equal((await fetch(`${url}/dashboard/stream`)).status, 401);
    const ok = await fetch(`${url}/dashboard/snapshot`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(ok.status, 200);
    const b = await browser();
    const page = await newPage(b, url);
    await page.waitForSelector('#conn[data-state=token]', WAIT);
    assert.match((await page.textContent('#conn')) ?? '', /enter the client token/);
    await page.fill('#token', TOKEN);
    await page.click('#token-save');
    await page.waitForSelector('#conn[data-state=live]', WAIT);
    await page.waitForSelector('#role:text("leader")', WAIT);
  });

  it('off: nothing is served', async () => {
    const { url } = await coordinator({ dashboard: 'off' });
    for (const path of ['/', '/dashboard/stream', '/dashboard/snapshot'])
      assert.equal((await fetch(url + path)).status, 404, path);
  });

  it('the stream: a snapshot, then an update when a group changes; the coordinator stops with a client connected', async () => {
    const { c, url } = await coordinator({});
    const ac = new AbortController();
    const res = await fetch(`${url}/dashboard/stream`, { signal: ac.signal });
    assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const readUntil = async (re: RegExp): Promise<void> => {
      while (!re.test(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the stream ended before ${re}: ${text}`);
        text += value;
      }
    };
    await readUntil(/^retry: 2000\nevent: snapshot\ndata: \{.*\}\n\n/);
    const client = new Client({ url });
    cleanups.push(() => client.close());
    const g = await client.submit('anything', [1, 2, 3]);
    await readUntil(new RegExp(`event: update\\ndata: .*"kind":"group.created".*${g.id}`));
    assert.equal(c.dashboard.hub.size, 1);
    await c.stop();
    // The stop ended the stream: the reader sees its end.
    for (;;) {
      const { done } = await reader.read().catch(() => ({ done: true }));
      if (done) break;
    }
    assert.equal(c.dashboard.hub.size, 0);
    ac.abort();
  });
});

/**
 * Counts what changes in the page: nodes added and removed (the whole page,
 * the groups list, the timeline), text and attribute changes. A string
 * because the tests compile without the DOM's types; it reads no page state.
 */
const CHURN_START = `(() => {
  const c = { added: 0, removed: 0, groupsAdded: 0, groupsRemoved: 0, timelineAdded: 0, text: 0, attrs: 0 };
  const groups = document.getElementById('groups');
  const timeline = document.getElementById('timeline');
  if (window.__churnObs) window.__churnObs.disconnect();
  window.__churn = c;
  window.__churnObs = new MutationObserver((ms) => {
    for (const m of ms) {
      if (m.type === 'childList') {
        c.added += m.addedNodes.length; c.removed += m.removedNodes.length;
        if (groups.contains(m.target)) { c.groupsAdded += m.addedNodes.length; c.groupsRemoved += m.removedNodes.length; }
        if (m.target === timeline) c.timelineAdded += m.addedNodes.length;
      } else if (m.type === 'characterData') c.text++;
      else c.attrs++;
    }
  });
  window.__churnObs.observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
})()`;
const CHURN_STOP = `(() => { window.__churnObs.takeRecords(); window.__churnObs.disconnect(); return window.__churn; })()`;
interface Churn {
  added: number;
  removed: number;
  groupsAdded: number;
  groupsRemoved: number;
  timelineAdded: number;
  text: number;
  attrs: number;
}

async function churnOver(page: Page, ms: number): Promise<Churn> {
  await page.evaluate(CHURN_START);
  await sleep(ms);
  return page.evaluate<Churn>(CHURN_STOP);
}

/** A person's click: to the element's center, press, hold 150 ms, release. */
async function humanClick(page: Page, selector: string): Promise<void> {
  // The old page could replace the element between finding it and measuring it.
  const box = await until(`${selector} on the page`, () => page.locator(selector).boundingBox());
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await sleep(150);
  await page.mouse.up();
}

/** Whether `selector` shows up within `ms`. */
const within = (page: Page, selector: string, ms: number): Promise<boolean> =>
  page.waitForSelector(selector, { timeout: ms, state: 'attached' }).then(
    () => true,
    () => false,
  );

describe('dashboard at human speed', () => {
  it('clicks held 150 ms on a group, Retry failed and Cancel go through while updates stream; nothing is replaced while idle', async () => {
    const t = tempDir();
    const c = new Coordinator({
      store: new SqliteStore({ path: join(t.dir, 'h.db') }),
      port: 0,
      clientToken: TOKEN,
    });
    const url = await c.start();
    cleanups.push(async () => {
      await c.stop();
      t.cleanup();
    });
    const client = new Client({ url, token: TOKEN });
    cleanups.push(() => client.close());
    const SLOTS = 4;
    const hostile = '<img src=x onerror="document.title=\'pwned\'">\u001b[31mw1';
    const worker = new Worker({
      url,
      name: hostile,
      concurrency: SLOTS,
      logger: () => {},
      handlers: {
        // Short runs: the coordinator keeps a reserve of claimed tasks for the worker.
        tick: async (ms: number) => {
          await sleep(ms);
          return ms;
        },
        boom: (s: string) => Promise.reject(new Error(`<b>boom</b> \u001b[31m${s}`)),
      },
    });
    await worker.start();
    cleanups.push(() => worker.close());

    const failing = await client.submit('boom', ['a', 'b', 'c'], { options: { maxAttempts: 1 } });
    await failing.waitSettled();
    // Two groups no worker can run (they wait, to be canceled), then the stream of updates.
    const later1 = await client.submit('later', [1, 2]);
    const later2 = await client.submit('later', [3]);
    const stream = await client.submit(
      'tick',
      Array.from({ length: 20_000 }, () => 10),
    );

    const b = await browser();
    const page = await newPage(b, url);
    await page.waitForSelector('#conn[data-state=live]', WAIT);
    await page.fill('#token', TOKEN);
    await page.click('#token-save');
    const row = (g: { id: string }): string => `.group[data-group=${g.id}]`;
    await page.waitForSelector(`${row(failing)}[data-state=done]`, WAIT);
    await page.waitForSelector(`${row(stream)}[data-state=sealed]`, WAIT);
    await until('the stream group running', async () => (await stream.status()).succeeded > 50);

    // Streaming: what the page changes in 5 s, and what its group line calls running.
    const runningOf = async (): Promise<number> =>
      Number(/(\d+) running/.exec((await page.textContent(`${row(stream)} .top`)) ?? '')?.[1]);
    await page.evaluate(CHURN_START);
    let maxRunning = 0;
    for (let i = 0; i < 10; i++) {
      maxRunning = Math.max(maxRunning, await runningOf());
      await sleep(500);
    }
    const streaming = await page.evaluate<Churn>(CHURN_STOP);
    const still = (await stream.status()).state === 'sealed';

    // Clicks at a person's speed while updates stream.
    let selects = 0;
    const SELECTS = 8;
    for (let i = 0; i < SELECTS; i++) {
      const g = i % 2 === 0 ? failing : later1;
      await humanClick(page, `${row(g)} .id`);
      if (await within(page, `${row(g)}[aria-selected=true]`, 2000)) selects++;
    }
    let retries = 0;
    const RETRIES = 4;
    const retryBtn = `${row(failing)} button.retry`;
    for (let i = 0; i < RETRIES; i++) {
      // Done again after the last retry, on the server and on the page (a click on a
      // button that an update disables while it is held is rightly not a click).
      await until('the failing group done', async () => {
        const v = await failing.status();
        return v.state === 'done' && v.failed === 3;
      });
      await page.waitForSelector(
        `${row(failing)}[data-state=done] button.retry:not([disabled])`,
        WAIT,
      );
      await page.evaluate(`delete document.getElementById('action-msg').dataset.result`);
      await humanClick(page, retryBtn);
      if (await within(page, '#action-msg[data-result=ok]:text("retried 3 failed tasks")', 3000))
        retries++;
    }
    let cancels = 0;
    const toCancel = [later1, later2, stream];
    for (const g of toCancel) {
      await humanClick(page, `${row(g)} button.cancel`);
      if (await within(page, `${row(g)}[data-state=canceled]`, 3000)) cancels++;
      else await g.cancel();
    }

    // Idle: every group final, the worker connected and free.
    await page.waitForSelector(`${row(stream)}[data-state=canceled]`, WAIT);
    await page.waitForSelector(`${row(failing)}[data-state=done]`, WAIT);
    await until('the worker idle', async () => {
      const text = await page.textContent('#workers tbody tr td:nth-child(4)');
      return text === `0 / ${SLOTS}`;
    });
    await sleep(1500);
    const idle = await churnOver(page, 5000);
    const counts = { selects, retries, cancels, maxRunning, streaming, idle };
    console.log(`dashboard at human speed: ${JSON.stringify(counts)}`);

    assert.equal(selects, SELECTS, 'every click on a group row selected it');
    assert.equal(retries, RETRIES, 'every click on Retry failed went through');
    assert.equal(cancels, toCancel.length, 'every click on Cancel went through');
    assert.equal(
      idle.groupsAdded + idle.groupsRemoved,
      0,
      'idle: no node of the groups list replaced',
    );
    assert.equal(idle.added + idle.removed, 0, 'idle: no node of the page replaced');
    assert.ok(still, 'the stream group ran through the measure');
    assert.equal(
      streaming.groupsRemoved,
      0,
      'streaming: the same groups, no node of their list replaced',
    );
    assert.ok(
      streaming.added + streaming.removed <= streaming.timelineAdded + 10,
      `streaming: nodes added as timeline entries come, and a few texts first set (${JSON.stringify(streaming)})`,
    );
    assert.ok(
      maxRunning <= 2 * SLOTS,
      `running shows runs on the worker (${SLOTS} slots), not its reserve: ${maxRunning}`,
    );
    assert.match(
      (await page.textContent(`${row(stream)} .counts`)) ?? '',
      /^\d+ succeeded · 0 failed · [1-9]\d* canceled · 0 running · 0 pending$/,
    );
    assert.equal(await page.locator('img').count(), 0, 'a worker name is text');

    // The failing group's tasks: the worker's message as text, and its stack (when
    // the API has one) folded under it, as text too.
    await page.click(`${row(failing)} .id`);
    const err = '#tasks tbody tr[data-task-index="0"][data-state=failed] td.err';
    await page.waitForSelector(err, WAIT);
    assert.ok(((await page.textContent(`${err} .msg`)) ?? '').includes('<b>boom</b>'));
    assert.equal(await page.locator('#tasks b').count(), 0, 'an error message is text');
    const apiError = (await failing.tasks()).tasks[0]!.error as { stack?: unknown } | null;
    const stack = apiError?.stack;
    if (typeof stack === 'string') {
      assert.equal(await page.textContent(`${err} details pre`), stack);
      assert.equal(await page.getAttribute(`${err} details`, 'open'), null, 'folded');
    } else assert.equal(await page.locator(`${err} details`).count(), 0);
    await page.click(`${err} details summary`).catch(() => {});
    await shot(page, '4-human-speed.png');
    assert.equal(await page.title(), 'regroup dashboard');
  });
});

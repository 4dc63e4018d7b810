/**
 * The dashboard on a tree of groups (issue 14, item 4), in headless Chromium
 * (/usr/bin/chromium through playwright-core, as test/dashboard.test.ts):
 * a group's detail lists its children (drill down) and links its parent
 * (back up), with clicks at a person's speed (press, hold 150 ms, release),
 * patched in place: drilling changes the rows it must and an idle page
 * replaces no node. The tree is written into the store before the
 * coordinator starts (test/tree-seed.ts).
 */
import { after, afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Coordinator } from '../src/coordinator/index.js';
import { SqliteStore } from '../src/store/sqlite.js';
import { Client } from '../src/client/index.js';
import {
  killAll,
  liveProcesses,
  sleep,
  startWorker,
  tempDir,
  until,
} from '../src/testing/procs.js';
import { fixture } from './real-processes.js';
import { seedTree } from './tree-seed.js';

const WAIT = { timeout: 30_000 };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
  await killAll();
});
after(() => assert.equal(liveProcesses(), 0, 'a test left a process running'));

/** A person's click: to the element's center, press, hold 150 ms, release. */
async function humanClick(page: Page, selector: string): Promise<void> {
  const box = await until(`${selector} on the page`, () => page.locator(selector).boundingBox());
  await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
  await page.mouse.down();
  await sleep(150);
  await page.mouse.up();
}

/** Nodes added and removed anywhere in the page over `ms` (a MutationObserver). */
async function nodesReplacedOver(page: Page, ms: number): Promise<number> {
  await page.evaluate(`(() => {
    window.__tree = 0;
    window.__treeObs = new MutationObserver((ms) => {
      for (const m of ms) if (m.type === 'childList') window.__tree += m.addedNodes.length + m.removedNodes.length;
    });
    window.__treeObs.observe(document.body, { subtree: true, childList: true });
  })()`);
  await sleep(ms);
  return page.evaluate<number>(
    '(() => { window.__treeObs.takeRecords(); window.__treeObs.disconnect(); return window.__tree; })()',
  );
}

/** The ids of the children listed under the selected group. */
const childIds = (page: Page): Promise<string[]> =>
  page.$$eval('#tree-children .child', (rows) =>
    rows.map((r) => (r as unknown as { dataset: { group: string } }).dataset.group),
  );

describe('dashboard: a tree of groups', () => {
  it('drills from a parent down to a child and a grandchild and back up, at human speed', async () => {
    const t = tempDir('regroup-dash-tree-');
    const path = join(t.dir, 'tree.db');
    const seed = new SqliteStore({ path });
    await seed.open();
    await seedTree(seed, {
      id: 'root',
      inputs: [0, 1, 2],
      children: [
        { id: 'kid-a', inputs: [0, 1], children: [{ id: 'grand' }] },
        { id: 'kid-b', inputs: [] },
        { id: 'kid-c', handler: '<b>evil</b>' },
      ],
    });
    await seed.close();
    const c = new Coordinator({ store: new SqliteStore({ path }), port: 0 });
    const url = await c.start();
    cleanups.push(async () => {
      await c.stop();
      t.cleanup();
    });
    const b: Browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
    cleanups.push(() => b.close());
    const page = await b.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    await page.waitForSelector('#conn[data-state=live]', WAIT);

    // The groups list marks spawned groups with their parent.
    await page.waitForSelector('.group[data-group=kid-a][data-parent=root]', WAIT);
    assert.match(
      (await page.textContent('.group[data-group=grand] .parent')) ?? '',
      /child of kid-a/,
    );
    assert.equal(await page.getAttribute('.group[data-group=root]', 'data-parent'), null);

    // The root: no parent, its three children listed in creation order with their state.
    await humanClick(page, '.group[data-group=root] .id');
    await page.waitForSelector('#tree-children .child[data-group=kid-c]', WAIT);
    assert.deepEqual(await childIds(page), ['kid-a', 'kid-b', 'kid-c']);
    assert.equal(await page.isHidden('#tree-parent'), true);
    assert.match((await page.textContent('#tree-children-info')) ?? '', /^3 child groups:/);
    assert.equal(await page.textContent('#tree-children .child[data-group=kid-b] .badge'), 'done');
    assert.match(
      (await page.textContent('#tree-children .child[data-group=kid-a]')) ?? '',
      /1 child$/,
    );
    // A user-given handler is text, not markup.
    assert.match(
      (await page.textContent('#tree-children .child[data-group=kid-c]')) ?? '',
      /<b>evil<\/b>/,
    );
    assert.equal(await page.$('#tree-children b'), null);

    // Down: kid-a (its parent linked, its child listed), then its child.
    await humanClick(page, '#tree-children .child[data-group=kid-a] .glink');
    await page.waitForSelector('#tree-parent-link[data-group=root]', WAIT);
    assert.equal(await page.textContent('#tasks-group'), 'kid-a');
    await page.waitForSelector('#tree-children .child[data-group=grand]', WAIT);
    assert.deepEqual(await childIds(page), ['grand']);
    assert.equal(await page.textContent('#tree-parent-link'), 'root');
    assert.match((await page.textContent('#tree-parent')) ?? '', /Spawned by task \d+ of root/);
    await page.waitForSelector('#tasks tbody tr[data-task-index="1"]', WAIT);

    await humanClick(page, '#tree-children .child[data-group=grand]');
    await page.waitForSelector('#tree-parent-link[data-group=kid-a]', WAIT);
    assert.equal(await page.textContent('#tasks-group'), 'grand');
    await page.waitForSelector('#tree-children-info[hidden]', { ...WAIT, state: 'attached' });
    assert.deepEqual(await childIds(page), []);

    // Up twice, by the parent link, to where we started.
    await humanClick(page, '#tree-parent-link');
    await page.waitForSelector('#tree-parent-link[data-group=root]', WAIT);
    assert.equal(await page.textContent('#tasks-group'), 'kid-a');
    assert.deepEqual(await childIds(page), ['grand']);
    await humanClick(page, '#tree-parent-link');
    await page.waitForSelector('#tree-parent[hidden]', { ...WAIT, state: 'attached' });
    assert.equal(await page.textContent('#tasks-group'), 'root');
    await page.waitForSelector('#tree-children .child[data-group=kid-c]', WAIT);
    assert.deepEqual(await childIds(page), ['kid-a', 'kid-b', 'kid-c']);
    assert.equal(
      await page.getAttribute('.group[data-group=root]', 'aria-selected'),
      'true',
      'the groups list follows the selection',
    );

    // Idle on the root's detail: the page is patched, no node replaced.
    await sleep(1500);
    assert.equal(await nodesReplacedOver(page, 4000), 0, 'idle: no node of the page replaced');
    assert.deepEqual(errors, [], 'the page threw');
  });

  it('shows the parents that wait on their children beside the slots in use', async () => {
    const t = tempDir('regroup-dash-wait-');
    const c = new Coordinator({
      store: new SqliteStore({ path: join(t.dir, 'wait.db') }),
      port: 0,
    });
    const url = await c.start();
    const client = new Client({ url });
    cleanups.push(async () => {
      client.close();
      await c.stop();
      t.cleanup();
    });
    // One slot: the root and its 2 children wait, one leaf at a time runs.
    await startWorker(url, fixture('spawn-handlers.js'), 'solo', ['--concurrency', '1']);
    const root = await client.submit('treeSum', [{ depth: 2, fanout: 2, leafMs: 60_000 }]);
    cleanups.push(async () => {
      await root.cancel();
    });
    const b: Browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
    cleanups.push(() => b.close());
    const page = await b.newPage({ viewport: { width: 1280, height: 1000 } });
    await page.goto(url);
    await page.waitForSelector('#conn[data-state=live]', WAIT);
    await page.waitForSelector('#workers tr[data-worker=solo][data-health=alive]', WAIT);
    const slots = await until(
      'the waiting parents on the worker row',
      async () => {
        const text =
          (await page.textContent('#workers tr[data-worker=solo] td:nth-child(4)')) ?? '';
        return /\+ 3 waiting/.test(text) ? text : null;
      },
      30_000,
    );
    assert.equal(slots.trim(), '1 / 1 + 3 waiting');
  });
});

/**
 * The dashboard page's script: plain JavaScript for modern browsers, as a
 * string (see page.ts). It reads the stream at /dashboard/stream with fetch
 * (so it can send the token in a header, which EventSource cannot), keeps
 * the state, and renders it: each list is built once and then patched, keyed
 * rows reused and only what differs written (a click held across an update
 * lands; an idle page changes no node). Every value goes in as text, never
 * as HTML.
 */
export const DASHBOARD_SCRIPT = String.raw`
'use strict';
const cfg = JSON.parse(document.getElementById('cfg').textContent);
const $ = (id) => document.getElementById(id);
const S = { now: 0, recvAt: 0, workers: [], groups: [], timeline: new Map(), series: [], role: null,
  selected: null, filter: '', cursor: -1, stack: [], next: null, tasksAt: 0 };
let token = sessionStorage.getItem('regroup.token') || '';
let tokenWaiters = [];
$('token').value = token;

function el(tag, attrs, kids) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) {
    const v = attrs[k];
    if (v === null || v === undefined || v === false) continue;
    if (k === 'text') e.textContent = String(v);
    else if (k === 'style') e.setAttribute('style', v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of kids || []) if (c) e.append(c);
  return e;
}

// Patching: the page is built once and then only patched. Text and
// attributes are written when they differ, so an update that changes nothing
// touches nothing, and an element under a held mouse button stays the same
// element (a click is a press and a release on one element).
function setText(e, v) {
  const s = String(v);
  const f = e.firstChild;
  if (f && f.nodeType === Node.TEXT_NODE && !f.nextSibling) { if (f.data !== s) f.data = s; }
  else if (e.textContent !== s) e.textContent = s;
}
function setAttr(e, k, v) {
  if (v === null || v === undefined || v === false) { if (e.hasAttribute(k)) e.removeAttribute(k); return; }
  const s = v === true ? '' : String(v);
  if (e.getAttribute(k) !== s) e.setAttribute(k, s);
}
// A boolean property (hidden, disabled): setting it, even to its value, writes the attribute.
function setFlag(e, k, v) { if (e[k] !== v) e[k] = v; }

/**
 * Keeps box's children one per item, in the items' order, keyed by keyOf:
 * a key's node is reused and updated, a new key's node is made, a gone key's
 * node is removed; a node moves only when it is out of place.
 */
function patchList(box, items, keyOf, make, update) {
  const want = new Map();
  for (const it of items) { const k = String(keyOf(it)); if (!want.has(k)) want.set(k, it); }
  const have = new Map();
  for (const c of [...box.children]) {
    if (want.has(c.rgKey) && !have.has(c.rgKey)) have.set(c.rgKey, c); else c.remove();
  }
  let at = box.firstElementChild;
  for (const [k, it] of want) {
    let n = have.get(k);
    if (!n) { n = make(it); n.rgKey = k; }
    update(n, it);
    if (n === at) at = at.nextElementSibling; else box.insertBefore(n, at);
  }
}

const badge = (v) => el('span', { class: 'badge', 'data-v': v, text: v });
function setBadge(e, v) { setAttr(e, 'data-v', v); setText(e, v); }
const secs = (ms) => (ms === null || ms === undefined) ? '' : (ms < 10000 ? (ms / 1000).toFixed(1) + ' s' : ms < 120000 ? Math.round(ms / 1000) + ' s' : Math.round(ms / 60000) + ' min');
const clock = (at) => new Date(at).toLocaleTimeString([], { hour12: false });
const serverNow = () => S.now + (Date.now() - S.recvAt);
const canAct = () => !cfg.tokenRequired || token !== '';
function authHeaders(json) {
  const h = {};
  if (token) h.authorization = 'Bearer ' + token;
  if (json) h['content-type'] = 'application/json';
  return h;
}
const dataHeaders = () => (cfg.mode === 'token' ? authHeaders(false) : {});

function setConn(state, text) { const c = $('conn'); setAttr(c, 'data-state', state); setText(c, text || state); }

$('token-save').addEventListener('click', () => {
  token = $('token').value.trim();
  if (token) sessionStorage.setItem('regroup.token', token); else sessionStorage.removeItem('regroup.token');
  for (const w of tokenWaiters.splice(0)) w();
  render();
});
$('token').addEventListener('keydown', (e) => { if (e.key === 'Enter') $('token-save').click(); });
$('token-clear').addEventListener('click', () => {
  token = ''; $('token').value = ''; sessionStorage.removeItem('regroup.token'); render();
});

function apply(kind, d) {
  S.now = d.now; S.recvAt = Date.now();
  if (kind === 'snapshot') { S.timeline = new Map(); S.series = []; S.role = d.role; }
  if (d.workers) S.workers = d.workers;
  if (d.groups) S.groups = d.groups;
  for (const e of d.timeline || []) S.timeline.set(e.id, e);
  for (const p of d.series || []) {
    const last = S.series[S.series.length - 1];
    if (last && p.t <= last.t) continue;
    S.series.push(p);
  }
  if (S.series.length > 300) S.series.splice(0, S.series.length - 300);
  if (S.timeline.size > 300) {
    const keep = [...S.timeline.values()].sort((a, b) => a.at - b.at).slice(-200);
    S.timeline = new Map(keep.map((e) => [e.id, e]));
  }
  if (!S.selected && S.groups.length > 0) selectGroup(S.groups[0].id);
  scheduleRender();
  const g = S.groups.find((x) => x.id === S.selected);
  if (g && Date.now() - S.tasksAt > 1000) loadTasks();
}

let renderQueued = false;
function scheduleRender() { if (!renderQueued) { renderQueued = true; requestAnimationFrame(() => { renderQueued = false; render(); }); } }

function render() {
  setText($('role'), S.role ? (S.role.role === 'leader' ? 'leader' : 'standby' + (S.role.leaderUrl ? ', leader at ' + S.role.leaderUrl : '')) : '');
  renderWorkers(); renderGroups(); renderSelectedWaiting(); renderTimeline(); renderChart();
}

function renderWorkers() {
  patchList($('workers').tBodies[0], S.workers, (w) => w.workerId, makeWorkerRow, updateWorkerRow);
  setFlag($('workers-empty'), 'hidden', S.workers.length > 0);
}
const makeWorkerRow = () => el('tr', {}, [el('td'), el('td', {}, [badge('')]), el('td', { class: 'num' }), el('td', { class: 'num' }), el('td', { class: 'num' })]);
function updateWorkerRow(tr, w) {
  // A dead worker runs nothing, whether declared dead yet or only judged so.
  const dead = w.deadAt !== null || w.health === 'dead';
  setAttr(tr, 'data-worker', w.name); setAttr(tr, 'data-worker-id', w.workerId); setAttr(tr, 'data-health', w.health);
  const [name, state, beat, slots, done] = tr.cells;
  setText(name, w.name); setAttr(name, 'title', w.workerId);
  setBadge(state.firstChild, w.health);
  setText(beat, w.deadAt !== null ? 'dead ' + secs(serverNow() - w.deadAt) + ' ago' : secs(w.heartbeatAgoMs + (Date.now() - S.recvAt)));
  // Handlers waiting on their children hold no slot: shown beside the slots in use.
  const waiting = !dead && w.waiting > 0 ? ' + ' + w.waiting + ' waiting' : '';
  setText(slots, (dead ? 0 : w.running) + ' / ' + w.slots + waiting);
  setText(done, w.tasksDone);
}

function renderGroups() {
  const hint = cfg.tokenRequired && !token ? 'Enter the client token above to cancel or retry' : '';
  setText($('actions-hint'), hint);
  patchList($('groups'), S.groups, (g) => g.id, makeGroupRow, (row, g) => updateGroupRow(row, g, hint));
  setFlag($('groups-empty'), 'hidden', S.groups.length > 0);
}

// One group's line, made once; its parts are kept on it (row.rg) to be patched.
function makeGroupRow(g) {
  const id = g.id;
  const r = {};
  const seg = (cls) => el('span', { class: cls, hidden: true });
  const row = el('div', { class: 'group', 'data-group': id, onclick: () => selectGroup(id) }, [
    el('div', { class: 'top' }, [
      el('span', { class: 'id', text: id }), (r.state = badge('')),
      (r.handler = el('span', { class: 'meta' })),
      (r.parent = el('span', { class: 'parent' })),
      (r.progress = el('span', { class: 'progress' })),
      (r.counts = el('span', { class: 'meta counts', title: 'reserved: claimed for a worker ahead of its free slots, not sent to it yet (not running)' })),
      (r.rate = el('span', { class: 'meta rate' })),
      el('span', { class: 'actions' }, [
        (r.cancel = el('button', { type: 'button', class: 'cancel', onclick: (e) => { e.stopPropagation(); act(id, 'cancel'); } }, ['Cancel'])),
        (r.retry = el('button', { type: 'button', class: 'retry', onclick: (e) => { e.stopPropagation(); act(id, 'retry'); } }, ['Retry failed'])),
      ]),
    ]),
    (r.bar = el('div', { class: 'bar' }, [(r.ok = seg('s-succeeded')), (r.failed = seg('s-failed')), (r.canceled = seg('s-canceled')), (r.running = seg('s-running'))])),
  ]);
  r.waiting = el('div', { class: 'waiting' });
  row.rg = r;
  return row;
}

function updateGroupRow(row, g, hint) {
  const r = row.rg;
  const fin = g.succeeded + g.failed + g.canceled;
  const pct = g.total ? Math.floor(100 * fin / g.total) : (g.state === 'done' ? 100 : 0);
  const final = g.state === 'done' || g.state === 'canceled';
  const reserved = g.reserved || 0;
  const w = g.waiting;
  setAttr(row, 'data-state', g.state); setAttr(row, 'data-pct', pct); setAttr(row, 'data-waiting', w ? w.code : null);
  setAttr(row, 'aria-selected', String(g.id === S.selected));
  setBadge(r.state, g.state);
  setText(r.handler, g.handler);
  setText(r.parent, g.parent ? 'child of ' + g.parent : '');
  setAttr(row, 'data-parent', g.parent || null);
  setText(r.progress, fin + ' / ' + g.total + ' (' + pct + '%)');
  const counts = [g.succeeded + ' succeeded', g.failed + ' failed', g.canceled + ' canceled', g.running + ' running'];
  if (reserved > 0) counts.push(reserved + ' reserved');
  counts.push(g.pending + ' pending');
  setText(r.counts, counts.join(' · '));
  const rate = g.ratePerSec === null ? '' : g.ratePerSec.toFixed(g.ratePerSec < 10 ? 1 : 0) + ' tasks/s';
  setText(r.rate, rate + (g.etaMs === null ? '' : ' · ' + secs(g.etaMs) + ' left'));
  setFlag(r.cancel, 'disabled', !canAct() || final);
  setAttr(r.cancel, 'title', hint || (final ? 'the group is ' + g.state : 'cancel every task not yet final'));
  setFlag(r.retry, 'disabled', !canAct() || g.failed === 0);
  setAttr(r.retry, 'title', hint || (g.failed === 0 ? 'no failed tasks' : 'run the failed tasks again'));
  if (w) {
    setAttr(r.waiting, 'title', 'no connected worker can run its pending tasks since ' + clock(w.since));
    setText(r.waiting, waitingText(w));
    if (!r.waiting.isConnected) row.insertBefore(r.waiting, r.bar);
  } else if (r.waiting.isConnected) r.waiting.remove();
  const segment = (e, n, title) => {
    setFlag(e, 'hidden', !n || !g.total);
    setAttr(e, 'style', n && g.total ? 'width:' + (100 * n / g.total) + '%' : null);
    setAttr(e, 'title', title + ': ' + n);
  };
  segment(r.ok, g.succeeded, 'succeeded'); segment(r.failed, g.failed, 'failed');
  segment(r.canceled, g.canceled, 'canceled'); segment(r.running, g.running, 'running');
}

// Why a group waits: the message names user-given handlers and labels, so it goes in as text only.
const waitingText = (w) => 'waiting ' + secs(Math.max(0, serverNow() - w.since)) + ': ' + w.message;
const WAITING_FIX = {
  no_worker: 'Start a worker whose handler module exports the handler.',
  no_handler: 'Start a worker whose handler module exports the handler, or cancel the group and submit it with the right handler name.',
  no_label: 'Start a worker with the labels the group requires, or cancel the group.',
};

function renderSelectedWaiting() {
  const g = S.groups.find((x) => x.id === S.selected);
  const w = g ? g.waiting : null;
  const box = $('tasks-waiting');
  setFlag(box, 'hidden', !w);
  setAttr(box, 'data-code', w ? w.code : '');
  setText($('tasks-waiting-text'), w ? waitingText(w) : '');
  setText($('tasks-waiting-fix'), w ? WAITING_FIX[w.code] || '' : '');
}

function renderTimeline() {
  const items = [...S.timeline.values()].sort((a, b) => b.at - a.at || b.rev - a.rev).slice(0, 200);
  patchList($('timeline'), items, (e) => e.id, () => el('li', {}, [el('time'), document.createTextNode('')]), (li, e) => {
    setAttr(li, 'data-kind', e.kind); setAttr(li, 'data-id', e.id);
    setText(li.firstChild, clock(e.at));
    if (li.lastChild.data !== e.text) li.lastChild.data = e.text;
  });
}

const SVG = 'http://www.w3.org/2000/svg';
function polyline(color) {
  const p = document.createElementNS(SVG, 'polyline');
  p.setAttribute('fill', 'none'); p.setAttribute('stroke', color); p.setAttribute('stroke-width', '2'); p.setAttribute('vector-effect', 'non-scaling-stroke');
  return p;
}
const chartLines = { completed: polyline('#2f9e44'), running: polyline('#1c7ed6') };
$('chart').append(chartLines.completed, chartLines.running);

function renderChart() {
  const pts = S.series;
  const W = 600, H = 140, pad = 4;
  const maxC = Math.max(1, ...pts.map((p) => p.completed));
  const maxR = Math.max(1, ...pts.map((p) => p.running));
  // The window grows with the data, from 20 s up to 5 minutes.
  const t1 = pts.length ? pts[pts.length - 1].t : 0;
  const span = Math.min(300000, Math.max(20000, pts.length ? t1 - pts[0].t : 0));
  const t0 = t1 - span;
  const x = (t) => ((t - t0) / span) * W;
  const line = (key, max) => pts.map((p) => x(p.t).toFixed(1) + ',' + (H - pad - (p[key] / max) * (H - 2 * pad)).toFixed(1)).join(' ');
  setAttr(chartLines.completed, 'points', line('completed', maxC));
  setAttr(chartLines.running, 'points', line('running', maxR));
  setText($('chart-max-c'), '(max ' + Math.round(maxC) + ')');
  setText($('chart-max-r'), '(max ' + maxR + ')');
  setAttr($('chart'), 'data-points', pts.length);
}

function selectGroup(id) {
  if (S.selected !== id) { S.selected = id; S.cursor = -1; S.stack = []; }
  setText($('tasks-group'), id);
  scheduleRender();
  loadTasks();
}

$('task-state').addEventListener('change', () => { S.filter = $('task-state').value; S.cursor = -1; S.stack = []; loadTasks(); });
$('next').addEventListener('click', () => { if (S.next === null) return; S.stack.push(S.cursor); S.cursor = S.next; loadTasks(); });
$('prev').addEventListener('click', () => { if (!S.stack.length) return; S.cursor = S.stack.pop(); loadTasks(); });

const PAGE = 20;
let tasksSeq = 0;
async function loadTasks() {
  if (!S.selected) return;
  const seq = ++tasksSeq;
  S.tasksAt = Date.now();
  const q = new URLSearchParams({ group: S.selected, after: String(S.cursor), limit: String(PAGE) });
  if (S.filter) q.set('state', S.filter);
  try {
    const res = await fetch('/dashboard/tasks?' + q, { headers: dataHeaders(), cache: 'no-store' });
    const body = await res.json();
    if (seq !== tasksSeq) return;
    if (!res.ok) { setText($('page-info'), body.error ? body.error.message : 'HTTP ' + res.status); return; }
    S.next = body.next;
    renderTasks(body.tasks);
    renderTree(body.tree);
  } catch (e) { if (seq === tasksSeq) setText($('page-info'), 'could not load tasks: ' + e.message); }
}

// Where the selected group sits in a tree: a link up to its parent, a list down to its children.
// Ids and handlers are user-given: text only.
function renderTree(tree) {
  const p = tree ? tree.parent : null;
  setFlag($('tree-parent'), 'hidden', !p);
  setText($('tree-parent-link'), p ? p.groupId : '');
  setAttr($('tree-parent-link'), 'data-group', p ? p.groupId : null);
  setText($('tree-parent-task'), p ? p.taskId : '');
  const rows = tree ? tree.rows : [];
  const n = tree ? tree.children : 0;
  setFlag($('tree-children-info'), 'hidden', n === 0);
  setText($('tree-children-info'), n === 0 ? '' : n + (n === 1 ? ' child group' : ' child groups') + (n > rows.length ? ', the first ' + rows.length + ' shown (regroup groups --parent ' + S.selected + ' lists them all)' : '') + ':');
  patchList($('tree-children'), rows, (c) => c.id, makeChildRow, updateChildRow);
}
function makeChildRow(c) {
  const id = c.id;
  return el('div', { class: 'child', 'data-group': id, onclick: () => selectGroup(id) }, [
    el('span', { class: 'glink', text: id }), badge(''), el('span', { class: 'meta' }), el('span', { class: 'meta' }),
  ]);
}
function updateChildRow(row, c) {
  const [, state, counts, kids] = row.children;
  setAttr(row, 'data-state', c.state);
  setBadge(state, c.state);
  setText(counts, c.handler + ' · ' + (c.succeeded + c.failed + c.canceled) + ' / ' + c.total + ' final · ' + c.succeeded + ' succeeded · ' + c.failed + ' failed · ' + c.running + ' running · ' + c.pending + ' pending');
  setText(kids, c.children ? c.children + (c.children === 1 ? ' child' : ' children') : '');
}
$('tree-parent-link').addEventListener('click', (e) => {
  e.preventDefault();
  const id = $('tree-parent-link').getAttribute('data-group');
  if (id) selectGroup(id);
});

function renderTasks(tasks) {
  patchList($('tasks').tBodies[0], tasks, (t) => t.index, makeTaskRow, updateTaskRow);
  const page = S.stack.length + 1;
  setText($('page-info'), tasks.length ? 'page ' + page + ' · tasks ' + tasks[0].index + '–' + tasks[tasks.length - 1].index : (page > 1 ? 'page ' + page + ' · no more tasks' : 'no tasks' + (S.filter ? ' ' + S.filter : '')));
  setFlag($('prev'), 'disabled', S.stack.length === 0);
  setFlag($('next'), 'disabled', S.next === null);
}
const makeTaskRow = () => el('tr', {}, [
  el('td', { class: 'num' }), el('td', {}, [badge('')]), el('td', { class: 'num' }), el('td'), el('td', { class: 'num' }),
  el('td', { class: 'err' }, [el('span', { class: 'msg' })]),
]);
function updateTaskRow(tr, t) {
  setAttr(tr, 'data-task-index', t.index); setAttr(tr, 'data-state', t.state);
  const [index, state, attempt, worker, duration, err] = tr.cells;
  setText(index, t.index); setBadge(state.firstChild, t.state); setText(attempt, t.attempt);
  setText(worker, t.worker || ''); setAttr(worker, 'title', t.workerId || '');
  setText(duration, secs(t.durationMs));
  updateError(err, t.error);
}
// A failed task's error: its message, and its stack (when the worker sent one) folded
// under it. Both come from the worker: text only.
function updateError(td, error) {
  setText(td.firstChild, error ? error.kind + ': ' + error.message : '');
  const stack = error && typeof error.stack === 'string' && error.stack !== '' ? error.stack : null;
  let d = td.querySelector('details');
  if (stack === null) { if (d) d.remove(); return; }
  if (!d) { d = el('details', {}, [el('summary', { text: 'stack' }), el('pre', { class: 'stack' })]); td.append(d); }
  setText(d.lastChild, stack);
}

async function act(groupId, what) {
  const msg = $('action-msg');
  msg.textContent = what + ' ' + groupId + '…'; delete msg.dataset.result;
  try {
    const res = await fetch('/v1/groups/' + encodeURIComponent(groupId) + '/' + what, { method: 'POST', headers: authHeaders(true), body: '{}' });
    const body = await res.json().catch(() => ({}));
    if (!res.ok) { msg.textContent = what + ' failed: ' + (body.error ? body.error.code + ': ' + body.error.message : 'HTTP ' + res.status); msg.dataset.result = 'error'; return; }
    msg.textContent = groupId + ': ' + (what === 'retry' ? 'retried ' + body.retried + ' failed task' + (body.retried === 1 ? '' : 's') : 'canceled');
    msg.dataset.result = 'ok';
    loadTasks();
  } catch (e) { msg.textContent = what + ' failed: ' + e.message; msg.dataset.result = 'error'; }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function waitForToken() { return new Promise((r) => tokenWaiters.push(r)); }

async function connect() {
  for (;;) {
    try {
      const res = await fetch('/dashboard/stream', { headers: dataHeaders(), cache: 'no-store' });
      if (res.status === 401) {
        setConn('token', token ? 'wrong token' : 'enter the client token');
        await waitForToken();
        continue;
      }
      if (!res.ok || !res.body) throw new Error('HTTP ' + res.status);
      setConn('live');
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i); buf = buf.slice(i + 2);
          let ev = 'message', data = '';
          for (const ln of block.split('\n')) {
            if (ln.startsWith('event: ')) ev = ln.slice(7);
            else if (ln.startsWith('data: ')) data += ln.slice(6);
          }
          if (data && (ev === 'snapshot' || ev === 'update')) apply(ev, JSON.parse(data));
        }
      }
    } catch (e) { /* reconnect below */ }
    setConn('reconnecting');
    await sleep(1000);
  }
}
setInterval(() => { if (S.recvAt) renderWorkers(); }, 1000);
connect();
`;

/**
 * The dashboard page's script: plain JavaScript for modern browsers, as a
 * string (see page.ts). It reads the stream at /dashboard/stream with fetch
 * (so it can send the token in a header, which EventSource cannot), keeps
 * the state, and renders it with textContent only.
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
const badge = (v) => el('span', { class: 'badge', 'data-v': v, text: v });
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

function setConn(state, text) { const c = $('conn'); c.dataset.state = state; c.textContent = text || state; }

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
  $('role').textContent = S.role ? (S.role.role === 'leader' ? 'leader' : 'standby' + (S.role.leaderUrl ? ', leader at ' + S.role.leaderUrl : '')) : '';
  renderWorkers(); renderGroups(); renderSelectedWaiting(); renderTimeline(); renderChart();
}

function renderWorkers() {
  const tb = $('workers').tBodies[0];
  const now = serverNow();
  tb.replaceChildren(...S.workers.map((w) => el('tr', { 'data-worker': w.name, 'data-worker-id': w.workerId, 'data-health': w.health }, [
    el('td', { text: w.name, title: w.workerId }),
    el('td', {}, [badge(w.health)]),
    el('td', { class: 'num', text: w.deadAt !== null ? 'dead ' + secs(now - w.deadAt) + ' ago' : secs(w.heartbeatAgoMs + (Date.now() - S.recvAt)) }),
    el('td', { class: 'num', text: w.deadAt !== null ? '' : w.running + ' / ' + w.slots }),
    el('td', { class: 'num', text: w.tasksDone }),
  ])));
  $('workers-empty').hidden = S.workers.length > 0;
}

function segment(cls, n, total, title) {
  if (!n || !total) return null;
  return el('span', { class: cls, style: 'width:' + (100 * n / total) + '%', title: title + ': ' + n });
}

function renderGroups() {
  const box = $('groups');
  const hint = cfg.tokenRequired && !token ? 'Enter the client token above to cancel or retry' : '';
  $('actions-hint').textContent = hint;
  box.replaceChildren(...S.groups.map((g) => {
    const fin = g.succeeded + g.failed + g.canceled;
    const pct = g.total ? Math.floor(100 * fin / g.total) : (g.state === 'done' ? 100 : 0);
    const final = g.state === 'done' || g.state === 'canceled';
    const rate = g.ratePerSec === null ? '' : g.ratePerSec.toFixed(g.ratePerSec < 10 ? 1 : 0) + ' tasks/s';
    const eta = g.etaMs === null ? '' : ' · ' + secs(g.etaMs) + ' left';
    const w = g.waiting;
    return el('div', { class: 'group', 'data-group': g.id, 'data-state': g.state, 'data-pct': pct, 'data-waiting': w ? w.code : null, 'aria-selected': String(g.id === S.selected), onclick: () => selectGroup(g.id) }, [
      el('div', { class: 'top' }, [
        el('span', { class: 'id', text: g.id }), badge(g.state),
        el('span', { class: 'meta', text: g.handler }),
        el('span', { class: 'progress', text: fin + ' / ' + g.total + ' (' + pct + '%)' }),
        el('span', { class: 'meta', text: [g.succeeded + ' succeeded', g.failed + ' failed', g.running + ' running', g.pending + ' pending'].join(' · ') }),
        el('span', { class: 'meta rate', text: rate + eta }),
        el('span', { class: 'actions' }, [
          el('button', { type: 'button', class: 'cancel', disabled: !canAct() || final, title: hint || (final ? 'the group is ' + g.state : 'cancel every task not yet final'), onclick: (e) => { e.stopPropagation(); act(g.id, 'cancel'); } }, ['Cancel']),
          el('button', { type: 'button', class: 'retry', disabled: !canAct() || g.failed === 0, title: hint || (g.failed === 0 ? 'no failed tasks' : 'run the failed tasks again'), onclick: (e) => { e.stopPropagation(); act(g.id, 'retry'); } }, ['Retry failed']),
        ]),
      ]),
      w ? el('div', { class: 'waiting', title: 'no connected worker can run its pending tasks since ' + clock(w.since), text: waitingText(w) }) : null,
      el('div', { class: 'bar' }, [
        segment('s-succeeded', g.succeeded, g.total, 'succeeded'), segment('s-failed', g.failed, g.total, 'failed'),
        segment('s-canceled', g.canceled, g.total, 'canceled'), segment('s-running', g.running, g.total, 'running'),
      ]),
    ]);
  }));
  $('groups-empty').hidden = S.groups.length > 0;
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
  box.hidden = !w;
  box.dataset.code = w ? w.code : '';
  $('tasks-waiting-text').textContent = w ? waitingText(w) : '';
  $('tasks-waiting-fix').textContent = w ? WAITING_FIX[w.code] || '' : '';
}

function renderTimeline() {
  const items = [...S.timeline.values()].sort((a, b) => b.at - a.at || b.rev - a.rev).slice(0, 200);
  $('timeline').replaceChildren(...items.map((e) => el('li', { 'data-kind': e.kind, 'data-id': e.id }, [el('time', { text: clock(e.at) }), e.text])));
}

function renderChart() {
  const svg = $('chart');
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
  const ns = 'http://www.w3.org/2000/svg';
  const poly = (pointsAttr, color) => { const p = document.createElementNS(ns, 'polyline'); p.setAttribute('points', pointsAttr); p.setAttribute('fill', 'none'); p.setAttribute('stroke', color); p.setAttribute('stroke-width', '2'); p.setAttribute('vector-effect', 'non-scaling-stroke'); return p; };
  svg.replaceChildren(poly(line('completed', maxC), '#2f9e44'), poly(line('running', maxR), '#1c7ed6'));
  $('chart-max-c').textContent = '(max ' + Math.round(maxC) + ')';
  $('chart-max-r').textContent = '(max ' + maxR + ')';
  svg.dataset.points = String(pts.length);
}

function selectGroup(id) {
  if (S.selected !== id) { S.selected = id; S.cursor = -1; S.stack = []; }
  $('tasks-group').textContent = id;
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
    if (!res.ok) { $('page-info').textContent = body.error ? body.error.message : 'HTTP ' + res.status; return; }
    S.next = body.next;
    renderTasks(body.tasks);
  } catch (e) { if (seq === tasksSeq) $('page-info').textContent = 'could not load tasks: ' + e.message; }
}

function renderTasks(tasks) {
  const tb = $('tasks').tBodies[0];
  tb.replaceChildren(...tasks.map((t) => el('tr', { 'data-task-index': t.index, 'data-state': t.state }, [
    el('td', { class: 'num', text: t.index }), el('td', {}, [badge(t.state)]),
    el('td', { class: 'num', text: t.attempt }), el('td', { text: t.worker || '', title: t.workerId || '' }),
    el('td', { class: 'num', text: secs(t.durationMs) }),
    el('td', { class: 'err', text: t.error ? t.error.kind + ': ' + t.error.message : '' }),
  ])));
  const page = S.stack.length + 1;
  $('page-info').textContent = tasks.length ? 'page ' + page + ' · tasks ' + tasks[0].index + '–' + tasks[tasks.length - 1].index : (page > 1 ? 'page ' + page + ' · no more tasks' : 'no tasks' + (S.filter ? ' ' + S.filter : ''));
  $('prev').disabled = S.stack.length === 0;
  $('next').disabled = S.next === null;
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

/**
 * The dashboard page: one HTML document with its CSS and script inline (no
 * build step, no package). Shipped as a string because tsc copies only .ts
 * files to dist. Every value from the server goes into the page as text
 * (textContent), never as HTML: worker names and error messages are data.
 */
import { DASHBOARD_SCRIPT } from './script.js';

export interface PageConfig {
  /** public: data without a token; token: the page asks for it first. */
  mode: 'public' | 'token';
  /** Whether the coordinator has a client token at all (cancel and retry need it then). */
  tokenRequired: boolean;
}

const STYLE = `
:root{--ok:#2f9e44;--fail:#e03131;--run:#1c7ed6;--pend:#ced4da;--canc:#868e96;--bg:#f8f9fa;--fg:#212529;--mut:#6c757d;--card:#fff;--line:#dee2e6}
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:var(--bg);color:var(--fg)}
header{display:flex;gap:16px;align-items:center;padding:10px 16px;background:#212529;color:#fff;flex-wrap:wrap}
header h1{font-size:18px;margin:0}
header .sp{flex:1}
#conn{font-size:12px;padding:2px 8px;border-radius:10px;background:#495057}
#conn[data-state=live]{background:var(--ok)}
#conn[data-state=reconnecting],#conn[data-state=token]{background:#f08c00}
header input{width:220px;padding:3px 6px;border-radius:4px;border:1px solid #868e96}
header button{padding:3px 8px}
main{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:12px;padding:12px 16px}
section{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:10px 12px;min-width:0}
section h2{font-size:14px;margin:0 0 8px;text-transform:uppercase;letter-spacing:.04em;color:var(--mut)}
.wide{grid-column:1/-1}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:3px 6px;border-bottom:1px solid var(--line);white-space:nowrap}
td.err{white-space:normal;color:var(--fail);max-width:420px;overflow-wrap:anywhere}
td.err summary{cursor:pointer;color:var(--mut)}td.err pre{margin:2px 0 0;white-space:pre-wrap;font-size:12px;color:var(--fg);max-height:240px;overflow:auto}
#workers td:first-child{max-width:220px;overflow:hidden;text-overflow:ellipsis}
th{color:var(--mut);font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;color:#fff;background:var(--canc)}
.badge[data-v=alive],.badge[data-v=succeeded],.badge[data-v=done]{background:var(--ok)}
.badge[data-v=suspect],.badge[data-v=draining]{background:#f08c00}
.badge[data-v=dead],.badge[data-v=failed]{background:var(--fail)}
.badge[data-v=running],.badge[data-v=sealed],.badge[data-v=open]{background:var(--run)}
.badge[data-v=pending]{background:#adb5bd}
.group{padding:6px 4px;border-bottom:1px solid var(--line);cursor:pointer}
.group[aria-selected=true]{background:#e7f5ff}
.group .top{display:flex;gap:8px;align-items:baseline;flex-wrap:wrap}
.group .id{font-family:ui-monospace,monospace;font-weight:600}
.group .meta{color:var(--mut);font-size:12px}
.bar{display:flex;height:12px;border-radius:3px;overflow:hidden;background:var(--pend);margin:4px 0}
.bar span{display:block;height:100%}
.s-succeeded{background:var(--ok)}.s-failed{background:var(--fail)}.s-canceled{background:var(--canc)}.s-running{background:var(--run)}
.actions button{font-size:12px;margin-left:4px}
.hint{color:var(--mut);font-size:12px}
#timeline{list-style:none;margin:0;padding:0;max-height:260px;overflow:auto;font-size:13px}
#timeline li{padding:3px 0;border-bottom:1px dotted var(--line)}
#timeline time{color:var(--mut);font-family:ui-monospace,monospace;margin-right:8px}
#timeline li[data-kind="worker.dead"]{color:var(--fail)}
.pager{display:flex;gap:8px;align-items:center;margin-top:6px}
#chart{width:100%;height:140px;display:block}
.legend{font-size:12px;color:var(--mut)}
.legend b{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px;vertical-align:middle}
.waiting{color:#c25e00;font-size:12px;overflow-wrap:anywhere}
#tasks-waiting{margin:0 0 8px}#tasks-waiting-fix{color:var(--mut);margin-left:6px}
#action-msg{font-size:13px}#action-msg[data-result=error]{color:var(--fail)}
.tree p{margin:0 0 6px}
.glink{font-family:ui-monospace,monospace;font-weight:600;color:var(--run);cursor:pointer}
#tree-children{margin:0 0 8px;max-height:260px;overflow:auto}
.child{display:flex;gap:8px;align-items:baseline;padding:3px 4px;border-bottom:1px dotted var(--line);cursor:pointer}
.child:hover{background:#f1f3f5}
.child .meta{color:var(--mut);font-size:12px}
.group .parent{color:var(--mut);font-size:12px}
@media (max-width:900px){main{grid-template-columns:1fr}}
`;

const BODY = `
<header>
  <h1>regroup</h1>
  <span id="role" class="hint"></span>
  <span id="conn" data-state="connecting">connecting</span>
  <span class="sp"></span>
  <label for="token">Client token</label>
  <input id="token" type="password" autocomplete="off" placeholder="for cancel and retry">
  <button id="token-save" type="button">Use</button>
  <button id="token-clear" type="button">Forget</button>
</header>
<main>
  <section id="workers-box"><h2>Workers</h2>
    <table id="workers"><thead><tr><th>Worker</th><th>State</th><th class="num">Heartbeat</th><th class="num">Slots in use</th><th class="num">Tasks done</th></tr></thead><tbody></tbody></table>
    <p id="workers-empty" class="hint">No workers connected.</p>
  </section>
  <section id="chart-box"><h2>Throughput</h2>
    <svg id="chart" viewBox="0 0 600 140" preserveAspectRatio="none" role="img" aria-label="completed tasks per second and running tasks"></svg>
    <div class="legend"><b style="background:var(--ok)"></b>completed / s <span id="chart-max-c"></span><b style="background:var(--run)"></b>running <span id="chart-max-r"></span> · up to the last 5 minutes</div>
  </section>
  <section id="groups-box" class="wide"><h2>Groups</h2>
    <div id="groups"></div>
    <p id="groups-empty" class="hint">No groups yet.</p>
    <p><span id="actions-hint" class="hint"></span><span id="action-msg"></span></p>
  </section>
  <section id="tasks-box" class="wide"><h2>Tasks of <span id="tasks-group">(pick a group above)</span></h2>
    <div id="tree" class="tree">
      <p id="tree-parent" hidden>Spawned by task <span id="tree-parent-task"></span> of <a id="tree-parent-link" href="#" class="glink"></a> <span class="hint">(up)</span></p>
      <p id="tree-children-info" class="hint" hidden></p>
      <div id="tree-children"></div>
    </div>
    <p id="tasks-waiting" class="waiting" hidden><span id="tasks-waiting-text"></span><span id="tasks-waiting-fix"></span></p>
    <label>State <select id="task-state"><option value="">all</option><option>pending</option><option>running</option><option>succeeded</option><option>failed</option><option>canceled</option></select></label>
    <table id="tasks"><thead><tr><th class="num">#</th><th>State</th><th class="num">Attempt</th><th>Worker</th><th class="num">Duration</th><th>Error</th></tr></thead><tbody></tbody></table>
    <div class="pager"><button id="prev" type="button" disabled>&larr; Previous</button><span id="page-info" class="hint"></span><button id="next" type="button" disabled>Next &rarr;</button></div>
  </section>
  <section id="timeline-box" class="wide"><h2>Timeline</h2><ul id="timeline"></ul></section>
</main>
`;

export function dashboardPage(cfg: PageConfig): string {
  // The config is two known values; JSON of them cannot close the script element.
  const config = JSON.stringify({ mode: cfg.mode, tokenRequired: cfg.tokenRequired });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<link rel="icon" href="data:,"><title>regroup dashboard</title><style>${STYLE}</style></head>
<body>${BODY}
<script id="cfg" type="application/json">${config}</script>
<script>${DASHBOARD_SCRIPT}</script>
</body></html>`;
}

// The per-request cost of the coordinator's HTTP layer in two builds, measured
// interleaved in one process (old then new, new then old, ...): GET
// /v1/groups?limit=1 over one kept-alive connection, 10 rounds of 2000.
// Used to compare node:http (before issue 11) with fastify; see
// docs/benchmarks.md, "fastify".
import http from 'node:http';
import { resolve } from 'node:path';
import { tmpdir } from 'node:os';
const sides = {};
const [oldRoot, newRoot] = process.argv.slice(2);
if (!oldRoot || !newRoot) {
  console.error(
    'usage: node bench/http-overhead.mjs <old tree> <new tree> (each built: npm run build)',
  );
  process.exit(2);
}
for (const [name, root] of [
  ['old', oldRoot],
  ['new', newRoot],
]) {
  const { Coordinator } = await import(resolve(root) + '/dist/src/coordinator/index.js');
  const { SqliteStore } = await import(resolve(root) + '/dist/src/store/sqlite.js');
  const c = new Coordinator({
    store: new SqliteStore({ path: `${tmpdir()}/httpab-${name}-${process.pid}.db` }),
    port: 0,
  });
  const url = await c.start();
  sides[name] = { c, url };
}
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function get(url, path) {
  return new Promise((res, rej) => {
    http
      .get(url + path, { agent }, (r) => {
        r.resume();
        r.on('end', res);
      })
      .on('error', rej);
  });
}
function post(url, path, body) {
  return new Promise((res, rej) => {
    const req = http.request(
      url + path,
      { method: 'POST', agent, headers: { 'content-type': 'application/json' } },
      (r) => {
        r.resume();
        r.on('end', res);
      },
    );
    req.on('error', rej);
    req.end(body);
  });
}
const results = { old: [], new: [] };
for (let round = 0; round < 10; round++) {
  for (const name of round % 2 ? ['old', 'new'] : ['new', 'old']) {
    const { url } = sides[name];
    const n = 2000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await get(url, '/v1/groups?limit=1');
    results[name].push((performance.now() - t0) / n);
  }
}
const med = (a) => a.sort((x, y) => x - y)[a.length >> 1];
console.log(
  'GET /v1/groups?limit=1 per request, median of 10 rounds of 2000: old',
  med(results.old).toFixed(3),
  'ms, new',
  med(results.new).toFixed(3),
  'ms',
);
for (const s of Object.values(sides)) await s.c.stop();
agent.destroy();

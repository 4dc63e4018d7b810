// What the benchmark ran on, and the versions of everything it measured.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { BENCH_DIR, ROOT_DIR } from './paths.mjs';

function sh(cmd, args) {
  try {
    return execFileSync(cmd, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10_000,
    }).trim();
  } catch {
    return null;
  }
}

export function loadavg() {
  return os.loadavg().map((x) => Math.round(x * 100) / 100);
}

export function machine() {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model ?? null,
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    uptime: sh('uptime', []),
  };
}

function packageVersion(dir, name) {
  const p = join(dir, 'node_modules', name, 'package.json');
  if (!existsSync(p)) return null;
  return JSON.parse(readFileSync(p, 'utf8')).version;
}

export function regroupVersion() {
  const pkg = JSON.parse(readFileSync(join(ROOT_DIR, 'package.json'), 'utf8'));
  const commit = sh('git', ['-C', ROOT_DIR, 'rev-parse', '--short', 'HEAD']);
  const dirty = sh('git', ['-C', ROOT_DIR, 'status', '--porcelain', '--', 'src']);
  return {
    version: pkg.version,
    commit,
    srcModifiedSinceCommit: dirty === null ? null : dirty.length > 0,
    betterSqlite3: packageVersion(ROOT_DIR, 'better-sqlite3'),
    pg: packageVersion(ROOT_DIR, 'pg'),
  };
}

export function peerVersions() {
  return {
    bullmq: packageVersion(BENCH_DIR, 'bullmq'),
    ioredis: packageVersion(BENCH_DIR, 'ioredis'),
    'pg-boss': packageVersion(BENCH_DIR, 'pg-boss'),
    'graphile-worker': packageVersion(BENCH_DIR, 'graphile-worker'),
    pg: packageVersion(BENCH_DIR, 'pg'),
  };
}

/** PostgreSQL's version string, or an error text. */
export async function postgresVersion(url) {
  try {
    const { default: pg } = await import('pg');
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
    await c.connect();
    try {
      const r = await c.query(
        'select version() as v, current_setting($1) as sc, current_setting($2) as fs',
        ['synchronous_commit', 'fsync'],
      );
      return `${r.rows[0].v.split(' on ')[0]} (synchronous_commit=${r.rows[0].sc}, fsync=${r.rows[0].fs})`;
    } finally {
      await c.end();
    }
  } catch (e) {
    return `unavailable: ${e.message}`;
  }
}

/** Redis's version and persistence settings through redis-cli, when there. */
export function redisVersion(host, port) {
  const info = sh('redis-cli', ['-h', host, '-p', String(port), 'info', 'server']);
  const v = info && /redis_version:(\S+)/.exec(info)?.[1];
  if (!v) return null;
  // `config get X` prints the name, then the value on the next line (none when empty).
  const get = (name) => {
    const out = sh('redis-cli', ['-h', host, '-p', String(port), 'config', 'get', name]);
    return out === null ? '?' : (out.split('\n')[1] ?? '');
  };
  const save = get('save');
  const aof = get('appendonly');
  return `${v} (save "${save}", appendonly ${aof})`;
}

/**
 * regroup as a user gets it. The repository is packed (`npm pack` of the
 * build `npm test` has just made) and installed into a fresh project with
 * production dependencies only, no devDependency anywhere. There a strict
 * TypeScript project (skipLibCheck off) type-checks against the installed
 * declarations, the installed bin runs a coordinator and a worker whose
 * handlers are a `.ts` module, and the README's "Five minutes" runs as
 * written: its fenced blocks are read from README.md, so this test breaks
 * when the README and the package part ways.
 *
 * It needs the npm registry. better-sqlite3's prebuilt binaries are on
 * GitHub, which CI may not reach, so its first install compiles (about a
 * minute); the binary is then kept as a local prebuild in npm's cache folder
 * (`<cache>/_prebuilds`, where prebuild-install keeps the ones it downloads)
 * and later installs unpack it. The JavaScript of every dependency still
 * comes from the registry (or npm's cache of it), never from the repository.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir, until } from '../src/testing/procs.js';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const TSC = join(REPO, 'node_modules/typescript/bin/tsc');
const INSTALL_FLAGS = ['--omit=dev', '--no-audit', '--no-fund'];
const README_PORT = 'http://127.0.0.1:7070';

// ---- processes: each child leads its own process group, killed whole ----

const children = new Set<ChildProcess>();

function killGroup(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
}

function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0);
    return true;
  } catch {
    return false;
  }
}

const tmp = tempDir('regroup-package-');
const APP = join(tmp.dir, 'app');

function emergency(signal: NodeJS.Signals, code: number): void {
  process.once(signal, () => {
    for (const c of children) killGroup(c);
    tmp.cleanup();
    process.exit(code);
  });
}
emergency('SIGINT', 130);
emergency('SIGTERM', 143);
process.on('exit', () => {
  for (const c of children) killGroup(c);
});

/**
 * The environment of every command: no REGROUP_* of the caller (but the
 * REGROUP_TEST_* of the test run), and none of the npm_* that `npm test`
 * exports (npm_config_local_prefix would point npm at the repository), but
 * where npm's cache is.
 */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('REGROUP_') && !k.startsWith('REGROUP_TEST_')) continue;
    if (k.toLowerCase().startsWith('npm_') && k.toLowerCase() !== 'npm_config_cache') continue;
    out[k] = v;
  }
  out['PATH'] = [dirname(process.execPath), process.env['PATH'] ?? ''].join(delimiter);
  return { ...out, ...extra };
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (or kills it after timeoutMs) and returns its exit code and output. */
function run(
  file: string,
  args: string[],
  o: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<Ran> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      { cwd: o.cwd, env: o.env ?? env(), timeout: o.timeoutMs, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        children.delete(child);
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout, stderr: stderr + (err && code === -1 ? `\n${err.message}` : '') });
      },
    );
    children.add(child);
  });
}

function sh(line: string, o: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Ran> {
  return run('sh', ['-c', line], { cwd: APP, timeoutMs: 60_000, ...o });
}

function ok(r: Ran, what: string): Ran {
  assert.equal(r.code, 0, `${what} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r;
}

interface Background {
  child: ChildProcess;
  lines: string[];
  waitFor(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
}

/** Starts a command that keeps running (a server, a worker); its output is kept line by line. */
function background(
  file: string,
  args: string[],
  extraEnv: Record<string, string> = {},
): Background {
  const child = spawn(file, args, {
    cwd: APP,
    env: env(extraEnv),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  children.add(child);
  child.on('exit', () => children.delete(child));
  const lines: string[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    let rest = '';
    stream.on('data', (b: Buffer) => {
      const parts = (rest + b.toString('utf8')).split('\n');
      rest = parts.pop() ?? '';
      lines.push(...parts);
    });
  }
  const bg: Background = {
    child,
    lines,
    waitFor: (re, timeoutMs = 30_000) =>
      until(
        `${file} ${args.join(' ')} to print ${re}; it printed:\n${lines.join('\n')}`,
        () => {
          if (child.exitCode !== null || child.signalCode !== null) {
            throw new Error(`${file} ${args.join(' ')} exited; it printed:\n${lines.join('\n')}`);
          }
          for (const l of lines) {
            const m = re.exec(l);
            if (m) return m;
          }
          return null;
        },
        timeoutMs,
      ),
  };
  return bg;
}

/** Kills every child still running, and waits until each process group is gone. */
async function stopAll(): Promise<void> {
  const pids = [...children].map((c) => c.pid!);
  for (const c of children) killGroup(c);
  await until('every process group to end', () => pids.every((p) => !groupAlive(p)), 10_000);
}

// ---- the README ----

interface Block {
  lang: string;
  body: string;
}

/** The fenced blocks of the README section `## <heading>`, in order. */
function readmeBlocks(heading: string): Block[] {
  const md = readFileSync(join(REPO, 'README.md'), 'utf8');
  const start = md.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `README has a section "## ${heading}"`);
  const end = md.indexOf('\n## ', start + 1);
  const text = md.slice(start, end < 0 ? undefined : end);
  return [...text.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({
    lang: m[1]!,
    body: m[2]!,
  }));
}

/** A shell line split into its command and its trailing `# comment`. */
function commandOf(line: string): { command: string; comment: string } {
  const m = /^(.*?)\s*(?:#\s*(.*))?$/.exec(line.trim())!;
  return { command: m[1]!, comment: m[2] ?? '' };
}

/** A `prints: ...` comment as a pattern for one output line: `…` stands for anything, the README's port for any port. */
function printsPattern(comment: string): RegExp | null {
  const m = /^prints: (.*)$/.exec(comment);
  if (!m) return null;
  const escaped = m[1]!
    .split('…')
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  return new RegExp(
    '^' + escaped.replace('http://127\\.0\\.0\\.1:7070', 'http://127\\.0\\.0\\.1:\\d+') + '$',
  );
}

// ---- engines ----

type Version = [number, number, number];

function parseVersion(s: string): Version {
  const [a = 0, b = 0, c = 0] = s
    .replace(/^v/, '')
    .split('.')
    .map((x) => (x === 'x' || x === '*' ? 0 : Number(x)));
  return [a, b, c];
}

function compare(a: Version, b: Version): number {
  return a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
}

/** Whether `v` satisfies an engines range of the forms packages use: `*`, `>=a`, `^a`, `a.x`, `<a`, joined by spaces and `||`. */
function satisfies(range: string, v: Version): boolean {
  return range.split('||').some((alt) =>
    alt
      .trim()
      .replace(/([<>=^~]+)\s+/g, '$1')
      .split(/\s+/)
      .every((c) => {
        if (c === '' || c === '*' || c === 'x') return true;
        const m = /^(>=|<=|>|<|\^|~|=)?v?(\d+(?:\.(?:\d+|x|\*))*)$/.exec(c);
        if (!m) throw new Error(`cannot read the engines range ${JSON.stringify(range)}`);
        const op = m[1] ?? '=';
        const w = parseVersion(m[2]!);
        const parts = m[2]!.split('.').filter((p) => p !== 'x' && p !== '*').length;
        const d = compare(v, w);
        if (op === '>=') return d >= 0;
        if (op === '>') return d > 0;
        if (op === '<=') return d <= 0;
        if (op === '<') return d < 0;
        if (op === '^') return d >= 0 && v[0] === w[0];
        if (op === '~') return d >= 0 && v[0] === w[0] && (parts < 2 || v[1] === w[1]);
        return v.slice(0, parts).every((x, i) => x === w[i]);
      }),
  );
}

/** Every package.json under node_modules, nested ones too. */
function installedPackages(dir: string): { name: string; version: string; engines?: object }[] {
  const out: { name: string; version: string; engines?: object }[] = [];
  const nm = join(dir, 'node_modules');
  if (!existsSync(nm)) return out;
  for (const entry of readdirSync(nm)) {
    if (entry.startsWith('.')) continue;
    const dirs = entry.startsWith('@')
      ? readdirSync(join(nm, entry)).map((e) => join(nm, entry, e))
      : [join(nm, entry)];
    for (const d of dirs) {
      const pj = join(d, 'package.json');
      if (!existsSync(pj)) continue;
      out.push(JSON.parse(readFileSync(pj, 'utf8')), ...installedPackages(d));
    }
  }
  return out;
}

// ---- better-sqlite3's binary, kept between runs ----

const PREBUILDS = join(process.env['npm_config_cache'] ?? join(homedir(), '.npm'), '_prebuilds');

function prebuildName(version: string): string {
  // prebuild-install's name for it (glibc Linux, macOS, Windows; musl would miss the cache and compile).
  return `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
}

async function keepPrebuild(): Promise<void> {
  const dir = join(APP, 'node_modules/better-sqlite3');
  const { version } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
    version: string;
  };
  const file = join(PREBUILDS, prebuildName(version));
  if (existsSync(file)) return;
  mkdirSync(PREBUILDS, { recursive: true });
  const part = `${file}.${process.pid}.tmp`;
  ok(
    await run('tar', ['-czf', part, 'build/Release/better_sqlite3.node'], {
      cwd: dir,
      timeoutMs: 30_000,
    }),
    'tar of better_sqlite3.node',
  );
  renameSync(part, file);
}

// ---- the user's files ----

const STRICT = {
  strict: true,
  skipLibCheck: false,
  module: 'nodenext',
  moduleResolution: 'nodenext',
  target: 'es2022',
  noEmit: true,
};

/** A handler module in TypeScript: types, an interface, and imports of regroup from the user's project. */
const HANDLERS_TS = `import { PermanentError } from 'regroup';
import type { TaskContext } from 'regroup/worker';

interface Pair {
  a: number;
  b: number;
}

export async function add(input: Pair, ctx: TaskContext): Promise<{ sum: number; attempt: number }> {
  return { sum: input.a + input.b, attempt: ctx.attempt };
}

export function refuse(input: string): never {
  throw new PermanentError(\`refused \${input}\`);
}
`;

/** Uses the client and the worker API the way a user's code would, strict. */
const CHECK_TS = `import { Client, PermanentError, type Outcome } from 'regroup';
import { Worker, loadHandlers, type Handler, type TaskContext } from 'regroup/worker';
import { add } from './handlers.js';

export async function squares(url: string): Promise<number[]> {
  const client = new Client({ url });
  try {
    const group = await client.submit<number>('square', [1, 2, 3]);
    const settled: Outcome<number>[] = await group.waitSettled();
    if (settled.some((o) => o.state !== 'succeeded')) throw new PermanentError('a square failed');
    return await group.wait();
  } finally {
    client.close();
  }
}

export const square: Handler = (x: number, ctx: TaskContext) => x * x + 0 * ctx.attempt;

export async function work(url: string): Promise<Worker> {
  const handlers = { square, add, ...(await loadHandlers('./handlers.ts')) };
  const worker = new Worker({ url, handlers, concurrency: 2 });
  await worker.start();
  return worker;
}

// The declarations are real types, not \`any\`: a URL is a string.
// @ts-expect-error: number is not assignable to string | string[]
export const wrong = new Client({ url: 42 });
`;

/**
 * Type-checks every `.ts` file of the project with the repository's tsc,
 * strict and skipLibCheck off. Incremental: a second check after the README
 * adds its main.ts does not check the libraries' declarations again.
 */
async function typecheck(): Promise<void> {
  const config = join(APP, 'tsconfig.json');
  const compilerOptions = { ...STRICT, incremental: true, tsBuildInfoFile: 'tsconfig.tsbuildinfo' };
  writeFileSync(config, JSON.stringify({ compilerOptions, include: ['*.ts'] }, null, 2));
  ok(
    await run(process.execPath, [TSC, '-p', config], { cwd: APP, timeoutMs: 120_000 }),
    `tsc -p ${config}`,
  );
}

// ---- the tests ----

interface Manifest {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  engines?: { node?: string };
}

after(async () => {
  await stopAll();
  tmp.cleanup();
});

describe('regroup installed from its tarball into a fresh project', { timeout: 900_000 }, () => {
  const five = readmeBlocks('Five minutes');
  let installed: Manifest;

  before(
    async () => {
      const packed = ok(
        await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp.dir], {
          cwd: REPO,
          timeoutMs: 60_000,
        }),
        'npm pack',
      );
      const [{ filename }] = JSON.parse(packed.stdout) as [{ filename: string }];
      const tarball = join(tmp.dir, filename);
      mkdirSync(APP);
      // The README's set-up, as written, but the tarball we just packed for its path.
      const setup = five.filter((b) => b.lang === 'sh')[0];
      assert.ok(setup, 'the README shows how to set up a project (a first sh block)');
      let installs = 0;
      for (const line of setup.body.split('\n')) {
        const { command } = commandOf(line);
        if (command === '') continue;
        const install = /^npm install \S+\.tgz$/.test(command);
        if (install) installs++;
        const started = Date.now();
        const r = await sh(
          install ? [`npm install ${tarball}`, ...INSTALL_FLAGS].join(' ') : command,
          {
            timeoutMs: 600_000,
            env: env({ npm_config_better_sqlite3_local_prebuilds: PREBUILDS }),
          },
        );
        ok(r, command);
        if (install) process.stdout.write(`# npm install took ${Date.now() - started} ms\n`);
      }
      assert.equal(installs, 1, 'the README installs the tarball once (npm install <path>.tgz)');
      await keepPrebuild();
      installed = JSON.parse(readFileSync(join(APP, 'node_modules/regroup/package.json'), 'utf8'));
    },
    { timeout: 660_000 },
  );

  it('has every dependency of regroup and none of its devDependencies', () => {
    const names = new Set(installedPackages(APP).map((p) => p.name));
    for (const dep of Object.keys(installed.dependencies)) {
      assert.ok(names.has(dep), `dependency ${dep} is installed`);
    }
    for (const dep of Object.keys(installed.devDependencies)) {
      if (dep in installed.dependencies) continue;
      assert.ok(!names.has(dep), `devDependency ${dep} is not installed`);
    }
  });

  it(
    "every installed package accepts the oldest Node.js regroup's engines allow",
    // fastify 5.12.8 takes light-my-request ^6, whose 6.8 pulls cookie 2 (node >=22): regroup
    // depends on light-my-request 6.6.0 itself, so that a user's install resolves to it.
    { timeout: 60_000 },
    () => {
      const range = installed.engines?.node ?? '';
      const m = /^>=\s*(\d+(?:\.\d+){0,2})$/.exec(range);
      assert.ok(m, `regroup's engines.node is a lower bound (got ${JSON.stringify(range)})`);
      const oldest = parseVersion(m[1]!);
      assert.ok(satisfies(range, parseVersion(process.version)), 'this Node.js is in range');
      const refusing = installedPackages(APP)
        .filter((p) => {
          const node = (p.engines as { node?: string } | undefined)?.node;
          return node !== undefined && !satisfies(node, oldest);
        })
        .map((p) => `${p.name}@${p.version} wants node ${(p.engines as { node: string }).node}`);
      assert.deepEqual(refusing, [], `with node ${m[1]} and engine-strict these refuse to install`);
    },
  );

  it('a strict TypeScript project (skipLibCheck off) compiles against the installed types', async () => {
    writeFileSync(join(APP, 'handlers.ts'), HANDLERS_TS);
    writeFileSync(join(APP, 'check.ts'), CHECK_TS);
    await typecheck();
  });

  it('the installed bin runs a coordinator and a worker whose handlers are a .ts module', async () => {
    writeFileSync(join(APP, 'handlers.ts'), HANDLERS_TS);
    const bin = join(APP, 'node_modules/.bin/regroup');
    const db = join(tmp.dir, 'bin.db');
    const server = background(bin, ['server', '--port', '0', '--db', db, '--log-level', 'warn']);
    const url = (await server.waitFor(/listening on (http:\/\/\S+)/))[1]!;
    const worker = background(bin, [
      'worker',
      '--url',
      url,
      '--handlers',
      './handlers.ts',
      '--log-level',
      'warn',
    ]);
    await worker.waitFor(/joined as w_\w+/, 60_000);

    const added = ok(
      await sh(`printf '{"a":1,"b":2}\\n{"a":40,"b":2}\\n' | ${bin} submit --handler add`, {
        env: env({ REGROUP_URL: url }),
      }),
      'submit add',
    );
    assert.deepEqual(
      added.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
      [
        { index: 0, state: 'succeeded', value: { sum: 3, attempt: 1 } },
        { index: 1, state: 'succeeded', value: { sum: 42, attempt: 1 } },
      ],
    );
    const refused = await sh(`echo '"no"' | ${bin} submit --handler refuse`, {
      env: env({ REGROUP_URL: url }),
    });
    assert.equal(refused.code, 1, refused.stderr);
    const outcome = JSON.parse(refused.stdout) as { state: string; error: Record<string, unknown> };
    assert.equal(outcome.state, 'failed');
    assert.deepEqual(
      [outcome.error['kind'], outcome.error['message'], outcome.error['name']],
      ['permanent', 'refused no', 'PermanentError'],
    );
    await stopAll();
  });

  it('CommonJS: require("regroup") from Node.js 20.19 on, as the README says; import() on any', async () => {
    const [major = 0, minor = 0] = parseVersion(process.version);
    const required = await run(
      process.execPath,
      ['--input-type=commonjs', '-e', "console.log(typeof require('regroup').Client)"],
      { cwd: APP, timeoutMs: 30_000 },
    );
    if (major > 20 || (major === 20 && minor >= 19)) {
      assert.equal(ok(required, 'require').stdout.trim(), 'function');
    } else {
      assert.match(required.stderr, /ERR_REQUIRE_ESM/);
    }
    const imported = await run(
      process.execPath,
      [
        '--input-type=commonjs',
        '-e',
        "import('regroup').then((m) => console.log(typeof m.Client))",
      ],
      { cwd: APP, timeoutMs: 30_000 },
    );
    assert.equal(ok(imported, 'import()').stdout.trim(), 'function');
  });

  it("the README's five minutes run as written (but on a free port)", async () => {
    const files = new Map<string, string>();
    for (const b of five) {
      const name = /^\/\/ ([\w.-]+\.[cm]?[jt]s)\b/.exec(b.body)?.[1];
      if (name !== undefined) files.set(name, b.body);
    }
    assert.deepEqual([...files.keys()], ['handlers.js', 'main.ts'], 'the files the README shows');
    const steps = five.filter((b) => b.lang === 'sh')[1];
    assert.ok(steps, 'the README says what to run (a second sh block)');

    let url = '';
    const write = (): void => {
      for (const [name, body] of files)
        writeFileSync(join(APP, name), body.replaceAll(README_PORT, url));
    };
    for (const line of steps.body.split('\n')) {
      const { command, comment } = commandOf(line);
      if (command === '') continue;
      const prints = printsPattern(comment);
      if (/^npx regroup server\b/.test(command)) {
        assert.ok(prints, `the README says what ${command} prints`);
        const server = background('sh', ['-c', `${command} --port 0`]);
        const line = (await server.waitFor(prints)).input!;
        url = /http:\/\/\S+/.exec(line)![0];
        write();
        continue;
      }
      assert.ok(url !== '', `${command}: the server runs first`);
      if (/^npx regroup worker\b/.test(command)) {
        const worker = background('sh', ['-c', command], { REGROUP_URL: url });
        await worker.waitFor(/joined as w_\w+/, 60_000);
        continue;
      }
      const r = ok(
        await sh(command, { env: env({ REGROUP_URL: url }), timeoutMs: 60_000 }),
        command,
      );
      const out = r.stdout.trimEnd().split('\n');
      if (prints)
        assert.ok(
          out.some((l) => prints.test(l)),
          `${command} prints ${prints}:\n${r.stdout}`,
        );
      // A program of the README: what its console.log lines say in their comments, it prints.
      const program = [...files.keys()].find((f) => command.endsWith(` ${f}`));
      if (program === undefined) continue;
      const logs = files
        .get(program)!
        .split('\n')
        .filter((l) => /^\s*console\.log\(/.test(l));
      assert.equal(
        out.length,
        logs.length,
        `${command} prints a line per console.log:\n${r.stdout}`,
      );
      logs.forEach((l, i) => {
        const said = /\/\/ (\[[^\]]*\]|\{[^}]*\})/.exec(l)?.[1];
        if (said !== undefined) assert.deepEqual(JSON.parse(out[i]!), JSON.parse(said), l);
      });
    }
    assert.ok(url !== '', 'the README starts a server');
    // The TypeScript of the README compiles as strictly as the user's.
    await typecheck();
    await stopAll();
  });
});

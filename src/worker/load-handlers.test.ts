import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RegroupError } from '../core/errors.js';
import { loadHandlers } from './load-handlers.js';

const fixture = (name: string) =>
  fileURLToPath(new URL(`../../test/fixtures/${name}`, import.meta.url));

void test('loads every exported function of a .js module', async () => {
  const h = await loadHandlers(fixture('handlers-basic.js'));
  assert.deepEqual(Object.keys(h).sort(), ['double', 'greet']);
  assert.equal(await h.double?.(21, undefined as never), 42);
  assert.equal(await h.greet?.({ name: 'ada' }, undefined as never), 'hello ada');
});

void test('loads a .ts module through tsx, with the functions of a default object', async () => {
  const h = await loadHandlers(fixture('handlers-typed.ts'));
  assert.deepEqual(Object.keys(h).sort(), ['shout', 'sum']);
  assert.equal(await h.sum?.({ a: 2, b: 3 }, undefined as never), 5);
  assert.equal(await h.shout?.('hey', undefined as never), 'HEY');
});

void test('a CommonJS module gives the functions of module.exports', async () => {
  const h = await loadHandlers(fixture('handlers-commonjs.cjs'));
  assert.deepEqual(Object.keys(h), ['triple']);
});

void test('a path relative to the working directory works', async () => {
  const h = await loadHandlers('test/fixtures/handlers-basic.js');
  assert.ok(h.double);
});

void test('a missing module or one without functions is a clear bad_request', async () => {
  await assert.rejects(loadHandlers('test/fixtures/no-such-module.js'), (e: unknown) => {
    assert.ok(e instanceof RegroupError);
    assert.equal(e.code, 'bad_request');
    assert.match(e.message, /not found.*no-such-module\.js/);
    return true;
  });
  await assert.rejects(loadHandlers(fixture('handlers-none.js')), (e: unknown) => {
    assert.ok(e instanceof RegroupError);
    assert.equal(e.code, 'bad_request');
    assert.match(e.message, /exports no function/);
    return true;
  });
});

void describe('a module that fails to load is named with the file, line and column', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'regroup-load-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  /** The message of loading `source` as `name`. */
  const failure = async (name: string, source: string): Promise<string> => {
    const file = join(tmp, name);
    writeFileSync(file, source);
    const e = await loadHandlers(file).then(
      () => assert.fail(`${name} loaded`),
      (x: unknown) => x,
    );
    assert.ok(e instanceof RegroupError);
    assert.equal(e.code, 'bad_request');
    assert.ok(e.message.startsWith(`handler module ${file} failed to load: `), e.message);
    return e.message.slice(`handler module ${file} failed to load: `.length);
  };
  const cases: [string, string, string][] = [
    // Node's ESM loader leaves the place out of the error: node --check finds it.
    [
      'esm.js',
      'export const a = 1;\nexport function b() {\n  return a +;\n}\n',
      ':3:13: SyntaxError: ',
    ],
    ['esm.mjs', 'export const a = 1;\n\nconst b = ;\n', ':3:11: SyntaxError: '],
    // The CommonJS loader puts it on the stack's first line.
    ['common.cjs', 'module.exports = {};\nconst b = ;\n', ':2:11: SyntaxError: '],
    // tsx (esbuild) names it in its message.
    [
      'typed.ts',
      'export const a: number = 1;\nexport const b: number = ;\n',
      ':2:26: Unexpected ";"',
    ],
    // Thrown while the module runs: its first frame.
    [
      'throws.mjs',
      'export function a() {}\nthrow new Error("no config");\n',
      ':2:7: Error: no config',
    ],
  ];
  for (const [name, source, place] of cases) {
    void it(name, async () => {
      const said = await failure(name, source);
      assert.ok(said.startsWith(`${join(tmp, name)}${place}`), said);
      assert.ok(!said.includes('\n'), 'one line');
    });
  }
  void it('a syntax error in a module it imports says so', async () => {
    writeFileSync(join(tmp, 'broken.mjs'), 'export const x = ;\n');
    const said = await failure(
      'imports.mjs',
      'import { x } from "./broken.mjs";\nexport const y = () => x;\n',
    );
    assert.match(said, /^SyntaxError: .*\(in a module it imports: `node --check <file>`/);
  });
});

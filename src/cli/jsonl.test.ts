import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { RegroupError } from '../core/errors.js';
import { parseJsonLines, readInputs } from './jsonl.js';

void describe('parseJsonLines', () => {
  void it('reads one JSON value per line, skipping blank lines and CRLF', () => {
    const text = '1\r\n"two"\n\n  {"x":[3]}  \nnull\ntrue\n';
    assert.deepEqual(parseJsonLines(text, 'in.jsonl'), [1, 'two', { x: [3] }, null, true]);
  });

  void it('returns no inputs for empty text', () => {
    assert.deepEqual(parseJsonLines('', 'stdin'), []);
    assert.deepEqual(parseJsonLines('\n \n', 'stdin'), []);
  });

  void it('names the source and line number of a bad line', () => {
    assert.throws(
      () => parseJsonLines('1\n2\n\n{"a":\n5\n', 'in.jsonl'),
      (e: unknown) =>
        e instanceof RegroupError &&
        e.code === 'invalid_json' &&
        /^in\.jsonl line 4 is not valid JSON .*: \{"a":$/.test(e.message),
    );
  });

  void it('drops __proto__ keys', () => {
    const [v] = parseJsonLines('{"__proto__":{"polluted":true},"a":1}', 'stdin') as [object];
    assert.deepEqual(Object.keys(v), ['a']);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
});

void describe('readInputs', () => {
  void it('reads a file, and names a missing one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'regroup-jsonl-'));
    try {
      const file = join(dir, 'in.jsonl');
      await writeFile(file, '1\n2\n');
      assert.deepEqual(await readInputs(file), [1, 2]);
      await assert.rejects(readInputs(join(dir, 'nope.jsonl')), /cannot read .*nope\.jsonl/);
    } finally {
      await rm(dir, { recursive: true });
    }
  });
});

/**
 * Why a handler module failed to load, as `file:line:column: Name: message`
 * (one line: the CLI prints errors on one line): what a person needs to fix it. Node's ESM loader leaves the place of a syntax
 * error out of the error (it prints it only for an uncaught one), so that
 * place is asked of `node --check`; tsx (esbuild) names it in its message;
 * the CommonJS loader puts it on the first line of the stack; an error
 * thrown while the module runs has it in its frames.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';

const CHECK_TIMEOUT_MS = 10_000;

function header(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  return e.message === '' ? e.name : `${e.name}: ${e.message}`;
}

/** A path from a stack's file reference (`file:///a/b.js` or `/a/b.js`). */
function pathOfRef(ref: string): string {
  if (!ref.startsWith('file://')) return ref;
  try {
    return fileURLToPath(ref);
  } catch {
    return ref;
  }
}

/** tsx's esbuild errors: `Transform failed with 1 error:\n/a/b.ts:5:9: ERROR: Expected "}" but found "1"`. */
function fromEsbuild(e: Error): string | null {
  const places = [...e.message.matchAll(/^(.+?):(\d+):(\d+): ERROR: (.*)$/gm)];
  if (places.length === 0) return null;
  const [first, ...more] = places.map(
    // esbuild counts columns from 0; editors and Node from 1.
    ([, file, line, col, text]) => `${pathOfRef(file ?? '')}:${line}:${Number(col) + 1}: ${text}`,
  );
  return more.length === 0 ? first! : `${first!} (and ${more.length} more errors)`;
}

/**
 * The CommonJS loader's (and newer Node's) decorated stack: `/a/b.cjs:5`, the
 * source line and a caret, then `SyntaxError: ...`.
 */
function fromDecoratedStack(e: Error): string | null {
  const lines = (e.stack ?? '').split('\n');
  const place = /^(file:\/\/\S+|\/\S+|[A-Za-z]:\\\S+):(\d+)$/.exec(lines[0] ?? '');
  if (place === null) return null;
  return `${pathOfRef(place[1] ?? '')}:${place[2]}${column(lines)}: ${header(e)}`;
}

/** `:9` from Node's source excerpt (the line, then a caret under the place); '' without one. */
function column(lines: readonly string[]): string {
  const caret = /^(\s*)\^/.exec(lines[2] ?? '');
  return caret === null ? '' : `:${(caret[1] ?? '').length + 1}`;
}

/** An error thrown while the module ran: its first frame outside Node itself, then the frames. */
function fromFrames(e: Error): string | null {
  // Node's own errors (ERR_MODULE_NOT_FOUND...) name what they are about; their frames are Node's.
  if (typeof (e as { code?: unknown }).code === 'string') return null;
  const all = (e.stack ?? '').split('\n').filter((l) => /^\s+at /.test(l));
  // The module's own frames: those before Node's loader ran it.
  const end = all.findIndex((l) => /\(?node:internal\//.test(l));
  const frames = end === -1 ? all : all.slice(0, end);
  for (const f of frames) {
    if (/\/node_modules\/(tsx|esbuild)\//.test(f)) continue;
    const m = /(?:\(|at )(file:\/\/[^\s)]+?|\/[^\s)]+?):(\d+):(\d+)\)?$/.exec(f);
    if (m === null) continue;
    return `${pathOfRef(m[1] ?? '')}:${m[2]}:${m[3]}: ${header(e)}`;
  }
  return null;
}

/**
 * A syntax error's place, from `node --check`: the module as ESM text on
 * stdin (`.cjs` and `.cts` as a file, CommonJS); null when the file itself
 * parses (the error is in a module it imports) or the check cannot run.
 */
function fromSyntaxCheck(e: Error, path: string): string | null {
  let r;
  try {
    const cjs = extname(path) === '.cjs';
    r = cjs
      ? spawnSync(process.execPath, ['--check', path], {
          encoding: 'utf8',
          timeout: CHECK_TIMEOUT_MS,
        })
      : spawnSync(process.execPath, ['--input-type=module', '--check'], {
          input: readFileSync(path),
          encoding: 'utf8',
          timeout: CHECK_TIMEOUT_MS,
        });
  } catch {
    return null;
  }
  if (r.status === 0 || typeof r.stderr !== 'string') return null;
  const lines = r.stderr.split('\n');
  const place = /^(?:\[stdin\]|.+):(\d+)$/.exec(lines[0] ?? '');
  if (place === null) return null;
  return `${path}:${place[1]}${column(lines)}: ${header(e)}`;
}

/** What went wrong and where, for `handler module <path> failed to load: <this>`. */
export function describeLoadError(e: unknown, path: string): string {
  if (!(e instanceof Error)) return header(e);
  const found =
    fromEsbuild(e) ??
    fromDecoratedStack(e) ??
    fromFrames(e) ??
    (e instanceof SyntaxError ? fromSyntaxCheck(e, path) : null);
  if (found !== null) return found;
  if (e instanceof SyntaxError) {
    return `${header(e)} (in a module it imports: \`node --check <file>\` on each shows where)`;
  }
  return header(e);
}

import { readFile } from 'node:fs/promises';
import { RegroupError } from '../core/errors.js';

/**
 * Parses JSON Lines: one JSON value per line; blank lines are skipped. A bad
 * line throws `invalid_json` naming the source and line number, so nothing is
 * submitted from a half-read file.
 */
export function parseJsonLines(text: string, source: string): unknown[] {
  const values: unknown[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? '').trim();
    if (line === '') continue;
    values.push(parseLine(line, source, i + 1));
  }
  return values;
}

function parseLine(line: string, source: string, lineNo: number): unknown {
  try {
    // `__proto__` keys are dropped so no later spread can turn them into prototype writes.
    return JSON.parse(line, (key, value: unknown) => (key === '__proto__' ? undefined : value));
  } catch (e) {
    const shown = line.length > 60 ? `${line.slice(0, 57)}...` : line;
    throw new RegroupError(
      'invalid_json',
      `${source} line ${lineNo} is not valid JSON (${(e as Error).message}): ${shown}`,
    );
  }
}

/** Reads the inputs of `submit` from a file, or from stdin when no file is given. */
export async function readInputs(
  file: string | undefined,
  stdin: NodeJS.ReadStream = process.stdin,
): Promise<unknown[]> {
  if (file !== undefined) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (e) {
      throw new RegroupError('bad_request', `cannot read ${file}: ${(e as Error).message}`);
    }
    return parseJsonLines(text, file);
  }
  if (stdin.isTTY) {
    throw new RegroupError('bad_request', 'no inputs: pass --file <path.jsonl> or pipe JSON Lines');
  }
  let text = '';
  stdin.setEncoding('utf8');
  for await (const chunk of stdin) text += String(chunk);
  return parseJsonLines(text, 'stdin');
}

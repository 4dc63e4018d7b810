import { stat } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { RegroupError } from '../core/errors.js';
import { describeLoadError } from './load-error.js';
import type { Handler } from './options.js';

const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts', '.tsx']);

/**
 * Loads a handler module: every exported function becomes a handler named
 * after its export. When the default export is an object (a CommonJS module,
 * or `export default { a, b }`), its functions count too; a named export wins
 * over a default-object member of the same name. A default-exported function
 * is the handler `default`. `.ts` modules load through tsx.
 */
export async function loadHandlers(modulePath: string): Promise<Record<string, Handler>> {
  const path = resolve(process.cwd(), modulePath);
  const info = await stat(path).catch(() => null);
  if (info === null || !info.isFile()) {
    throw new RegroupError(
      'bad_request',
      `handler module ${JSON.stringify(modulePath)} not found (looked for ${path}; a relative path is taken from ${process.cwd()})`,
    );
  }
  const mod = await importModule(path).catch((e: unknown) => {
    throw new RegroupError(
      'bad_request',
      `handler module ${path} failed to load: ${describeLoadError(e, path)}`,
      { cause: e },
    );
  });
  const handlers = handlersOf(mod);
  if (Object.keys(handlers).length === 0) {
    throw new RegroupError(
      'bad_request',
      `handler module ${path} exports no function; export each handler, e.g. \`export async function resize(input, ctx) { ... }\``,
    );
  }
  return handlers;
}

async function importModule(path: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(path).href;
  if (!TS_EXTENSIONS.has(extname(path))) return (await import(url)) as Record<string, unknown>;
  const { tsImport } = await import('tsx/esm/api');
  return (await tsImport(url, import.meta.url)) as Record<string, unknown>;
}

function handlersOf(mod: Record<string, unknown>): Record<string, Handler> {
  const handlers: Record<string, Handler> = {};
  const def = mod.default;
  if (typeof def === 'object' && def !== null) {
    for (const [name, v] of Object.entries(def)) {
      if (typeof v === 'function') handlers[name] = v as Handler;
    }
  }
  for (const [name, v] of Object.entries(mod)) {
    if (typeof v === 'function') handlers[name] = v as Handler;
  }
  return handlers;
}

#!/usr/bin/env node
// Writes docs/openapi.json and docs/api.md from the built OpenAPI module
// (dist/src/protocol/openapi.js): run `npm run build` first, or use
// `npm run docs:api`. With --check, writes nothing and exits 1 when the
// committed files differ from what it would write (test/openapi-docs.test.ts).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as prettier from 'prettier';

const root = fileURLToPath(new URL('..', import.meta.url));
const { openApiDocument } = await import(
  new URL('../dist/src/protocol/openapi.js', import.meta.url)
);
const { renderMarkdown } = await import(
  new URL('../dist/src/protocol/openapi-markdown.js', import.meta.url)
);

/** Formatted as `prettier --check .` wants it, so the two never fight. */
async function formatted(file, text) {
  const options = (await prettier.resolveConfig(root + file)) ?? {};
  return prettier.format(text, { ...options, filepath: root + file });
}

const doc = openApiDocument();
const files = {
  'docs/openapi.json': await formatted('docs/openapi.json', JSON.stringify(doc, null, 2) + '\n'),
  'docs/api.md': await formatted('docs/api.md', renderMarkdown(doc)),
};

const check = process.argv.includes('--check');
let stale = 0;
for (const [file, text] of Object.entries(files)) {
  if (check) {
    let old = null;
    try {
      old = readFileSync(root + file, 'utf8');
    } catch {
      // missing: stale
    }
    if (old !== text) {
      stale++;
      console.error(`${file} is not what the OpenAPI module makes`);
    }
  } else {
    writeFileSync(root + file, text);
    console.log(`wrote ${file}`);
  }
}
if (stale > 0) {
  console.error('regenerate: npm run build && node scripts/openapi-docs.mjs (or npm run docs:api)');
  process.exit(1);
}

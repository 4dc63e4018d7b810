/**
 * docs/openapi.json and docs/api.md are what scripts/openapi-docs.mjs makes
 * from this build's OpenAPI module, so the rendered reference cannot drift
 * from the routes and schemas.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('../../scripts/openapi-docs.mjs', import.meta.url));

describe('docs/api.md and docs/openapi.json', () => {
  it('are what the generator makes of the current routes and schemas', () => {
    const r = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8' });
    assert.equal(
      r.status,
      0,
      `${r.stderr}\nThe committed API docs are stale: run \`npm run build && node scripts/openapi-docs.mjs\` (or \`npm run docs:api\`) and commit docs/api.md and docs/openapi.json.`,
    );
  });
});

/**
 * Tokens for a coordinator that listens beyond loopback. Given ones come from
 * flags or the environment; otherwise they are generated once into a file
 * readable by its owner only (mode 0600), next to the database, and reused.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';

export interface TokenFile {
  clientToken: string;
  workerToken: string;
}

export function newToken(): string {
  return randomBytes(24).toString('base64url');
}

/** Reads the token file, or creates it with fresh tokens. Refuses a file others can read. */
export function loadOrCreateTokens(path: string): { tokens: TokenFile; created: boolean } {
  if (existsSync(path)) {
    const mode = statSync(path).mode & 0o777;
    if ((mode & 0o077) !== 0) {
      throw new Error(
        `token file ${path} has mode ${mode.toString(8)}: others can read it. Run "chmod 600 ${path}" and start again.`,
      );
    }
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<TokenFile>;
    if (typeof parsed.clientToken !== 'string' || typeof parsed.workerToken !== 'string') {
      throw new Error(
        `token file ${path} does not hold clientToken and workerToken; delete it to make new ones`,
      );
    }
    return {
      tokens: { clientToken: parsed.clientToken, workerToken: parsed.workerToken },
      created: false,
    };
  }
  const tokens = { clientToken: newToken(), workerToken: newToken() };
  // 'wx': fail if another process created it meanwhile; the mode is set at creation, never looser.
  const fd = openSync(path, 'wx', 0o600);
  try {
    writeSync(fd, JSON.stringify(tokens, null, 2) + '\n');
  } finally {
    closeSync(fd);
  }
  return { tokens, created: true };
}

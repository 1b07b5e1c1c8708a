// A token printed in the examples protects nothing: anyone can read it. memsync refuses to start
// with one, naming the variable and saying how to make a real one.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { isAppError } from '../../src/errors.js';
import { tempDir } from '../helpers/tmp.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const enabled = { CLOUD_SYNC_ENABLED: 'true', CLOUD_SYNC_BUCKET: 'my-memories' };

function configProblems(env: Record<string, string>): string | undefined {
  try {
    loadConfig(env);
    return undefined;
  } catch (error) {
    if (isAppError(error, 'config')) return error.message;
    throw error;
  }
}

/** Every file under deploy/, and the README: where an operator copies a token from. */
function documentationTexts(): { file: string; text: string }[] {
  const files: string[] = [path.join(ROOT, 'README.md')];
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      const full = path.join(dir, entry);
      if (statSync(full).isDirectory()) walk(full);
      else files.push(full);
    }
  };
  walk(path.join(ROOT, 'deploy'));
  return files.map((file) => ({ file: path.relative(ROOT, file), text: readFileSync(file, 'utf8') }));
}

/** Values written to be replaced: "REPLACE-with-...", "...-change-me" and their spellings. */
const PLACEHOLDER_LOOKING = /\b(?:replace[\w.-]*|[\w.-]*change[-_]?me[\w.-]*)/gi;

// The placeholders earlier versions of the examples shipped; copies of them live on.
const SHIPPED_PLACEHOLDERS = ['REPLACE-with-a-random-token-of-32-characters', 'local-only-memsync-api-token-change-me'];

describe('CLOUD_SYNC_API_TOKEN placeholders', () => {
  it.each([...SHIPPED_PLACEHOLDERS, 'replace-me-with-a-long-random-token', 'CHANGEME-0123456789abcdef', 'my-token-change_me-please'])('refuses %s, naming the variable and saying what to do', (token) => {
    const message = configProblems({ ...enabled, CLOUD_SYNC_HOST: '0.0.0.0', CLOUD_SYNC_API_TOKEN: token });
    expect(message).toBeDefined();
    expect(message).toMatch(/^ {2}CLOUD_SYNC_API_TOKEN=\(secret, \d+ characters\): .*placeholder.*openssl rand -hex 32/m);
    expect(message, 'the token itself is never shown').not.toContain(token);
  });

  it('refuses a placeholder read from CLOUD_SYNC_API_TOKEN_FILE, naming the file', async () => {
    const dir = await tempDir('placeholder-token');
    const file = path.join(dir, 'api-token');
    await writeFile(file, `${SHIPPED_PLACEHOLDERS[0] ?? ''}\n`);
    const message = configProblems({ ...enabled, CLOUD_SYNC_API_TOKEN_FILE: file });
    expect(message).toContain(`CLOUD_SYNC_API_TOKEN=(secret, 44 characters) (read from CLOUD_SYNC_API_TOKEN_FILE=${JSON.stringify(file)}): `);
    expect(message).toContain('placeholder');
  });

  it('refuses every placeholder-looking value the README and deploy/ contain, were it used as the token', () => {
    const found = documentationTexts().flatMap(({ file, text }) => [...text.matchAll(PLACEHOLDER_LOOKING)].map((m) => ({ file, value: m[0] })));
    for (const { file, value } of found.filter(({ value }) => value.length >= 16)) {
      expect(configProblems({ ...enabled, CLOUD_SYNC_API_TOKEN: value }), `${value} (from ${file})`).toMatch(/CLOUD_SYNC_API_TOKEN=.*placeholder/);
    }
  });

  it('accepts generated tokens, and words that only resemble a placeholder', () => {
    for (const token of [randomBytes(32).toString('hex'), randomBytes(32).toString('base64'), 'a-replacement-for-the-old-token', 'exchange-meters-0123456789']) {
      expect(configProblems({ ...enabled, CLOUD_SYNC_API_TOKEN: token }), token).toBeUndefined();
    }
  });
});

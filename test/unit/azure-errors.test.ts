// How Azure SDK failures reach an operator: the hint for a store that cannot be reached says what
// to check, since a command run by hand does not retry on its own.
import { RestError } from '@azure/storage-blob';
import { describe, expect, it } from 'vitest';
import { translateAzureError } from '../../src/remote/azure-errors.js';

describe('translateAzureError for an unreachable or overloaded store', () => {
  const cases: { name: string; error: unknown }[] = [
    { name: 'connection refused', error: new RestError('connect ECONNREFUSED 127.0.0.1:1', { code: 'ECONNREFUSED' }) },
    { name: 'connection reset', error: Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }) },
    { name: 'server busy (503)', error: new RestError('busy', { statusCode: 503, code: 'ServerBusy' }) },
    { name: 'a try that timed out', error: Object.assign(new Error('The operation was aborted.'), { name: 'AbortError' }) },
  ];
  for (const { name, error } of cases) {
    it(`${name}: remote_unavailable, with a hint naming what to check and no promise of retries`, () => {
      const translated = translateAzureError(error, 'list p/');
      expect(translated.kind).toBe('remote_unavailable');
      expect(translated.hint).toContain('CLOUD_SYNC_ENDPOINT');
      expect(translated.hint).toContain('network');
      expect(translated.hint).not.toMatch(/retries/);
    });
  }
});

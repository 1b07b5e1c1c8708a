import { loadConfig } from '../../src/config.js';
import { isAppError } from '../../src/errors.js';

/** The message of the configuration error `env` gives; fails the test when it gives none. */
export function configProblems(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (error) {
    if (isAppError(error, 'config')) return error.message;
    throw error;
  }
  throw new Error('expected a configuration error');
}

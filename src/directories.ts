import path from 'node:path';
import { mkdir } from 'node:fs/promises';
import { AppError, describeError } from './errors.js';

/** Creates a configured directory; failing (a file in the way, no permission), the error names the variable to fix. */
export async function makeConfiguredDirectory(dir: string, variable: string, mode?: number): Promise<void> {
  try {
    if (mode === undefined) await mkdir(dir, { recursive: true });
    else {
      // Only the directory itself gets `mode`: missing parents are made as mkdir -p makes them, so
      // another user (the memory service) can still reach its own directories beside it.
      await mkdir(path.dirname(dir), { recursive: true });
      await mkdir(dir, { mode }).catch((error: unknown) => {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      });
    }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? describeError(error);
    throw new AppError('config', `${variable}=${dir} cannot be used as a directory (${code})`, { hint: `point ${variable} at a directory memsync can create and write`, cause: error });
  }
}

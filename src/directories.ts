import { mkdir } from 'node:fs/promises';
import { AppError, describeError } from './errors.js';

/** Creates a configured directory; failing (a file in the way, no permission), the error names the variable to fix. */
export async function makeConfiguredDirectory(dir: string, variable: string, mode?: number): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, ...(mode === undefined ? {} : { mode }) });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? describeError(error);
    throw new AppError('config', `${variable}=${dir} cannot be used as a directory (${code})`, { hint: `point ${variable} at a directory memsync can create and write`, cause: error });
  }
}

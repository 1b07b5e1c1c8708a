// Vitest globalSetup of the reliability project (after the S3 fixture): a file scenarios report
// their figures to, and at the end of the run the table of them, failed scenarios included.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { formatFigures, readFigures } from '../helpers/reliability-figures.js';

declare module 'vitest' {
  export interface ProvidedContext {
    reliabilityFigures: string;
  }
}

export default function setup(project: TestProject): () => void {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'memsync-reliability-'));
  const file = path.join(dir, 'figures.jsonl');
  writeFileSync(file, '');
  project.provide('reliabilityFigures', file);
  return () => {
    const table = formatFigures(readFigures(file));
    console.log(`\n## memsync reliability figures\n\n${table}\n`);
    // A copy for CI artifacts and the README, when asked for.
    if (process.env.RELIABILITY_REPORT) writeFileSync(process.env.RELIABILITY_REPORT, `${table}\n`);
    rmSync(dir, { recursive: true, force: true });
  };
}

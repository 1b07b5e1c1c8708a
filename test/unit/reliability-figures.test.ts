// The reliability table's accounting: a scenario that could not run here is reported as skipped,
// in its row, in the totals and to vitest, and never counted as passed.
import { describe, expect, it } from 'vitest';
import { formatFigures, runScenarioWith, type ScenarioLine } from '../helpers/reliability-figures.js';

async function recorded(body: Parameters<typeof runScenarioWith>[2]): Promise<{ lines: ScenarioLine[]; skippedWith: string | undefined; error: unknown }> {
  const lines: ScenarioLine[] = [];
  let skippedWith: string | undefined;
  const error = await runScenarioWith(
    {
      append: (line) => lines.push(line),
      skipTest: (reason) => {
        skippedWith = reason;
      },
    },
    'scenario',
    body,
  ).then(
    () => undefined,
    (caught: unknown) => caught,
  );
  return { lines, skippedWith, error };
}

const jsonl = (lines: ScenarioLine[]): string => lines.map((line) => JSON.stringify(line)).join('\n');

describe('reliability figures', () => {
  it('a scenario that skips is recorded as skipped and handed to the test runner as a skip', async () => {
    const { lines, skippedWith, error } = await recorded(async (figures) => figures.skip('no tmpfs here'));
    expect(error).toBeUndefined();
    expect(skippedWith).toBe('no tmpfs here');
    expect(lines.at(-1)).toMatchObject({ event: 'finished', result: 'skipped' });
  });

  it('a scenario that runs to its end passes and is not skipped', async () => {
    const { lines, skippedWith } = await recorded(async (figures) => figures.add('snapshotsWritten', 3));
    expect(skippedWith).toBeUndefined();
    expect(lines.at(-1)).toMatchObject({ event: 'finished', result: 'passed', figures: { snapshotsWritten: 3 } });
  });

  it('the table counts passed, skipped and failed apart, and a skip never makes the totals read "passed"', () => {
    const at = 1_000;
    const finished = (scenario: string, result: 'passed' | 'skipped' | 'failed'): ScenarioLine[] => [
      { scenario, event: 'started', atMs: at },
      { scenario, event: 'finished', atMs: at + 2000, result, figures: { snapshotsWritten: 1, verifiedRemote: 1, lost: 0, corrupted: 0, partialAsComplete: 0, orphanedMultipart: 0, restartsSurvived: 0 }, notes: result === 'skipped' ? ['skipped: no tmpfs'] : [] },
    ];
    const table = formatFigures(jsonl([...finished('a', 'passed'), ...finished('b', 'skipped')]), at + 5000);
    expect(table).toMatch(/^\| b \| skipped \|/m);
    expect(table).toMatch(/^\| \*\*all \(1 run of 2\)\*\* \| 1 passed, 1 skipped \|/m);
    expect(table).toContain('Scenarios run: 1 (of 2 started), 1 passed, 1 skipped, 0 failed');

    const allPassed = formatFigures(jsonl(finished('a', 'passed')), at + 5000);
    expect(allPassed).toMatch(/^\| \*\*all \(1 run of 1\)\*\* \| passed \|/m);

    const withFailure = formatFigures(jsonl([...finished('a', 'failed'), ...finished('b', 'skipped')]), at + 5000);
    expect(withFailure).toMatch(/^\| \*\*all \(1 run of 2\)\*\* \| FAILED: 1 failed, 1 skipped \|/m);
  });
});

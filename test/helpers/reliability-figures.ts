// The reliability suite's figures: each scenario reports what it wrote, verified, lost... to a
// JSON-lines file the project's globalSetup created, and the teardown prints one table from it.
// A file, not memory: scenarios run in a worker, the teardown in the main process, and a
// scenario that fails or times out must still show (its "started" line has no "finished" one).
/// <reference path="../reliability/figures-setup.ts" />
import { appendFileSync, readFileSync } from 'node:fs';
import { inject } from 'vitest';
import { getCurrentTest } from 'vitest/suite';

export const FIGURE_NAMES = [
  'snapshotsWritten',
  'verifiedRemote',
  'lost',
  'corrupted',
  'partialAsComplete',
  'orphanedMultipart',
  'restartsSurvived',
] as const;
export type FigureName = (typeof FIGURE_NAMES)[number];
export type Figures = Record<FigureName, number>;

const HEADINGS: Record<FigureName, string> = {
  snapshotsWritten: 'written',
  verifiedRemote: 'verified remote',
  lost: 'lost',
  corrupted: 'corrupted',
  partialAsComplete: 'partial listed complete',
  orphanedMultipart: 'orphaned multipart',
  restartsSurvived: 'restarts survived',
};

export type ScenarioLine =
  | { scenario: string; event: 'started'; atMs: number }
  | { scenario: string; event: 'finished'; atMs: number; result: 'passed' | 'failed' | 'skipped'; figures: Figures; notes: string[]; error?: string };

/** What a scenario reports to while it runs. */
export class ScenarioFigures {
  readonly figures: Figures = Object.fromEntries(FIGURE_NAMES.map((name) => [name, 0])) as Figures;
  readonly notes: string[] = [];
  skipped: string | undefined;

  add(name: FigureName, count = 1): void {
    this.figures[name] += count;
  }

  note(text: string): void {
    this.notes.push(text);
  }

  /** The scenario cannot run here (a permission, a tool): shown as skipped, with the reason. */
  skip(reason: string): void {
    this.skipped = reason;
    console.warn(`[reliability] skipped: ${reason}`);
  }
}

function figuresPath(): string {
  const file = inject('reliabilityFigures');
  if (!file) throw new Error('no figures file provided: add test/reliability/figures-setup.ts to this project\'s globalSetup');
  return file;
}

function appendToFiguresFile(line: ScenarioLine): void {
  appendFileSync(figuresPath(), `${JSON.stringify(line)}\n`);
}

/** The running test is marked skipped with the reason (vitest's own skip), so no runner counts it as passed. */
function skipRunningTest(reason: string): void {
  const test = getCurrentTest();
  if (test === undefined) throw new Error(`a reliability scenario skipped outside a test: ${reason}`);
  test.context.skip(reason);
}

export interface ScenarioRecording {
  append: (line: ScenarioLine) => void;
  /** Called once the skipped scenario's line is written; may throw (vitest's skip does). */
  skipTest: (reason: string) => void;
}

/** Runs one scenario and reports its figures, whatever happens to it; a skipped one is skipped for vitest too. */
export function runScenario(scenario: string, body: (figures: ScenarioFigures) => Promise<void>): Promise<void> {
  return runScenarioWith({ append: appendToFiguresFile, skipTest: skipRunningTest }, scenario, body);
}

export async function runScenarioWith({ append, skipTest }: ScenarioRecording, scenario: string, body: (figures: ScenarioFigures) => Promise<void>): Promise<void> {
  const figures = new ScenarioFigures();
  append({ scenario, event: 'started', atMs: Date.now() });
  let error: unknown;
  try {
    await body(figures);
  } catch (caught) {
    error = caught;
    throw caught;
  } finally {
    const result = error !== undefined ? 'failed' : figures.skipped !== undefined ? 'skipped' : 'passed';
    const notes = figures.skipped !== undefined ? [`skipped: ${figures.skipped}`, ...figures.notes] : figures.notes;
    append({
      scenario,
      event: 'finished',
      atMs: Date.now(),
      result,
      figures: figures.figures,
      notes,
      ...(error === undefined ? {} : { error: String(error instanceof Error ? error.message : error).split('\n')[0]?.slice(0, 200) }),
    });
  }
  if (figures.skipped !== undefined) skipTest(figures.skipped);
}

interface Row {
  scenario: string;
  result: string;
  seconds: number;
  figures: Figures;
  notes: string[];
}

function rowsOf(text: string, nowMs: number): Row[] {
  const rows = new Map<string, Row & { startedMs: number }>();
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    const line = JSON.parse(raw) as ScenarioLine;
    if (line.event === 'started') {
      rows.set(line.scenario, { scenario: line.scenario, result: 'did not finish', seconds: (nowMs - line.atMs) / 1000, figures: Object.fromEntries(FIGURE_NAMES.map((n) => [n, 0])) as Figures, notes: [], startedMs: line.atMs });
      continue;
    }
    const row = rows.get(line.scenario);
    if (row === undefined) continue;
    row.result = line.result === 'failed' ? `FAILED: ${line.error ?? ''}` : line.result;
    row.seconds = (line.atMs - row.startedMs) / 1000;
    row.figures = line.figures;
    row.notes = line.notes;
  }
  return [...rows.values()];
}

/** How many scenarios ended which way; "did not finish" counts as failed. */
function tally(rows: readonly Row[]): { passed: number; skipped: number; failed: number } {
  const passed = rows.filter((row) => row.result === 'passed').length;
  const skipped = rows.filter((row) => row.result === 'skipped').length;
  return { passed, skipped, failed: rows.length - passed - skipped };
}

/** The totals' verdict: "passed" only when every scenario ran and passed; skips are counted, never folded in. */
function verdict({ passed, skipped, failed }: ReturnType<typeof tally>): string {
  if (failed > 0) return `FAILED: ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ''}`;
  return skipped > 0 ? `${passed} passed, ${skipped} skipped` : 'passed';
}

/** The table (Markdown) of every scenario's figures, with totals and notes below. */
export function formatFigures(text: string, nowMs = Date.now()): string {
  const rows = rowsOf(text, nowMs);
  const total = Object.fromEntries(FIGURE_NAMES.map((n) => [n, rows.reduce((sum, row) => sum + row.figures[n], 0)])) as Figures;
  const counts = tally(rows);
  const run = rows.length - counts.skipped;
  const header = ['scenario', 'result', 's', ...FIGURE_NAMES.map((n) => HEADINGS[n])];
  const lines = [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`,
    ...rows.map((row) => `| ${[row.scenario, row.result.replace(/\|/g, '/'), row.seconds.toFixed(0), ...FIGURE_NAMES.map((n) => String(row.figures[n]))].join(' | ')} |`),
    `| **all (${run} run of ${rows.length})** | ${verdict(counts)} | ${rows.reduce((s, r) => s + r.seconds, 0).toFixed(0)} | ${FIGURE_NAMES.map((n) => `**${total[n]}**`).join(' | ')} |`,
  ];
  const notes = rows.flatMap((row) => row.notes.map((note) => `- ${row.scenario}: ${note}`));
  const summary = `Scenarios run: ${run} (of ${rows.length} started), ${counts.passed} passed, ${counts.skipped} skipped, ${counts.failed} failed`;
  return [summary, '', ...lines, ...(notes.length > 0 ? ['', ...notes] : [])].join('\n');
}

export function readFigures(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

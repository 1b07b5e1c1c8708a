// The reliability suite's figures: each scenario reports what it wrote, verified, lost... to a
// JSON-lines file the project's globalSetup created, and the teardown prints one table from it.
// A file, not memory: scenarios run in a worker, the teardown in the main process, and a
// scenario that fails or times out must still show (its "started" line has no "finished" one).
/// <reference path="../reliability/figures-setup.ts" />
import { appendFileSync, readFileSync } from 'node:fs';
import { inject } from 'vitest';

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

type Line =
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

function append(line: Line): void {
  appendFileSync(figuresPath(), `${JSON.stringify(line)}\n`);
}

/** Runs one scenario and reports its figures, whatever happens to it. */
export async function runScenario(scenario: string, body: (figures: ScenarioFigures) => Promise<void>): Promise<void> {
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
    const line = JSON.parse(raw) as Line;
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

/** The table (Markdown) of every scenario's figures, with totals and notes below. */
export function formatFigures(text: string, nowMs = Date.now()): string {
  const rows = rowsOf(text, nowMs);
  const total = Object.fromEntries(FIGURE_NAMES.map((n) => [n, rows.reduce((sum, row) => sum + row.figures[n], 0)])) as Figures;
  const run = rows.filter((row) => row.result !== 'skipped').length;
  const header = ['scenario', 'result', 's', ...FIGURE_NAMES.map((n) => HEADINGS[n])];
  const lines = [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`,
    ...rows.map((row) => `| ${[row.scenario, row.result.replace(/\|/g, '/'), row.seconds.toFixed(0), ...FIGURE_NAMES.map((n) => String(row.figures[n]))].join(' | ')} |`),
    `| **all (${run} run of ${rows.length})** | ${rows.every((r) => r.result === 'passed' || r.result === 'skipped') ? 'passed' : 'FAILED'} | ${rows.reduce((s, r) => s + r.seconds, 0).toFixed(0)} | ${FIGURE_NAMES.map((n) => `**${total[n]}**`).join(' | ')} |`,
  ];
  const notes = rows.flatMap((row) => row.notes.map((note) => `- ${row.scenario}: ${note}`));
  return [`Scenarios run: ${run} (of ${rows.length} started)`, '', ...lines, ...(notes.length > 0 ? ['', ...notes] : [])].join('\n');
}

export function readFigures(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

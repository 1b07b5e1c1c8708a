// The memory limit the examples give memsync, tied to what BENCHMARKS.md measured: a limit below
// a measured peak gets the container OOM-killed in the middle of an upload. A new measurement
// above the limit (less headroom) fails here until the examples are raised with it.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BENCHMARKS_FILE = path.join(ROOT, 'BENCHMARKS.md');
const K8S_FILE = path.join(ROOT, 'deploy', 'kubernetes', 'memsync-sidecar.yaml');
const COMPOSE_FILE = path.join(ROOT, 'deploy', 'docker-compose.yml');

/**
 * Above the largest peak measured: V8 collects later under less pressure on another machine,
 * the measured runs are a few, and a `memsync` command exec'd into the container counts
 * against the same limit.
 */
const HEADROOM = 0.25;

const MIB = 1024 * 1024;
const BINARY_UNITS: Record<string, number> = { b: 1, kib: 1024, mib: MIB, gib: 1024 * MIB, kb: 1000, mb: 1000 ** 2, gb: 1000 ** 3 };

/** "440 MiB", "98.8 MiB", "1.2 GiB" as bytes; undefined for any other cell. */
function tableSizeBytes(cell: string): number | undefined {
  const match = /^\**\s*(\d+(?:\.\d+)?)\s*(KiB|MiB|GiB|kB|KB|MB|GB)\b/.exec(cell.trim());
  if (match === null) return undefined;
  return Number(match[1]) * (BINARY_UNITS[(match[2] as string).toLowerCase()] as number);
}

interface PeakRss {
  row: string;
  bytes: number;
}

/** Every peak RSS BENCHMARKS.md records for memsync, from each table with "tool" and "peak RSS" columns. */
function memsyncPeaks(markdown: string): PeakRss[] {
  const peaks: PeakRss[] = [];
  let columns: { tool: number; peak: number } | undefined;
  for (const line of markdown.split('\n')) {
    if (!line.startsWith('|')) {
      columns = undefined;
      continue;
    }
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    if (columns === undefined) {
      const tool = cells.indexOf('tool');
      const peak = cells.findIndex((c) => c.startsWith('peak RSS'));
      columns = tool >= 0 && peak >= 0 ? { tool, peak } : { tool: -1, peak: -1 };
      continue;
    }
    if (columns.tool < 0 || !(cells[columns.tool] ?? '').startsWith('memsync')) continue;
    const bytes = tableSizeBytes(cells[columns.peak] ?? '');
    if (bytes !== undefined) peaks.push({ row: `${cells[0] ?? ''} / ${cells[columns.tool] ?? ''}`, bytes });
  }
  return peaks;
}

/** A Kubernetes quantity ("640Mi", "1Gi", "600M", "671088640") in bytes. */
function kubernetesBytes(quantity: string): number {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|k|M|G)?$/.exec(quantity);
  expect(match, `Kubernetes quantity ${quantity}`).not.toBeNull();
  const units: Record<string, number> = { '': 1, Ki: 1024, Mi: MIB, Gi: 1024 * MIB, k: 1000, M: 1000 ** 2, G: 1000 ** 3 };
  return Number(match?.[1]) * (units[match?.[2] ?? ''] as number);
}

/** A Docker/compose byte value ("640m", "640M", "1g", "640mb"): Docker's units are binary. */
function dockerBytes(value: string | number): number {
  if (typeof value === 'number') return value;
  const match = /^(\d+(?:\.\d+)?)\s*([bkmg]?)b?$/i.exec(value.trim());
  expect(match, `compose byte value ${value}`).not.toBeNull();
  const units: Record<string, number> = { '': 1, b: 1, k: 1024, m: MIB, g: 1024 * MIB };
  return Number(match?.[1]) * (units[(match?.[2] ?? '').toLowerCase()] as number);
}

interface K8sContainer {
  name: string;
  resources?: { requests?: { memory?: string }; limits?: { memory?: string } };
}
interface ComposeService {
  mem_limit?: string | number;
  deploy?: { resources?: { limits?: { memory?: string | number } } };
}

function k8sMemsync(): K8sContainer {
  const objects = parseAllDocuments(readFileSync(K8S_FILE, 'utf8')).map((doc) => doc.toJS() as { kind: string; spec?: { template?: { spec: { containers?: K8sContainer[]; initContainers?: K8sContainer[] } } } });
  const pod = objects.find((o) => o.kind === 'Deployment')?.spec?.template?.spec;
  const found = [...(pod?.containers ?? []), ...(pod?.initContainers ?? [])].find((c) => c.name === 'memsync');
  expect(found, 'the memsync container').toBeDefined();
  return found as K8sContainer;
}

const peaks = memsyncPeaks(readFileSync(BENCHMARKS_FILE, 'utf8'));
const largest = peaks.reduce<PeakRss>((max, p) => (p.bytes > max.bytes ? p : max), { row: '(none)', bytes: 0 });
const needed = largest.bytes * (1 + HEADROOM);
const mib = (bytes: number): string => `${(bytes / MIB).toFixed(0)} MiB`;

describe('memsync\'s memory limit in the deployment examples', () => {
  it('reads the peak RSS figures BENCHMARKS.md records for memsync', () => {
    // Several tables, several cases: a parser that found one row would be reading the wrong column.
    expect(peaks.length, 'memsync rows with a peak RSS').toBeGreaterThanOrEqual(5);
    expect(largest.bytes).toBeGreaterThan(50 * MIB);
  });

  it(`Kubernetes: the limit is at least the largest measured peak plus ${HEADROOM * 100}%, and the request below it`, () => {
    const resources = k8sMemsync().resources;
    expect(resources?.limits?.memory, 'memsync has a memory limit').toBeDefined();
    const limit = kubernetesBytes(resources?.limits?.memory as string);
    expect(limit, `limit ${resources?.limits?.memory} against ${mib(largest.bytes)} (${largest.row}) + ${HEADROOM * 100}% = ${mib(needed)}`).toBeGreaterThanOrEqual(needed);
    expect(kubernetesBytes(resources?.requests?.memory ?? '0')).toBeLessThanOrEqual(limit);
  });

  it(`docker compose: the limit is at least the largest measured peak plus ${HEADROOM * 100}%`, () => {
    const memsync = (parse(readFileSync(COMPOSE_FILE, 'utf8')) as { services: Record<string, ComposeService> }).services.memsync;
    const value = memsync?.deploy?.resources?.limits?.memory ?? memsync?.mem_limit;
    expect(value, 'memsync has a memory limit').toBeDefined();
    expect(dockerBytes(value as string | number), `limit ${String(value)} against ${mib(largest.bytes)} (${largest.row}) + ${HEADROOM * 100}% = ${mib(needed)}`).toBeGreaterThanOrEqual(needed);
  });
});

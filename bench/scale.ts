// Sizes of a bench run. `full` is the one the goals are stated for; `small` is for developing the bench.
const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

export interface Scale {
  name: 'full' | 'small';
  reps: number;
  large: { indexBytes: number; metadataBytes: number };
  /** Index sizes for the "memory does not grow with file size" runs (memsync only). */
  rssSizes: [number, number];
  latencyDrops: number;
  burstSnapshots: number;
  sweepSnapshots: number;
  idle: { snapshots: number; seconds: number };
}

export const SCALES: Record<Scale['name'], Scale> = {
  full: {
    name: 'full',
    reps: 3,
    large: { indexBytes: 1 * GIB, metadataBytes: 200 * 1000 * 1000 },
    rssSizes: [256 * MIB, 2 * GIB],
    latencyDrops: 20,
    burstSnapshots: 1000,
    sweepSnapshots: 10_000,
    idle: { snapshots: 100, seconds: 60 },
  },
  small: {
    name: 'small',
    reps: 3,
    large: { indexBytes: 64 * MIB, metadataBytes: 12_500_000 },
    rssSizes: [16 * MIB, 128 * MIB],
    latencyDrops: 20,
    burstSnapshots: 100,
    sweepSnapshots: 100,
    idle: { snapshots: 100, seconds: 15 },
  },
};

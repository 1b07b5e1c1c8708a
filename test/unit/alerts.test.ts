import { describe, expect, it } from 'vitest';
import { Heartbeat } from '../../src/alerts/heartbeat.js';
import type { Fetch } from '../../src/alerts/http.js';
import { buildPayload, WebhookNotifier } from '../../src/alerts/notifier.js';
import { admit, type RateSlot } from '../../src/alerts/rate-limit.js';
import type { Logger } from '../../src/log.js';

const FIVE_MINUTES = 300_000;
const NO_WAIT = { attempts: 3, baseDelayMs: 1, maxDelayMs: 2 };

describe('admit (rate limit)', () => {
  it.each<[string, RateSlot | undefined, number, { send: boolean; suppressed?: number; slot: RateSlot }]>([
    ['first message goes', undefined, 1000, { send: true, suppressed: 0, slot: { lastSentMs: 1000, suppressed: 0 } }],
    ['within the interval is held back and counted', { lastSentMs: 1000, suppressed: 0 }, 1000 + FIVE_MINUTES - 1, { send: false, slot: { lastSentMs: 1000, suppressed: 1 } }],
    ['held back again adds up', { lastSentMs: 1000, suppressed: 4 }, 2000, { send: false, slot: { lastSentMs: 1000, suppressed: 5 } }],
    ['exactly at the interval goes, carrying the count', { lastSentMs: 1000, suppressed: 5 }, 1000 + FIVE_MINUTES, { send: true, suppressed: 5, slot: { lastSentMs: 1000 + FIVE_MINUTES, suppressed: 0 } }],
    ['a clock stepping back does not silence', { lastSentMs: 10_000, suppressed: 2 }, 5000, { send: true, suppressed: 2, slot: { lastSentMs: 5000, suppressed: 0 } }],
  ])('%s', (_title, slot, nowMs, expected) => {
    expect(admit(slot, nowMs, FIVE_MINUTES)).toEqual(expected);
  });
});

describe('buildPayload', () => {
  it('carries the generic fields, the details, and text/content for chat receivers', () => {
    const payload = buildPayload(
      { event: 'conflict', snapshot: 'auto_20250101_000000', message: 'different content', details: { localSha256: 'aa' } },
      { atMs: Date.UTC(2025, 0, 1), host: 'box', suppressed: 2 },
    );
    expect(payload).toEqual({
      event: 'conflict',
      snapshot: 'auto_20250101_000000',
      message: 'different content',
      at: '2025-01-01T00:00:00.000Z',
      host: 'box',
      suppressed: 2,
      localSha256: 'aa',
      text: 'memsync on box: conflict auto_20250101_000000: different content (+2 more conflict held back by the rate limit)',
      content: 'memsync on box: conflict auto_20250101_000000: different content (+2 more conflict held back by the rate limit)',
    });
  });

  it('details cannot overwrite the generic fields; Discord content is cut to 2,000 characters', () => {
    const payload = buildPayload({ event: 'upload_failed', snapshot: undefined, message: 'x'.repeat(3000), details: { event: 'forged', host: 'forged' } }, { atMs: 0, host: 'box', suppressed: 0 });
    expect(payload).toMatchObject({ event: 'upload_failed', host: 'box', snapshot: null });
    expect(payload.content).toHaveLength(2000);
    expect(payload.text.length).toBeGreaterThan(3000);
  });
});

interface Recorder extends Logger {
  lines: { level: string; message: string; fields: Record<string, unknown> | undefined }[];
}

function recordingLogger(): Recorder {
  const lines: Recorder['lines'] = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => void lines.push({ level, message, fields });
  const logger: Recorder = { lines, error: at('error'), warn: at('warn'), info: at('info'), debug: at('debug'), child: () => logger };
  return logger;
}

/** A fetch that answers from a list of statuses (or throws for 'network'), recording bodies. */
function fakeFetch(answers: (number | 'network')[]): { fetch: Fetch; bodies: unknown[]; calls: () => number } {
  const bodies: unknown[] = [];
  let calls = 0;
  const fetch: Fetch = async (_url, init) => {
    const answer = answers[Math.min(calls, answers.length - 1)] ?? 200;
    calls += 1;
    if (answer === 'network') throw new TypeError('fetch failed');
    bodies.push(JSON.parse(String(init?.body)));
    return new Response(null, { status: answer });
  };
  return { fetch, bodies, calls: () => calls };
}

async function drain(notifier: WebhookNotifier): Promise<void> {
  await notifier.stop(5000);
}

describe('WebhookNotifier', () => {
  it('sends at most one alert per type per interval and reports the held-back count with the next', async () => {
    let now = Date.UTC(2025, 0, 1);
    const { fetch, bodies } = fakeFetch([200]);
    const notifier = new WebhookNotifier({ url: 'http://127.0.0.1:1/hook', log: recordingLogger(), now: () => now, host: 'box', retry: NO_WAIT, fetch });
    notifier.notify({ event: 'conflict', snapshot: 'a', message: 'm' });
    notifier.notify({ event: 'conflict', snapshot: 'b', message: 'm' });
    notifier.notify({ event: 'conflict', snapshot: 'c', message: 'm' });
    // Another type has its own budget.
    notifier.notify({ event: 'upload_failed', snapshot: 'd', message: 'm' });
    now += FIVE_MINUTES;
    notifier.notify({ event: 'conflict', snapshot: 'e', message: 'm' });
    await drain(notifier);
    expect(bodies).toEqual([
      expect.objectContaining({ event: 'conflict', snapshot: 'a', suppressed: 0 }),
      expect.objectContaining({ event: 'upload_failed', snapshot: 'd', suppressed: 0 }),
      expect.objectContaining({ event: 'conflict', snapshot: 'e', suppressed: 2 }),
    ]);
  });

  it('retries 5xx and network errors, not 4xx', async () => {
    const flaky = fakeFetch(['network', 503, 200]);
    const notifier = new WebhookNotifier({ url: 'http://127.0.0.1:1/hook', log: recordingLogger(), retry: NO_WAIT, fetch: flaky.fetch });
    notifier.notify({ event: 'restore', snapshot: 'a', message: 'm' });
    await drain(notifier);
    expect(flaky.calls()).toBe(3);
    expect(flaky.bodies).toHaveLength(2);

    const refused = fakeFetch([404]);
    const log = recordingLogger();
    const other = new WebhookNotifier({ url: 'http://127.0.0.1:1/hook', log, retry: NO_WAIT, fetch: refused.fetch });
    other.notify({ event: 'restore', snapshot: 'a', message: 'm' });
    await drain(other);
    expect(refused.calls()).toBe(1);
    expect(log.lines.filter((l) => l.level === 'warn').map((l) => l.fields?.error)).toEqual([expect.stringContaining('HTTP 404')]);
  });

  it('a dead webhook warns once per interval, never with the URL, and never throws', async () => {
    const dead = fakeFetch(['network']);
    const log = recordingLogger();
    const notifier = new WebhookNotifier({ url: 'https://hooks.example.com/services/SECRET', log, retry: NO_WAIT, fetch: dead.fetch });
    for (const event of ['conflict', 'upload_failed', 'restore', 'recovered'] as const) notifier.notify({ event, snapshot: 's', message: 'm' });
    await drain(notifier);
    expect(dead.calls()).toBe(12);
    expect(log.lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    expect(JSON.stringify(log.lines)).not.toContain('SECRET');
  });

  it('gives up on a webhook that never answers after the timeout', async () => {
    const hanging: Fetch = (_url, init) =>
      new Promise((_resolve, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal?.reason as Error)));
    const log = recordingLogger();
    const notifier = new WebhookNotifier({ url: 'http://127.0.0.1:1/hook', log, retry: { attempts: 2, baseDelayMs: 1, maxDelayMs: 1 }, timeoutMs: 50, fetch: hanging });
    const started = Date.now();
    notifier.notify({ event: 'conflict', snapshot: 'a', message: 'm' });
    await drain(notifier);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(log.lines.find((l) => l.level === 'warn')?.message).toMatch(/cannot send alert/);
  });
});

describe('Heartbeat', () => {
  it('GETs the URL once per ping and swallows failures', async () => {
    const methods: string[] = [];
    const fetch: Fetch = async (_url, init) => {
      methods.push(init?.method ?? 'GET');
      return new Response(null, { status: methods.length === 1 ? 200 : 500 });
    };
    const log = recordingLogger();
    const heartbeat = new Heartbeat({ url: 'https://hc-ping.com/uuid', log, retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 }, fetch });
    heartbeat.ping();
    await heartbeat.stop(5000);
    expect(methods).toEqual(['GET']);
    const failing = new Heartbeat({ url: 'https://hc-ping.com/uuid', log, retry: { attempts: 1, baseDelayMs: 1, maxDelayMs: 1 }, fetch });
    failing.ping();
    await failing.stop(5000);
    expect(log.lines.filter((l) => l.level === 'warn')).toHaveLength(1);
  });
});

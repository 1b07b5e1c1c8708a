import { Cron } from 'croner';
import { AsyncTask, CronJob, ToadScheduler } from 'toad-scheduler';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';

/** The cron-driven sweep. Expressions are evaluated in UTC, like the memory service's backup names. */
export class SweepSchedule {
  private scheduler: ToadScheduler | undefined;
  private readonly cron: Cron;

  constructor(
    private readonly expression: string,
    private readonly sweep: () => Promise<unknown>,
    private readonly log: Logger,
  ) {
    this.cron = new Cron(expression, { paused: true, timezone: 'UTC' });
  }

  start(): void {
    const scheduler = new ToadScheduler();
    const task = new AsyncTask(
      'scheduled sweep',
      async () => {
        await this.sweep();
      },
      (error) => this.log.error('scheduled sweep failed', { error: describeError(error) }),
    );
    // preventOverrun: a sweep still running when the next tick comes is not started twice.
    scheduler.addCronJob(new CronJob({ cronExpression: this.expression, timezone: 'UTC' }, task, { preventOverrun: true }));
    this.scheduler = scheduler;
  }

  nextRunMs(): number | undefined {
    return this.cron.nextRun()?.getTime();
  }

  stop(): void {
    this.scheduler?.stop();
    this.scheduler = undefined;
  }
}

// An outage of the test's S3 server: its process is stopped (SIGSTOP), so connections are
// accepted by the kernel and never answered, then continued (SIGCONT). The server is shared by
// the whole run, so a frozen one is always continued: by thaw(), or when this worker exits.

export class ServerFreeze {
  private frozen = false;
  private readonly onExit = (): void => this.thaw();

  constructor(private readonly pid: number) {}

  get isFrozen(): boolean {
    return this.frozen;
  }

  freeze(): void {
    if (this.frozen) return;
    process.kill(this.pid, 'SIGSTOP');
    this.frozen = true;
    process.once('exit', this.onExit);
  }

  thaw(): void {
    if (!this.frozen) return;
    this.frozen = false;
    process.off('exit', this.onExit);
    try {
      process.kill(this.pid, 'SIGCONT');
    } catch {
      // the server is gone; nothing to continue
    }
  }
}

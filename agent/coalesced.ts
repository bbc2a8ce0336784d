// A run asked for from several places (notifications, watches, timers) that must happen
// once for a burst of asks, soon after the first.

/**
 * Runs `fn` `ms` after the first ask; any number of asks before it runs make one run, at
 * the first ask's time.
 */
export class Coalesced {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private stopped = false;

  constructor(private readonly fn: () => void) {}

  ask(ms = 0): void {
    if (this.stopped) return;
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.fn();
    }, ms);
  }

  /** Drops a pending run, and every later ask (one from work still under way when its owner stopped). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

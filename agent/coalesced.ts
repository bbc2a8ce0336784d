// A run asked for from several places (notifications, watches, timers) that must happen
// once for a burst of asks, soon after the first.

/** Runs `fn` `ms` after the first ask; any number of asks before it runs make one run. */
export class Coalesced {
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly fn: () => void) {}

  ask(ms = 0): void {
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.fn();
    }, ms);
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

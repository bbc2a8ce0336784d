import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Coalesced } from "../../../agent/coalesced";

describe("Coalesced", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("runs once for a burst of asks, at the first ask's time, and again for an ask after that run", () => {
    const runs: number[] = [];
    const c = new Coalesced(() => runs.push(Date.now()));
    const t0 = Date.now();
    c.ask(20);
    vi.advanceTimersByTime(10);
    c.ask(20);
    c.ask();
    vi.advanceTimersByTime(9);
    expect(runs).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(runs).toEqual([t0 + 20]);
    vi.advanceTimersByTime(100);
    expect(runs).toHaveLength(1);
    c.ask();
    vi.advanceTimersByTime(0);
    expect(runs).toHaveLength(2);
  });

  it("after stop, drops the pending run and every later ask", () => {
    let runs = 0;
    const c = new Coalesced(() => runs++);
    c.ask(5);
    c.stop();
    c.ask();
    vi.advanceTimersByTime(100);
    expect(runs).toBe(0);
  });
});

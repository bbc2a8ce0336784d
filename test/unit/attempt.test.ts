import { describe, expect, it } from "vitest";
import { allSteps, attempt } from "../../shared/attempt";

describe("attempt", () => {
  it("records each failure and lets the later steps run", () => {
    const failures: string[] = [];
    const ran: string[] = [];
    attempt(failures, () => {
      ran.push("a");
      throw new Error("a broke");
    }, "step a");
    attempt(failures, () => void ran.push("b"), "step b");
    attempt(failures, () => {
      throw "not an Error";
    });
    expect(ran).toEqual(["a", "b"]);
    expect(failures).toEqual(["step a: a broke", "not an Error"]);
  });
});

describe("allSteps", () => {
  it("runs every step and rethrows a lone failure as it was", () => {
    const ran: string[] = [];
    const lone = Object.assign(new Error("b broke"), { code: 11 });
    let thrown: unknown;
    try {
      allSteps(
        () => void ran.push("a"),
        () => {
          ran.push("b");
          throw lone;
        },
        () => void ran.push("c"),
      );
    } catch (e) {
      thrown = e;
    }
    expect(ran).toEqual(["a", "b", "c"]);
    expect(thrown).toBe(lone);
  });

  it("names every failure when several steps fail, and is silent when none does", () => {
    const fail = (m: string) => () => {
      throw new Error(m);
    };
    expect(() => allSteps(fail("veth"), () => {}, fail("ip"))).toThrow(/^veth; ip$/);
    expect(() => allSteps(() => {}, () => {})).not.toThrow();
  });
});

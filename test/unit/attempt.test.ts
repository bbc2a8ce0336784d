import { describe, expect, it } from "vitest";
import { allSteps, attempt, labelled } from "../../shared/attempt";
import { CniError, ErrorCode } from "../../shared/cni/errors";
import { cniErrorOf } from "../helpers/cni-error";

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

  it("names every failure when several steps fail, with the first CNI code among them", () => {
    const fail = (e: Error) => () => {
      throw e;
    };
    expect(() => allSteps(fail(new Error("veth")), () => {}, fail(new Error("ip")))).toThrow(/^veth; ip$/);
    const thrown = cniErrorOf(() => allSteps(fail(new Error("rules")), fail(new CniError(ErrorCode.TryAgainLater, "ipam busy", "lock held"))));
    expect(thrown).toMatchObject({ code: 11, message: "rules; ipam busy", details: "lock held" });
    expect(() => allSteps(() => {}, () => {})).not.toThrow();
  });
});

describe("labelled", () => {
  it("puts the step's name before a failure's message and keeps its CNI code", () => {
    const thrown = cniErrorOf(() =>
      labelled("c1/eth0", () => {
        throw new CniError(ErrorCode.TryAgainLater, "ipam busy", "lock held");
      }),
    );
    expect(thrown).toMatchObject({ code: 11, message: "c1/eth0: ipam busy", details: "lock held" });
    expect(() => labelled("c2/eth0", () => {
      throw new Error("gone");
    })).toThrow(/^c2\/eth0: gone$/);
    expect(() => labelled("c3/eth0", () => {})).not.toThrow();
  });
});

const __t0 = performance.now(); process.on("exit", () => require("node:fs").writeSync(2, `top ${__t0.toFixed(2)} exit ${performance.now().toFixed(2)}\n`));

// `npm run lab`: a two-node weft cluster out of network namespaces on this machine.
// Brings it up, prints a pod-to-pod connectivity matrix and each node's overlay
// routes and FDB, then tears it down. `--keep` leaves it up; `--down` removes it.
import { writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Cluster } from "./cluster";
import { messageOf } from "../shared/cni/errors";
import { runLab, tearDownOnSignal } from "./run";

const say = (s = "") => writeSync(1, `${s}\n`);

const cluster = new Cluster({ prefix: "weft-lab", nodes: 2, workDir: join(tmpdir(), "weft-lab") });
const args = process.argv.slice(2);
tearDownOnSignal(cluster, args, say);

runLab(cluster, args, say).then(
  (code) => process.exit(code),
  (e: unknown) => {
    writeSync(2, `weft lab: ${messageOf(e)}\n`);
    process.exit(1);
  },
);

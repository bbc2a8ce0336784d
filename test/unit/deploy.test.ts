// Guards the cluster install (deploy/weft.yaml, kind-config.yaml, Dockerfile): what a
// reviewer checks by eye — minimal RBAC, host networking, capabilities, the CNI install
// into the node, the downward-API node name — plus the cross-file agreements that only
// show up on a live cluster (ConfigMap keys, volume names, paths, the pod subnet).
//
// The manifests are parsed by a strict parser for the YAML subset they are written in
// (block mappings and sequences, one-line scalars, one-line lists of scalars, comments,
// `---`). It rejects everything else (anchors, tags, multi-line strings, tabs, ambiguous
// YAML 1.1 booleans such as `on`), so a manifest that parses here means the same to
// kubectl; the alternative, a YAML library, would be a dependency for one test.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

type Yaml = string | number | boolean | null | Yaml[] | { [key: string]: Yaml };
type Obj = { [key: string]: Yaml };

interface Line {
  no: number; // 1-based, for messages
  indent: number;
  text: string; // without indentation and comment
}

/** The line without its comment: `#` at the start or after whitespace, outside quotes. */
function stripComment(s: string): string {
  let quote = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "#" && (i === 0 || /\s/.test(s[i - 1]!))) return s.slice(0, i).trimEnd();
  }
  return s.trimEnd();
}

/** Splits a flow list's inside on commas outside quotes. */
function splitFlow(inner: string): string[] {
  const out: string[] = [];
  let quote = "";
  let start = 0;
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i]!;
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = "";
    } else if (c === '"' || c === "'") quote = c;
    else if (c === "[" || c === "{") throw new Error("nested flow collections are outside the subset");
    else if (c === ",") {
      out.push(inner.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(inner.slice(start).trim());
  return out;
}

function scalar(raw: string, where: string): Yaml {
  const s = raw.trim();
  const bad = (why: string): never => {
    throw new Error(`${where}: ${why}: ${s}`);
  };
  if (s.startsWith('"')) {
    if (s.length < 2 || !s.endsWith('"')) bad("unterminated double-quoted string");
    try {
      return JSON.parse(s) as string;
    } catch {
      return bad("double-quoted string with escapes outside the subset");
    }
  }
  if (s.startsWith("'")) {
    if (s.length < 2 || !s.endsWith("'")) bad("unterminated single-quoted string");
    const inner = s.slice(1, -1);
    if (/'(?!')/.test(inner.replace(/''/g, ""))) bad("stray quote");
    return inner.replace(/''/g, "'");
  }
  if (s.startsWith("[")) {
    if (!s.endsWith("]")) bad("flow list must be on one line");
    const inner = s.slice(1, -1).trim();
    if (inner === "") return [];
    return splitFlow(inner).map((item) => {
      if (item === "") bad("empty item in flow list");
      return scalar(item, where);
    });
  }
  if (s === "{}") return {};
  if (/^[{&*!|>%@`?]/.test(s)) bad("outside the YAML subset (flow map, anchor, alias, tag, block scalar…)");
  if (/:(\s|$)/.test(s) || s.includes(" #")) bad("plain scalar with ': ' or ' #' (quote it)");
  if (s === "null" || s === "~") return null;
  if (s === "true") return true;
  if (s === "false") return false;
  // YAML 1.1 (what Kubernetes' decoder speaks) reads these as booleans; 1.2 as strings.
  if (/^(y|n|yes|no|on|off|true|false)$/i.test(s)) bad("ambiguous boolean (quote it, or write true/false)");
  if (/^-?(0|[1-9][0-9]*)$/.test(s)) return Number(s);
  if (/^-?[0-9]+\.[0-9]+$/.test(s)) return Number(s);
  if (/^-?0[0-9]+$/.test(s) || /^0[xo]/i.test(s)) bad("number with a leading zero or base prefix (quote it)");
  return s;
}

const isItem = (text: string): boolean => text === "-" || text.startsWith("- ");

class SubsetParser {
  private i = 0;
  constructor(
    private readonly lines: Line[],
    private readonly file: string,
  ) {}

  private where(l: Line | undefined): string {
    return `${this.file}:${l ? l.no : "end"}`;
  }

  document(): Yaml {
    const first = this.lines[0];
    if (!first) return null;
    const v = this.block(first.indent);
    const rest = this.lines[this.i];
    if (rest) throw new Error(`${this.where(rest)}: unexpected indentation`);
    return v;
  }

  private block(indent: number): Yaml {
    const l = this.lines[this.i]!;
    if (l.indent !== indent) throw new Error(`${this.where(l)}: unexpected indentation`);
    return isItem(l.text) ? this.sequence(indent) : this.mapping(indent);
  }

  /** The value of a key or item with nothing after it on its line. */
  private nested(parentIndent: number, sameIndentList: boolean): Yaml {
    const next = this.lines[this.i];
    if (next && next.indent > parentIndent) return this.block(next.indent);
    if (sameIndentList && next && next.indent === parentIndent && isItem(next.text)) return this.sequence(parentIndent);
    return null;
  }

  private sequence(indent: number): Yaml[] {
    const out: Yaml[] = [];
    for (let l = this.lines[this.i]; l && l.indent >= indent; l = this.lines[this.i]) {
      if (l.indent > indent) throw new Error(`${this.where(l)}: unexpected indentation`);
      if (!isItem(l.text)) break; // the next key of the mapping holding a list at its own indentation
      if (l.text === "-") {
        this.i++;
        out.push(this.nested(indent, false));
        continue;
      }
      const rest = l.text.slice(1);
      const body = rest.trimStart();
      if (entry(body)) {
        // "- key: value": a mapping whose keys line up one column past the dash's spaces.
        const column = indent + 1 + (rest.length - body.length);
        this.lines[this.i] = { no: l.no, indent: column, text: body };
        out.push(this.mapping(column));
      } else {
        out.push(scalar(body, this.where(l)));
        this.i++;
      }
    }
    return out;
  }

  private mapping(indent: number): Obj {
    const out: Obj = {};
    for (let l = this.lines[this.i]; l && l.indent >= indent; l = this.lines[this.i]) {
      if (l.indent > indent) throw new Error(`${this.where(l)}: unexpected indentation`);
      if (isItem(l.text)) break; // a list at the key's own indentation belongs to the previous key
      const e = entry(l.text);
      if (!e) throw new Error(`${this.where(l)}: expected "key: value": ${l.text}`);
      if (Object.hasOwn(out, e.key)) throw new Error(`${this.where(l)}: duplicate key ${e.key}`);
      this.i++;
      out[e.key] = e.value === "" ? this.nested(indent, true) : scalar(e.value, this.where(l));
    }
    return out;
  }
}

function entry(text: string): { key: string; value: string } | null {
  const m = /^([A-Za-z0-9_][A-Za-z0-9_.\/-]*|"[^"\\]*"):(?:\s+(.*))?$/.exec(text);
  if (!m) return null;
  const key = m[1]!.startsWith('"') ? m[1]!.slice(1, -1) : m[1]!;
  return { key, value: (m[2] ?? "").trim() };
}

/** All documents of a file in the subset; empty documents (only comments) are dropped. */
function parseYamlSubset(src: string, file = "<yaml>"): Yaml[] {
  const docs: Line[][] = [[]];
  src.split("\n").forEach((raw, n) => {
    const lead = /^[ \t]*/.exec(raw)![0];
    if (lead.includes("\t")) throw new Error(`${file}:${n + 1}: tab in indentation`);
    const text = stripComment(raw.slice(lead.length));
    if (text === "") return;
    if (lead === "" && text === "---") return void docs.push([]);
    if (text === "..." || text.startsWith("--- ") || text.startsWith("%")) {
      throw new Error(`${file}:${n + 1}: outside the YAML subset: ${text}`);
    }
    docs[docs.length - 1]!.push({ no: n + 1, indent: lead.length, text });
  });
  return docs.filter((d) => d.length > 0).map((d) => new SubsetParser(d, file).document());
}

// ---- helpers over the parsed documents ----

const ROOT = join(import.meta.dirname, "..", "..");
const read = (path: string): string => readFileSync(join(ROOT, path), "utf8");

function obj(v: Yaml | undefined, what: string): Obj {
  if (v === null || v === undefined || typeof v !== "object" || Array.isArray(v)) throw new Error(`${what} is not a mapping`);
  return v;
}
function list(v: Yaml | undefined, what: string): Yaml[] {
  if (!Array.isArray(v)) throw new Error(`${what} is not a list`);
  return v;
}
function objs(v: Yaml | undefined, what: string): Obj[] {
  return list(v, what).map((x, i) => obj(x, `${what}[${i}]`));
}
function str(v: Yaml | undefined, what: string): string {
  if (typeof v !== "string") throw new Error(`${what} is not a string`);
  return v;
}
/** Follows a dotted path of mapping keys. */
function at(root: Yaml, path: string): Yaml | undefined {
  let v: Yaml | undefined = root;
  for (const k of path.split(".")) {
    if (v === null || v === undefined || typeof v !== "object" || Array.isArray(v)) return undefined;
    v = v[k];
  }
  return v;
}

const manifest = parseYamlSubset(read("deploy/weft.yaml"), "deploy/weft.yaml").map((d, i) => obj(d, `document ${i}`));

function only(kind: string): Obj {
  const found = manifest.filter((d) => d["kind"] === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind}, found ${found.length}`);
  return found[0]!;
}

const namespace = only("Namespace");
const serviceAccount = only("ServiceAccount");
const clusterRole = only("ClusterRole");
const binding = only("ClusterRoleBinding");
const configMap = only("ConfigMap");
const daemonSet = only("DaemonSet");
const ns = str(at(namespace, "metadata.name"), "Namespace name");
const podSpec = obj(at(daemonSet, "spec.template.spec"), "DaemonSet pod spec");
const initContainers = objs(podSpec["initContainers"], "initContainers");
const containers = objs(podSpec["containers"], "containers");
const volumes = objs(podSpec["volumes"], "volumes");
const agent = containers.find((c) => c["name"] === "agent") ?? obj(undefined, "container agent");
const argv = (c: Obj): string[] => [...list(c["command"], "command"), ...list(c["args"] ?? [], "args")].map((a) => str(a, "argument"));

/** The value following `--flag` (or the part after `--flag=`) in an argument vector. */
function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  if (i >= 0) return args[i + 1];
  return args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
}

/** The host path behind a container's mount at `mountPath`. */
function hostPathAt(c: Obj, mountPath: string): string | undefined {
  const m = objs(c["volumeMounts"] ?? [], "volumeMounts").find((v) => v["mountPath"] === mountPath);
  if (!m) return undefined;
  const v = volumes.find((x) => x["name"] === m["name"]);
  return v ? (at(v, "hostPath.path") as string | undefined) : undefined;
}

// ---- the parser itself ----

describe("YAML subset parser", () => {
  it("reads mappings, lists at either indentation, scalars and documents", () => {
    const docs = parseYamlSubset(
      [
        "# leading comment",
        "---",
        "a: 1",
        "b: \"1\"",
        "c: 'it''s'",
        "d: [\"x\", z, 2]",
        "e:",
        "  - f: true   # comment",
        "    g: 10.244.0.0/16",
        "  -   h: ~",
        "  - plain text",
        "i:",
        "- j",
        "k: {}",
        "l: \"a # b\"",
        "---",
        "m: $(VAR)",
      ].join("\n"),
    );
    expect(docs).toEqual([
      {
        a: 1,
        b: "1",
        c: "it's",
        d: ["x", "z", 2],
        e: [{ f: true, g: "10.244.0.0/16" }, { h: null }, "plain text"],
        i: ["j"],
        k: {},
        l: "a # b",
      },
      { m: "$(VAR)" },
    ]);
  });

  it.each([
    ["anchors", "a: &x 1"],
    ["block scalars", "a: |\n  text"],
    ["YAML 1.1 booleans", "a: on"],
    ["tabs", "a:\n\tb: 1"],
    ["bad indentation", "a: 1\n  b: 2"],
    ["a key inside a list", "a:\n  - x\n  b: 1"],
    ["a list after a document's mapping", "a: 1\n- x"],
    ["duplicate keys", "a: 1\na: 2"],
    ["': ' in a plain scalar", "a: b: c"],
    ["octal-looking numbers", "a: 0755"],
    ["unterminated strings", 'a: "x'],
  ])("rejects %s", (_what, src) => {
    expect(() => parseYamlSubset(src)).toThrow();
  });
});

// ---- deploy/weft.yaml ----

describe("deploy/weft.yaml", () => {
  it("has exactly the expected objects, kinds and apiVersions", () => {
    expect(manifest.map((d) => `${String(d["apiVersion"])} ${String(d["kind"])}`)).toEqual([
      "v1 Namespace",
      "v1 ServiceAccount",
      "rbac.authorization.k8s.io/v1 ClusterRole",
      "rbac.authorization.k8s.io/v1 ClusterRoleBinding",
      "v1 ConfigMap",
      "apps/v1 DaemonSet",
    ]);
    for (const d of [serviceAccount, configMap, daemonSet]) expect(at(d, "metadata.namespace")).toBe(ns);
    // Pod Security: host network, host paths and NET_ADMIN need the privileged level.
    expect(at(namespace, "metadata.labels")).toMatchObject({ "pod-security.kubernetes.io/enforce": "privileged" });
  });

  it("grants exactly nodes list/watch (all the agent uses), bound to the agent's service account", () => {
    expect(clusterRole["rules"]).toEqual([{ apiGroups: [""], resources: ["nodes"], verbs: ["list", "watch"] }]);
    expect(binding["roleRef"]).toEqual({
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: at(clusterRole, "metadata.name"),
    });
    expect(binding["subjects"]).toEqual([{ kind: "ServiceAccount", name: at(serviceAccount, "metadata.name"), namespace: ns }]);
    expect(podSpec["serviceAccountName"]).toBe(at(serviceAccount, "metadata.name"));
  });

  it("runs on every node, in the host network, as a node-critical pod", () => {
    expect(podSpec["hostNetwork"]).toBe(true);
    // An Exists toleration without key or effect tolerates every taint.
    expect(podSpec["tolerations"]).toContainEqual({ operator: "Exists" });
    expect(podSpec["priorityClassName"]).toBe("system-node-critical");
    expect(at(daemonSet, "spec.template.metadata.labels")).toMatchObject(obj(at(daemonSet, "spec.selector.matchLabels"), "matchLabels"));
  });

  it("prepares the node's kernel first: br_netfilter loaded where missing, IPv4 forwarding on, privileged", () => {
    const setup = initContainers[0]!;
    expect(setup["name"]).toBe("node-setup");
    const script = argv(setup);
    expect(script.slice(0, 2)).toEqual(["/bin/sh", "-c"]);
    expect(script[2]).toBe("[ -e /proc/sys/net/bridge ] || modprobe br_netfilter || { echo 'weft: br_netfilter could not be loaded; load it on the node' >&2; exit 1; }; echo 1 > /proc/sys/net/ipv4/ip_forward");
    expect(at(setup, "securityContext.privileged")).toBe(true);
    expect(hostPathAt(setup, "/lib/modules")).toBe("/lib/modules");
    // modprobe is in the image: the stage after the last FROM.
    expect(read("Dockerfile").split(/^FROM /m).at(-1)).toMatch(/apt-get install .* kmod/);
  });

  it("installs the executable into the node's /opt/cni/bin with `weft install` next", () => {
    expect(initContainers).toHaveLength(2);
    const install = initContainers[1]!;
    const args = argv(install);
    expect(args.slice(0, 2)).toEqual(["/usr/local/bin/weft", "install"]);
    const binDir = flag(args, "bin-dir");
    expect(binDir).toBeDefined();
    expect(hostPathAt(install, binDir!)).toBe("/opt/cni/bin");
  });

  it("gives the agent NET_ADMIN and NET_RAW, and BPF and SYS_ADMIN for the fast path, unprivileged", () => {
    const sc = obj(agent["securityContext"], "agent securityContext");
    expect(list(at(sc, "capabilities.add"), "capabilities.add").sort()).toEqual(["BPF", "NET_ADMIN", "NET_RAW", "SYS_ADMIN"]);
    expect(sc["privileged"]).not.toBe(true);
    expect(argv(agent).slice(0, 2)).toEqual(["/usr/local/bin/weft", "agent"]);
  });

  it("is ready while the agent's own ready file exists, not on files an earlier agent left on the host", () => {
    const args = agent["args"] as string[];
    const file = args[args.indexOf("--ready-file") + 1];
    expect(file).toBe("/tmp/weft-ready");
    expect((agent["readinessProbe"] as { exec: { command: string[] } }).exec.command).toEqual(["test", "-e", file]);
    const mounts = objs(agent["volumeMounts"], "agent volumeMounts").map((m) => m["mountPath"] as string);
    expect(mounts.some((m) => file!.startsWith(`${m}/`))).toBe(false);
  });

  it("gives the agent NODE_NAME from the downward API", () => {
    const env = objs(agent["env"], "agent env");
    expect(env.find((e) => e["name"] === "NODE_NAME")).toEqual({
      name: "NODE_NAME",
      valueFrom: { fieldRef: { fieldPath: "spec.nodeName" } },
    });
  });

  it("mounts the agent's state and conf dirs at the host's own paths", () => {
    const args = argv(agent);
    expect(flag(args, "nodes")).toBe("kubernetes");
    for (const [name, hostPath] of [
      ["state-dir", "/run/weft"],
      ["cni-conf-dir", "/etc/cni/net.d"],
    ] as const) {
      const dir = flag(args, name);
      expect(dir, `--${name}`).toBe(hostPath); // the conflist names the state dir as the host sees it
      expect(hostPathAt(agent, dir!), `--${name} mount`).toBe(hostPath);
    }
    expect(hostPathAt(agent, "/run/xtables.lock")).toBe("/run/xtables.lock");
    expect(volumes.find((v) => at(v, "hostPath.path") === "/run/xtables.lock")?.["hostPath"]).toMatchObject({ type: "FileOrCreate" });
    const modules = objs(agent["volumeMounts"], "volumeMounts").find((m) => m["mountPath"] === "/lib/modules");
    expect(modules?.["readOnly"]).toBe(true);
    // The GC pass reads pod netns files at the paths CNI_NETNS names (containerd: /var/run/netns),
    // including ones created after the agent started.
    expect(hostPathAt(agent, "/var/run/netns")).toBe("/var/run/netns");
    const netns = objs(agent["volumeMounts"], "volumeMounts").find((m) => m["mountPath"] === "/var/run/netns");
    expect(netns).toMatchObject({ readOnly: true, mountPropagation: "HostToContainer" });
  });

  it("uses the locally loaded image without pulling", () => {
    for (const c of [...initContainers, ...containers]) {
      expect(c["image"]).toBe("weft:dev");
      expect(c["imagePullPolicy"]).toBe("IfNotPresent");
    }
  });

  it("refers only to volumes, ConfigMap keys and env vars that exist", () => {
    const names = volumes.map((v) => v["name"]);
    for (const c of [...initContainers, ...containers]) {
      for (const m of objs(c["volumeMounts"] ?? [], "volumeMounts")) expect(names).toContain(m["name"]);
    }
    const data = obj(configMap["data"], "ConfigMap data");
    for (const [k, v] of Object.entries(data)) expect(typeof v, `ConfigMap ${k} must be a string`).toBe("string");
    const env = objs(agent["env"], "agent env");
    const defined = new Set(env.map((e) => e["name"]));
    for (const e of env) {
      const ref = at(e, "valueFrom.configMapKeyRef");
      if (ref === undefined) continue;
      expect(at(ref, "name")).toBe(at(configMap, "metadata.name"));
      expect(Object.keys(data)).toContain(at(ref, "key"));
    }
    // Every $(VAR) in the arguments is defined, or Kubernetes passes it on literally.
    for (const a of argv(agent)) for (const [, v] of a.matchAll(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g)) expect(defined).toContain(v);
    // And every ConfigMap key is consumed.
    const used = env.map((e) => at(e, "valueFrom.configMapKeyRef.key"));
    for (const k of Object.keys(data)) expect(used).toContain(k);
  });

  it("uses the executable path the Dockerfile installs", () => {
    expect(read("Dockerfile")).toMatch(/^COPY --from=\S+ \S*dist\/bin\/weft \/usr\/local\/bin\/weft$/m);
  });
});

// ---- kind-config.yaml ----

describe("kind-config.yaml", () => {
  const docs = parseYamlSubset(read("kind-config.yaml"), "kind-config.yaml");
  const kind = obj(docs[0], "kind-config.yaml");

  it("is one kind v1alpha4 Cluster without kind's CNI, control plane + two workers", () => {
    expect(docs).toHaveLength(1);
    expect(kind["kind"]).toBe("Cluster");
    expect(kind["apiVersion"]).toBe("kind.x-k8s.io/v1alpha4");
    expect(at(kind, "networking.disableDefaultCNI")).toBe(true);
    expect(objs(kind["nodes"], "nodes").map((n) => n["role"])).toEqual(["control-plane", "worker", "worker"]);
  });

  it("has podSubnet 10.244.0.0/16, the manifest's cluster-cidr", () => {
    expect(at(kind, "networking.podSubnet")).toBe("10.244.0.0/16");
    expect(at(configMap, "data.cluster-cidr")).toBe("10.244.0.0/16");
  });
});

describe("npm run test:kind", () => {
  it("runs test/kind/run.sh", () => {
    const pkg = JSON.parse(read("package.json")) as { scripts: Record<string, string> };
    expect(pkg.scripts["test:kind"]).toBe("bash test/kind/run.sh");
    const script = read("test/kind/run.sh");
    expect(script.startsWith("#!/usr/bin/env bash\n")).toBe(true);
    expect(script).toMatch(/^set -euo pipefail$/m);
  });
});

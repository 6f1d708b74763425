// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
// Offline check of the Kubernetes manifests: each kustomization given is
// built as kustomize would (resources, namespace, images, JSON patches),
// every object is validated against the Kubernetes API schema
// (kubernetes-models), and the DaemonSet is checked for what running the
// guard needs. The ConfigMap's configuration file is written to the path
// after --config-out, for "starttls-guard run --check".
// Usage: node validate.js [--config-out FILE] DIR...
"use strict";
const fs = require("fs");
const path = require("path");
const YAML = require("yaml");
const models = {
  v1: require("kubernetes-models/v1"),
  "apps/v1": require("kubernetes-models/apps/v1"),
};

function fail(msg) {
  console.log("FAIL: " + msg);
  process.exitCode = 1;
}

function load(file) {
  return YAML.parseAllDocuments(fs.readFileSync(file, "utf8")).map((d) => {
    if (d.errors.length) throw new Error(file + ": " + d.errors[0].message);
    return d.toJS();
  });
}

// JSON patch (RFC 6902): add, replace, remove
function patch(obj, ops) {
  for (const op of ops) {
    const keys = op.path.split("/").slice(1).map((k) => k.replace(/~1/g, "/").replace(/~0/g, "~"));
    const last = keys.pop();
    let o = obj;
    for (const k of keys) {
      if (o[k] === undefined) throw new Error("patch path not found: " + op.path);
      o = o[k];
    }
    if (op.op === "remove") delete o[last];
    else if (op.op === "replace" && o[last] === undefined) throw new Error("replace of nothing: " + op.path);
    else if (op.op === "add" || op.op === "replace") o[last] = op.value;
    else throw new Error("unsupported op " + op.op);
  }
}

function build(dir) {
  const k = load(path.join(dir, "kustomization.yaml"))[0];
  if (k.apiVersion !== "kustomize.config.k8s.io/v1beta1" || k.kind !== "Kustomization")
    throw new Error(dir + ": not a Kustomization");
  let objs = [];
  for (const r of k.resources || []) {
    const p = path.join(dir, r);
    objs = objs.concat(fs.statSync(p).isDirectory() ? build(p) : load(p));
  }
  for (const o of objs) {
    if (k.namespace && o.kind !== "Namespace") o.metadata.namespace = k.namespace;
    for (const img of k.images || [])
      for (const c of (o.spec && o.spec.template && o.spec.template.spec.containers) || [])
        if (c.image.split(":")[0] === img.name)
          c.image = (img.newName || img.name) + ":" + (img.newTag || c.image.split(":")[1]);
  }
  for (const p of k.patches || []) {
    const targets = objs.filter((o) => o.kind === p.target.kind && o.metadata.name === p.target.name);
    if (!targets.length) throw new Error(dir + ": patch matches nothing");
    targets.forEach((o) => patch(o, YAML.parse(p.patch)));
  }
  return objs;
}

let configOut = null;
const dirs = [];
for (let i = 2; i < process.argv.length; i++) {
  if (process.argv[i] === "--config-out") configOut = process.argv[++i];
  else dirs.push(process.argv[i]);
}
for (const dir of dirs) {
  let objs;
  try {
    objs = build(dir);
  } catch (e) {
    fail(e.message);
    continue;
  }
  for (const o of objs) {
    const group = models[o.apiVersion];
    const Model = group && group[o.kind];
    if (!Model) {
      fail(dir + ": no schema for " + o.apiVersion + " " + o.kind);
      continue;
    }
    try {
      new Model(o).validate();
    } catch (e) {
      fail(dir + ": " + o.kind + "/" + o.metadata.name + ": " + e.message);
    }
  }
  const ds = objs.find((o) => o.kind === "DaemonSet");
  const cm = objs.find((o) => o.kind === "ConfigMap");
  if (!ds || !cm) {
    fail(dir + ": no DaemonSet or ConfigMap");
    continue;
  }
  const pod = ds.spec.template.spec;
  const c = pod.containers[0];
  const conf = cm.data["starttls-guard.conf"] || "";
  const port = (conf.match(/^\s*metrics\s*=\s*\S*:(\d+)\s*$/m) || [])[1];
  const checks = [
    [pod.hostNetwork === true, "hostNetwork"],
    [(pod.tolerations || []).some((t) => t.operator === "Exists" && !t.key), "tolerations for every node"],
    [c.livenessProbe && c.livenessProbe.httpGet.path === "/healthz" && String(c.livenessProbe.httpGet.port) === port,
     "liveness probe on /healthz at the configured metrics port"],
    [ds.spec.template.metadata.annotations["prometheus.io/scrape"] === "true" &&
     ds.spec.template.metadata.annotations["prometheus.io/port"] === port, "Prometheus annotations"],
    [c.resources && c.resources.requests && c.resources.limits, "resource requests and limits"],
    [pod.volumes.some((v) => v.hostPath && v.hostPath.path === "/sys/fs/bpf") &&
     c.volumeMounts.some((m) => m.mountPath === "/sys/fs/bpf"), "the host's bpffs"],
    [pod.volumes.some((v) => v.configMap && v.configMap.name === cm.metadata.name) &&
     c.volumeMounts.some((m) => m.mountPath === "/etc/starttls-guard"), "the ConfigMap as the configuration"],
    [c.args.join(" ") === "run --config /etc/starttls-guard/starttls-guard.conf", "runs the daemon"],
    [c.securityContext.privileged === true ||
     (c.securityContext.capabilities.drop.includes("ALL") &&
      ["BPF", "NET_ADMIN"].every((x) => c.securityContext.capabilities.add.includes(x)) &&
      !c.securityContext.capabilities.add.includes("SYS_ADMIN") &&
      c.securityContext.allowPrivilegeEscalation === false), "least privileges (or the privileged variant)"],
    [pod.terminationGracePeriodSeconds >= 10, "time to detach on termination"],
  ];
  for (const [ok, what] of checks) if (!ok) fail(dir + ": " + what);
  if (configOut) fs.writeFileSync(configOut, conf);
  if (!process.exitCode) console.log("ok: " + dir + " (" + objs.map((o) => o.kind).join(", ") + ")");
}

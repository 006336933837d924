// Validates rendered Kubernetes manifests offline: every object against its schema from kubernetes-models (the
// Kubernetes API, KEDA, Prometheus Operator); a KServe InferenceService and a Kubeflow PyTorchJob, for which no schema
// package exists, by structural checks whose parts (containers, volumes, pod templates) are validated against the core
// schemas. The PromQL of a PrometheusRule's rules and of a ScaledObject's prometheus triggers is parsed with
// Prometheus's own grammar; with --metrics each metric it selects must be one of the names in that file (one a line:
// the families docs/API.md documents), and with --matcher be selected with that label matcher (other services export
// families of the same names).
// Usage: node validate.mjs [--metrics NAMES.txt] [--matcher 'service="x"'] FILE.yaml...   Prints one line per object;
// exits 1 if any is invalid.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { parser as promqlParser } from "@prometheus-io/lezer-promql";

const args = process.argv.slice(2);
function option(name) {
  const at = args.indexOf(name);
  if (at < 0) return null;
  const [, value] = args.splice(at, 2);
  return value;
}
const metricsFile = option("--metrics");
const knownMetrics = metricsFile ? new Set(readFileSync(metricsFile, "utf8").split("\n").filter(Boolean)) : null;
const matcher = option("--matcher");

const schemaModules = {
  "keda.sh/": "@kubernetes-models/keda/",
  "monitoring.coreos.com/": "@kubernetes-models/prometheus-operator/",
};

async function modelClass(apiVersion, kind) {
  const prefix = Object.keys(schemaModules).find((group) => apiVersion.startsWith(group));
  const module = prefix
    ? `${schemaModules[prefix]}${apiVersion}`
    : `kubernetes-models/${apiVersion}`; // "v1" for the core group, "apps/v1", "policy/v1", ...
  const exports = await import(module);
  if (!exports[kind]) throw new Error(`no schema for ${kind} in ${module}`);
  return exports[kind];
}

// The fields of KServe's v1beta1 PredictorSpec this project uses, each checked against the core schema it embeds.
async function checkInferenceService(object) {
  const { Container, Volume, PodSecurityContext } = await import("kubernetes-models/v1");
  const predictor = object.spec?.predictor;
  if (!predictor) throw new Error("spec.predictor is missing");
  const known = new Set(["containers", "volumes", "securityContext", "minReplicas", "maxReplicas", "scaleMetric",
    "scaleTarget", "serviceAccountName", "nodeSelector", "tolerations", "affinity", "annotations", "labels",
    "terminationGracePeriodSeconds"]);
  for (const key of Object.keys(predictor)) {
    if (!known.has(key)) throw new Error(`spec.predictor.${key} is not a field this check knows`);
  }
  for (const key of ["minReplicas", "maxReplicas", "terminationGracePeriodSeconds", "scaleTarget"]) {
    if (key in predictor && !Number.isInteger(predictor[key])) throw new Error(`spec.predictor.${key} must be an integer`);
  }
  if ("scaleMetric" in predictor && !["cpu", "memory", "concurrency", "rps"].includes(predictor.scaleMetric)) {
    throw new Error(`spec.predictor.scaleMetric '${predictor.scaleMetric}' is not cpu, memory, concurrency or rps`);
  }
  const containers = predictor.containers ?? [];
  if (!containers.some((c) => c.name === "kserve-container")) {
    throw new Error("a custom predictor needs a container named kserve-container");
  }
  containers.forEach((c) => new Container(c).validate());
  (predictor.volumes ?? []).forEach((v) => new Volume(v).validate());
  if (predictor.securityContext) new PodSecurityContext(predictor.securityContext).validate();
}

// The fields of the training operator's PyTorchJob this project uses; each replica's pod template against the core schema.
async function checkPyTorchJob(object) {
  const { PodTemplateSpec } = await import("kubernetes-models/v1");
  const spec = object.spec;
  if (!spec?.pytorchReplicaSpecs) throw new Error("spec.pytorchReplicaSpecs is missing");
  const known = new Set(["elasticPolicy", "nprocPerNode", "runPolicy", "pytorchReplicaSpecs"]);
  for (const key of Object.keys(spec)) {
    if (!known.has(key)) throw new Error(`spec.${key} is not a field this check knows`);
  }
  const backend = spec.elasticPolicy?.rdzvBackend;
  if (backend !== undefined && !["c10d", "etcd", "etcd-v2"].includes(backend)) {
    throw new Error(`spec.elasticPolicy.rdzvBackend '${backend}' is not c10d, etcd or etcd-v2`);
  }
  for (const [role, replica] of Object.entries(spec.pytorchReplicaSpecs)) {
    if (!["Master", "Worker"].includes(role)) throw new Error(`pytorchReplicaSpecs.${role} is not Master or Worker`);
    if (replica.replicas !== undefined && !Number.isInteger(replica.replicas)) throw new Error(`${role}.replicas must be an integer`);
    new PodTemplateSpec(replica.template).validate();
    if (!replica.template.spec.containers.some((c) => c.name === "pytorch")) {
      throw new Error(`${role}: the operator needs a container named pytorch`);
    }
  }
}

// An expression parses as PromQL; with --metrics, every metric it selects is a documented family (a histogram's
// _bucket, _sum and _count series by the family's name), and with --matcher it is selected with that matcher.
function checkPromQL(name, expression) {
  promqlParser.parse(expression).iterate({
    enter: (node) => {
      if (node.type.isError) {
        throw new Error(`${name}: not PromQL at character ${node.from}: '${expression.slice(node.from, node.from + 30)}'`);
      }
      if (node.name !== "VectorSelector") return;
      const selector = expression.slice(node.from, node.to);
      const metric = selector.match(/^[a-zA-Z_:][a-zA-Z0-9_:]*/)?.[0];
      if (knownMetrics && !(metric && (knownMetrics.has(metric) || knownMetrics.has(metric.replace(/_(bucket|sum|count)$/, ""))))) {
        throw new Error(`${name}: '${selector}' selects no family the service documents`);
      }
      if (matcher && !selector.includes(matcher)) throw new Error(`${name}: '${selector}' does not select ${matcher}`);
    },
  });
}

function checkQueries(object) {
  if (object.kind === "PrometheusRule") {
    for (const group of object.spec.groups) {
      for (const rule of group.rules) checkPromQL(rule.alert ?? rule.record, String(rule.expr));
    }
    return true;
  }
  const triggers = object.kind === "ScaledObject" ? object.spec.triggers.filter((t) => t.type === "prometheus") : [];
  for (const trigger of triggers) checkPromQL(trigger.name ?? "a prometheus trigger", trigger.metadata.query);
  return triggers.length > 0;
}

async function validate(object) {
  if (object.apiVersion === "serving.kserve.io/v1beta1" && object.kind === "InferenceService") {
    await checkInferenceService(object);
    return "structural check (KServe)";
  }
  if (object.apiVersion === "kubeflow.org/v1" && object.kind === "PyTorchJob") {
    await checkPyTorchJob(object);
    return "structural check (Kubeflow training operator)";
  }
  const Model = await modelClass(object.apiVersion, object.kind);
  new Model(object).validate();
  if (checkQueries(object)) return `schema; PromQL${knownMetrics ? ", documented families" : ""}${matcher ? `, ${matcher}` : ""}`;
  return "schema";
}

let failures = 0;
for (const file of args) {
  for (const document of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (document.errors.length) throw document.errors[0];
    const object = document.toJSON();
    if (!object) continue;
    const name = `${object.kind}/${object.metadata?.name}`;
    try {
      const how = await validate(object);
      console.log(`valid    ${file}: ${name} (${how})`);
    } catch (error) {
      failures++;
      console.log(`INVALID  ${file}: ${name}: ${error.message}`);
    }
  }
}
process.exit(failures ? 1 : 0);

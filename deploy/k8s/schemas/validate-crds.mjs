// Validates KEDA ScaledObjects and Prometheus-operator ServiceMonitors against the schemas of
// @kubernetes-models/keda 2.0.0 and @kubernetes-models/prometheus-operator 6.0.0 (package.json,
// pinned with their integrity in package-lock.json; `npm ci` in this folder installs them).
// Those schemas are generated from the projects' Go API types (KEDA v2 apis/keda/v1alpha1,
// prometheus-operator pkg/apis/monitoring/v1), the types their CRDs are generated from: types,
// required fields and enums are checked; unknown fields are not refused (the API server prunes
// them, or refuses them under strict field validation).
//
// stdin: a JSON array of objects; stdout: a JSON array of {kind, name, error} (empty: all valid).
// Exit 2 when an object has a kind this script does not know.
import { readFileSync } from "node:fs";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const models = {
  "keda.sh/v1alpha1/ScaledObject": ScaledObject,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
};
const objects = JSON.parse(readFileSync(0, "utf8"));
const errors = [];
for (const object of objects) {
  const Model = models[`${object.apiVersion}/${object.kind}`];
  if (!Model) {
    console.error(`no schema for ${object.apiVersion} ${object.kind}`);
    process.exit(2);
  }
  try {
    new Model(object).validate();
  } catch (error) {
    errors.push({ kind: object.kind, name: object.metadata?.name, error: String(error.message ?? error) });
  }
}
process.stdout.write(JSON.stringify(errors));

/** The autoscaler host's environment (src/autoscaler/host.ts): what the managers write is accepted, anything else named. */
import { describe, expect, it } from "vitest";
import { hostConfigFromEnv } from "../../src/autoscaler/host.js";
import { autoscalerEnv } from "../../src/managers/cluster-spec.js";

describe("the autoscaler host's environment", () => {
  it("accepts what the Docker and Kubernetes managers write", () => {
    const docker = autoscalerEnv({ cluster: "c1", token: true, managementUrl: "http://clipper-c1-management:1338", manager: { kind: "docker" } });
    expect(hostConfigFromEnv(docker)).toEqual({
      manager: "docker", cluster: "c1", adminUrl: "http://clipper-c1-management:1338", tokenFile: "/etc/clipper/token",
    });
    const k8s = autoscalerEnv({ cluster: "c1", token: false, managementUrl: "http://clipper-c1-management.ml.svc:1338", manager: { kind: "kubernetes", namespace: "ml" } });
    expect(hostConfigFromEnv({ ...k8s, CLIPPER_AUTOSCALE_INTERVAL_MS: "500", PATH: "/bin" })).toEqual({
      manager: "kubernetes", cluster: "c1", namespace: "ml", adminUrl: "http://clipper-c1-management.ml.svc:1338", intervalMs: 500,
    });
  });

  it("names each missing or bad variable", () => {
    const base = { CLIPPER_MANAGER: "docker", CLIPPER_CLUSTER: "c1", CLIPPER_ADMIN_URL: "http://m:1338" };
    expect(() => hostConfigFromEnv({})).toThrow(/CLIPPER_MANAGER: must be docker or kubernetes/);
    expect(() => hostConfigFromEnv({ ...base, CLIPPER_MANAGER: "local" })).toThrow(/CLIPPER_MANAGER: must be docker or kubernetes/);
    expect(() => hostConfigFromEnv({ ...base, CLIPPER_MANAGER: "__proto__" })).toThrow(/CLIPPER_MANAGER/);
    expect(() => hostConfigFromEnv({ ...base, CLIPPER_ADMIN_URL: "file:///etc/passwd" })).toThrow(/CLIPPER_ADMIN_URL: must be an http\(s\) URL/);
    expect(() => hostConfigFromEnv({ ...base, CLIPPER_ADMIN_URL: undefined })).toThrow(/CLIPPER_ADMIN_URL/);
    expect(() => hostConfigFromEnv({ ...base, CLIPPER_CLUSTER: "Bad_Name" })).toThrow(/CLIPPER_CLUSTER: cluster name 'Bad_Name'/);
    expect(() => hostConfigFromEnv({ ...base, CLIPPER_AUTOSCALE_INTERVAL_MS: "10" })).toThrow(/CLIPPER_AUTOSCALE_INTERVAL_MS/);
    expect(() => hostConfigFromEnv({ ...base, CLIPPER_AUTOSCALE_INTERVAL_MS: "1e3" })).toThrow(/CLIPPER_AUTOSCALE_INTERVAL_MS: must be a whole number/);
    expect(() => hostConfigFromEnv({ ...base, CLIPPER_MANAGER: "kubernetes" })).toThrow(/CLIPPER_NAMESPACE/);
    expect(() => hostConfigFromEnv({ ...base, CLIPPER_MANAGER: "kubernetes", CLIPPER_NAMESPACE: "ML" })).toThrow(/CLIPPER_NAMESPACE: must be a Kubernetes namespace name/);
  });
});

/**
 * The dry-run CLI with no kubeconfig at all: `clipper --manager kubernetes --dry-run` prints the
 * manifests the library renders. The manifests themselves are checked in
 * test/unit/k8s-manifests.test.ts.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import {
  GPU_RESOURCE,
  modelManifests,
  type KubernetesModelSpec,
} from "../src/managers/kubernetes/manifests.js";
import { renderManifests } from "../src/managers/kubernetes/render.js";
import { MANAGER_NEEDS_DRY_RUN } from "../src/cli/commands/manifests.js";
import { runCli } from "./support/cli.js";

const MODEL: KubernetesModelSpec = {
  cluster: "prod", namespace: "ml", name: "sum-model", version: "1", inputType: "doubles", framework: "python",
  image: "reg.example.com/prod-sum-model:1", replicas: 2, imagePullSecrets: ["regcred"], rpcCredential: { secret: "v3rsion-secret" },
};

type Json = Record<string, any>;

describe("clipper --manager kubernetes --dry-run", () => {
  const home = mkdtempSync(join(tmpdir(), "clipper-k8s-"));
  // No cluster, no kubeconfig, no registry, no Docker.
  const env = { CLIPPER_HOME: home, KUBECONFIG: join(home, "no-such-kubeconfig"), DOCKER_HOST: "unix:///nonexistent.sock" };
  afterAll(() => rmSync(home, { recursive: true, force: true }));
  // The model's source: a dry run checks it as a live deploy would, though it builds nothing.
  const predict = join(home, "predict.py");
  writeFileSync(predict, "def predict(inputs):\n    return [str(len(x)) for x in inputs]\n");

  const kindsAndNames = (text: string) => {
    const docs = parseAllDocuments(text);
    for (const d of docs as { errors: unknown[] }[]) expect(d.errors).toEqual([]);
    return (docs as { toJS(): Json }[]).map((d) => d.toJS()).map((o) => `${o.kind}/${o.metadata.name}`);
  };

  it("prints the cluster's objects as multi-document YAML and exits 0", async () => {
    const r = await runCli(["start", "--manager", "kubernetes", "--dry-run", "-o", "yaml", "--cluster", "prod", "--namespace", "ml",
      "--create-namespace", "--frontend-replicas", "2", "--service-type", "LoadBalancer", "--image-pull-secret", "regcred",
      "--registry", "reg.example.com/team"], env);
    expect(r.stderr).not.toMatch(/error/);
    expect(r.code).toBe(0);
    expect(kindsAndNames(r.stdout)).toEqual([
      "Namespace/ml", "Secret/clipper-prod-token", "Secret/clipper-prod-rpc-key", "PersistentVolumeClaim/clipper-prod-state",
      "Deployment/clipper-prod-management", "Service/clipper-prod-management",
      "Deployment/clipper-prod-query-frontend", "Service/clipper-prod-query-frontend", "Service/clipper-prod-frontend-rpc",
      "NetworkPolicy/clipper-prod-frontend-rpc",
      "ServiceAccount/clipper-prod-autoscaler", "Role/clipper-prod-autoscaler", "RoleBinding/clipper-prod-autoscaler", "Deployment/clipper-prod-autoscaler",
    ]);
    expect(r.stderr).toMatch(/freshly generated RPC key in the Secret clipper-prod-rpc-key/);
    expect(r.stdout).toContain("image: reg.example.com/team/clipper-runtime:0.1.0");
  });

  it("--frontend-workers N: N workers per frontend pod, each RPC port declared; deploy-model --frontend-workers tells the replicas every port", async () => {
    const r = await runCli(["start", "--manager", "kubernetes", "--dry-run", "-o", "json", "--cluster", "prod", "--frontend-workers", "2"], env);
    expect(r.code, r.stderr).toBe(0);
    const objects = JSON.parse(r.stdout).items as Json[];
    const frontend = objects.find((o) => o.kind === "Deployment" && o.metadata.name === "clipper-prod-query-frontend")!;
    const container = frontend.spec.template.spec.containers[0];
    expect(container.command.join(" ")).toContain("--rpc-port 7000 --workers 2 ");
    expect(container.ports.map((p: Json) => p.containerPort)).toEqual([1337, 7000, 7001]);
    const headless = objects.find((o) => o.kind === "Service" && o.metadata.name === "clipper-prod-frontend-rpc")!;
    expect(headless.spec.ports.map((p: Json) => p.port)).toEqual([7000, 7001]);

    const deploy = (...extra: string[]) => runCli(["deploy-model", "sum-model", "--version", "3", "--input-type", "doubles", "--framework", "python",
      "--predict", predict, "--cluster", "prod", "--manager", "kubernetes", "--dry-run", "-o", "json", ...extra], env);
    const portOf = (text: string) => (JSON.parse(text).items as Json[]).find((o) => o.kind === "Deployment")!
      .spec.template.spec.containers[0].env.find((e: Json) => e.name === "CLIPPER_PORT").value;
    expect(portOf((await deploy("--frontend-workers", "2")).stdout)).toBe("7000,7001");
    expect(portOf((await deploy()).stdout)).toBe("7000");
    for (const bad of ["0", "9", "two"]) {
      const refused = await deploy("--frontend-workers", bad);
      expect(refused.code, bad).toBe(2);
      expect(refused.stderr).toMatch(/--frontend-workers <n>. argument .* is invalid/);
    }
    // A live deploy reads the count from the cluster: the flag is for printing manifests only.
    const live = await runCli(["deploy-model", "sum-model", "--version", "3", "--input-type", "doubles", "--framework", "python",
      "--predict", predict, "--frontend-workers", "2"], env);
    expect(live.code).toBe(2);
    expect(live.stderr).toContain("--frontend-workers on deploy-model is for --manager kubernetes --dry-run");
  });

  it("--no-autoscaler prints no autoscaler and no credential to scale", async () => {
    const r = await runCli(["start", "--manager", "kubernetes", "--dry-run", "-o", "yaml", "--cluster", "prod", "--namespace", "ml", "--no-autoscaler"], env);
    expect(r.code).toBe(0);
    const kinds = kindsAndNames(r.stdout);
    expect(kinds.filter((k) => k.includes("autoscaler") || /^(ServiceAccount|Role|RoleBinding)\//.test(k))).toEqual([]);
    expect(kinds).toContain("Deployment/clipper-prod-management");
  });

  it("prints a model version's Deployment, image named as it would be tagged, GPU in limits", async () => {
    const r = await runCli(["deploy-model", "sum-model", "--version", "3", "--input-type", "doubles", "--framework", "pytorch",
      "--predict", predict, "--gpu", "1", "--replicas", "2", "--registry", "reg.example.com", "--cluster", "prod", "--env", "MODE=fast",
      "--warmup-input", "[1, 2.5]", "--manager", "kubernetes", "--dry-run", "-o", "yaml"], env);
    expect(r.stderr).toMatch(/^warning: the replicas read CLIPPER_RPC_SECRET from the Secret clipper-prod-sum-model-3-rpc \(key `secret`\)/);
    expect(r.code).toBe(0);
    expect(kindsAndNames(r.stdout)).toEqual(["Deployment/clipper-prod-sum-model-3"]);
    const [d] = parseAllDocuments(r.stdout).map((doc) => (doc as { toJS(): Json }).toJS());
    expect(d!.spec.replicas).toBe(2);
    expect(d!.spec.template.spec.containers[0].image).toBe("reg.example.com/prod-sum-model:3");
    expect(Number(d!.spec.template.spec.containers[0].resources.limits[GPU_RESOURCE])).toBe(1);
    expect(d!.spec.template.spec.containers[0].env).toContainEqual({ name: "MODE", value: "fast" });
    // The warm-up travels as the replicas' variables, so every pod the Deployment starts warms up.
    expect(d!.spec.template.spec.containers[0].env).toEqual(expect.arrayContaining([
      { name: "CLIPPER_WARMUP_INPUT", value: "[1,2.5]" }, { name: "CLIPPER_WARMUP_BATCHES", value: "3" },
    ]));
    // The HPA alternative to `clipper autoscale` follows, commented out: applying the output creates no HPA.
    const commented = r.stdout.split("\n").filter((l) => l.startsWith("# ")).map((l) => l.slice(2));
    const hpa = parseAllDocuments(commented.slice(commented.indexOf("---")).join("\n"))
      .map((doc) => (doc as { toJS(): Json }).toJS()).find((o) => o?.kind === "HorizontalPodAutoscaler");
    expect(commented.join("\n")).toMatch(/metrics adapter .* never both/s);
    expect(hpa).toMatchObject({
      apiVersion: "autoscaling/v2",
      spec: {
        scaleTargetRef: { apiVersion: "apps/v1", kind: "Deployment", name: "clipper-prod-sum-model-3" },
        minReplicas: 2, maxReplicas: 8,
        metrics: [{ type: "External", external: { metric: { name: "clipper_model_queue_depth", selector: { matchLabels: { model: "sum-model:3" } } } } }],
      },
    });
  });

  it("checks the model's files as the image build would: --model-path a directory, --requirements a file", async () => {
    const deploy = (...extra: string[]) => runCli(["deploy-model", "m", "--version", "1", "--input-type", "doubles", "--framework", "python",
      "--predict", predict, ...extra, "--manager", "kubernetes", "--dry-run"], env);
    const notDir = await deploy("--model-path", predict);
    expect([notDir.code, notDir.stderr.split("\n")[0], notDir.stdout]).toEqual([2, `error: model path ${predict} is not a directory`, ""]);
    const noReqs = await deploy("--requirements", join(home, "requirements.txt"));
    expect([noReqs.code, noReqs.stderr.split("\n")[0], noReqs.stdout]).toEqual([2, `error: requirements file ${join(home, "requirements.txt")} does not exist`, ""]);
    // With --image nothing is built: only --predict, when given, is checked (a live deploy does the same).
    const image = await runCli(["deploy-model", "m", "--version", "1", "--input-type", "doubles", "--framework", "python",
      "--image", "reg/m:1", "--requirements", join(home, "requirements.txt"), "--manager", "kubernetes", "--dry-run"], env);
    expect(image.code, image.stderr).toBe(0);
  });

  it("docs/kubernetes.md's GitOps example: the model's pods pull with the same secrets as the cluster's", async () => {
    const doc = readFileSync(fileURLToPath(new URL("../docs/kubernetes.md", import.meta.url)), "utf8");
    const section = doc.slice(doc.indexOf("## GitOps: the dry run"));
    const block = /```sh\n([\s\S]*?)```/.exec(section)![1]!;
    // Each `clipper ...` command, continuations joined, comments and the `> file` redirect dropped.
    const commands = block.replace(/\\\n\s*/g, " ").split("\n").map((l) => l.replace(/#.*$/, "").trim())
      .filter((l) => l.startsWith("clipper ")).map((l) => l.replace(/\s*>.*$/, "").split(/\s+/).slice(1));
    expect(commands.map((c) => c[0])).toEqual(["start", "deploy-model"]);
    const pullSecrets = async (args: string[]) => {
      const r = await runCli([...args.map((a) => (a === "./predict.py" ? predict : a)), "-o", "json"], env);
      expect(r.code, r.stderr).toBe(0);
      const deployments = (JSON.parse(r.stdout).items as Json[]).filter((o) => o.kind === "Deployment");
      return deployments.map((d) => (d.spec.template.spec.imagePullSecrets ?? []).map((x: Json) => x.name));
    };
    const [cluster, model] = [await pullSecrets(commands[0]!), await pullSecrets(commands[1]!)];
    expect(cluster[0]).toEqual(["regcred"]);
    expect(model).toEqual([cluster[0]]);
  });

  it("prints a JSON List with -o json", async () => {
    const r = await runCli(["deploy-model", "m", "--version", "1", "--input-type", "d", "--framework", "node",
      "--image", "reg/m:1", "--manager", "kubernetes", "--dry-run", "-o", "json"], env);
    expect(r.code).toBe(0);
    expect(r.json).toMatchObject({ apiVersion: "v1", kind: "List", items: [{ kind: "Deployment", metadata: { name: "clipper-default-m-1" } }] });
  });

  it("refuses, in one line, a live start without a kubeconfig, --manager on deploy-model without --dry-run, and --dry-run elsewhere", async () => {
    const live = await runCli(["start", "--manager", "kubernetes", "--runtime-image", "reg/rt:1"], env);
    expect(live.code).toBe(2);
    expect(live.stderr.split("\n").filter((l) => l.startsWith("error:"))).toEqual([`error: the kubeconfig ${env.KUBECONFIG} (from $KUBECONFIG) does not exist`]);
    expect(live.stdout).toBe("");
    // No kubeconfig anywhere: said in words, with the fix, not the client's "HTTP protocol is not allowed ...".
    const none = await runCli(["start", "--manager", "kubernetes", "--runtime-image", "reg/rt:1"], { ...env, KUBECONFIG: "", HOME: home });
    expect(none.code).toBe(2);
    expect(none.stderr).toContain(`error: no kubeconfig found: --kubeconfig is not given, $KUBECONFIG is not set and ${join(home, ".kube", "config")} does not exist\n`);
    expect(none.stderr).toMatch(/^hint: point at a kubeconfig with --kubeconfig FILE or KUBECONFIG=FILE .*--context NAME/m);
    expect(none.stderr).not.toMatch(/skipTLSVerify/);
    const deploy = await runCli(["deploy-model", "m", "--version", "1", "--input-type", "d", "--framework", "node",
      "--image", "reg/m:1", "--manager", "kubernetes"], env);
    expect(deploy.code).toBe(2);
    expect(deploy.stderr.split("\n")[0]).toBe(`error: ${MANAGER_NEEDS_DRY_RUN}`);
    const local = await runCli(["start", "--dry-run"], env);
    expect(local.code).toBe(2);
    expect(local.stderr).toContain("--dry-run is available with --manager kubernetes only");
  });

  it("renders the same text the CLI prints (library and CLI agree)", () => {
    const text = renderManifests(modelManifests({ ...MODEL, rpcCredential: undefined }), "yaml");
    expect(text.startsWith("---\napiVersion: apps/v1\nkind: Deployment\n")).toBe(true);
  });
});

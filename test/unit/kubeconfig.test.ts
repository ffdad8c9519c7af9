/**
 * The kubeconfig a live Kubernetes manager loads: each common way it cannot work (none at all,
 * a missing or broken file, no current context, a context without a cluster, a cluster without a
 * server, plain HTTP) is refused up front with a USAGE error that names the file and the fix,
 * never the client library's "HTTP protocol is not allowed when skipTLSVerify is not set or false".
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { describe, expect, it } from "vitest";
import { ClipperError } from "../../src/errors.js";
import * as sdk from "@kubernetes/client-node";
import { loadKubeConfig, type KubeconfigChoice } from "../../src/managers/kubernetes/kubeconfig.js";
import { KubernetesContainerManager } from "../../src/managers/kubernetes/kubernetes-manager.js";
import { writeKubeconfig } from "../support/fake-kube-api.js";
import { tempDirs } from "../support/temp-dirs.js";

const tempDir = tempDirs("clipper-kubeconfig-");
const NO_POD_TOKEN = "/nonexistent/serviceaccount/token";

/** The refusal loadKubeConfig throws: a USAGE ClipperError (exit 2) with a hint. */
function refusal(choice: KubeconfigChoice, env: NodeJS.ProcessEnv): ClipperError {
  try {
    loadKubeConfig(sdk, choice, env, NO_POD_TOKEN);
  } catch (err) {
    expect(err).toBeInstanceOf(ClipperError);
    const e = err as ClipperError;
    expect(e.code).toBe("USAGE");
    expect(e.exitCode).toBe(2);
    expect(e.hint).toBeTruthy();
    expect(e.message).not.toMatch(/skipTLSVerify|localhost:8080/);
    return e;
  }
  throw new Error("the kubeconfig was accepted");
}

function kubeconfig(lines: string[]): string {
  return ["apiVersion: v1", "kind: Config", ...lines].join("\n");
}

const CLUSTERS = ["clusters:", "- name: prod", "  cluster:", "    server: https://10.0.0.1:6443"];
const USERS = ["users:", "- name: me", "  user:", "    token: t"];
const CONTEXTS = ["contexts:", "- name: a", "  context:", "    cluster: prod", "    user: me", "- name: b", "  context:", "    cluster: gone", "    user: me"];

describe("loadKubeConfig", () => {
  it("with no --kubeconfig, no $KUBECONFIG and no ~/.kube/config (outside a pod) names all three and how to get one", async () => {
    const home = await tempDir();
    const e = refusal({}, { HOME: home });
    expect(e.message).toBe(`no kubeconfig found: --kubeconfig is not given, $KUBECONFIG is not set and ${join(home, ".kube", "config")} does not exist`);
    expect(e.hint).toMatch(/--kubeconfig FILE or KUBECONFIG=FILE .*--context NAME/);
  });

  it("names a missing file and where it came from: --kubeconfig, or any entry of $KUBECONFIG", async () => {
    const dir = await tempDir();
    const missing = join(dir, "nope.yaml");
    expect(refusal({ kubeconfig: missing }, { HOME: dir }).message).toBe(`the kubeconfig ${missing} (from --kubeconfig) does not exist`);
    writeFileSync(join(dir, "good.yaml"), kubeconfig([...CLUSTERS, ...USERS, ...CONTEXTS, "current-context: a"]));
    expect(refusal({}, { HOME: dir, KUBECONFIG: [join(dir, "good.yaml"), missing].join(delimiter) }).message)
      .toBe(`the kubeconfig ${missing} (from $KUBECONFIG) does not exist`);
  });

  it("says what is wrong with a file it cannot read: YAML errors, an empty file, a cluster without a server, a directory", async () => {
    const dir = await tempDir();
    const file = join(dir, "config");
    writeFileSync(file, "clusters: [");
    expect(refusal({ kubeconfig: file }, {}).message).toMatch(new RegExp(`^cannot read the kubeconfig ${file} \\(from --kubeconfig\\): .+`));
    writeFileSync(file, "");
    expect(refusal({ kubeconfig: file }, {}).message).toBe(`cannot read the kubeconfig ${file} (from --kubeconfig): it is empty or not a kubeconfig`);
    writeFileSync(file, kubeconfig(["clusters:", "- name: prod", "  cluster:", "    insecure-skip-tls-verify: true", ...USERS, ...CONTEXTS]));
    const noServer = refusal({ kubeconfig: file }, {});
    expect(noServer.message).toBe(`cluster entry 1 of the kubeconfig ${file} (from --kubeconfig) has no server address`);
    expect(noServer.hint).toContain("kubectl config set-cluster NAME --server https://HOST:PORT");
    expect(refusal({ kubeconfig: dir }, {}).message).toMatch(/^cannot read the kubeconfig .*: EISDIR/);
  });

  it("refuses a kubeconfig without a current context, listing its contexts (--context picks one), or without any context", async () => {
    const home = await tempDir();
    mkdirSync(join(home, ".kube"));
    const file = join(home, ".kube", "config");
    writeFileSync(file, kubeconfig([...CLUSTERS, ...USERS, ...CONTEXTS]));
    const e = refusal({}, { HOME: home });
    expect(e.message).toBe(`the kubeconfig ${file} (from ~/.kube/config) has no current context (its contexts: a, b)`);
    expect(e.hint).toBe("pick one with --context NAME, or make it the default with `kubectl config use-context NAME`");
    expect(loadKubeConfig(sdk, { context: "a" }, { HOME: home }, NO_POD_TOKEN).getCurrentCluster()?.server).toBe("https://10.0.0.1:6443");
    // A name that only an object's prototype has is no context either.
    for (const name of ["zz", "constructor", "__proto__"]) {
      expect(refusal({ context: name }, { HOME: home }).message).toBe(`the kubeconfig ${file} (from ~/.kube/config) has no context named ${name} (its contexts: a, b)`);
    }
    writeFileSync(file, kubeconfig([...CLUSTERS, ...USERS, "current-context: a"]));
    const none = refusal({}, { HOME: home });
    expect(none.message).toBe(`the kubeconfig ${file} (from ~/.kube/config) defines no contexts`);
    expect(none.hint).toMatch(/--kubeconfig FILE or KUBECONFIG=FILE/);
  });

  it("refuses a current context that is not defined, or that names a cluster the file does not define", async () => {
    const dir = await tempDir();
    const file = join(dir, "config");
    writeFileSync(file, kubeconfig([...CLUSTERS, ...USERS, ...CONTEXTS, "current-context: c"]));
    expect(refusal({ kubeconfig: file }, {}).message).toBe(`the kubeconfig ${file} (from --kubeconfig) names c as its current context but defines no such context (its contexts: a, b)`);
    const e = refusal({ kubeconfig: file, context: "b" }, {});
    expect(e.message).toBe(`context b of the kubeconfig ${file} (from --kubeconfig) names the cluster gone, which it does not define`);
  });

  it("refuses a plain-HTTP server unless its cluster skips TLS verification (what the client library would refuse later)", async () => {
    const dir = await tempDir();
    const file = join(dir, "config");
    writeFileSync(file, kubeconfig(["clusters:", "- name: local", "  cluster:", "    server: http://127.0.0.1:8080", ...USERS,
      "contexts:", "- name: a", "  context:", "    cluster: local", "    user: me", "current-context: a"]));
    const e = refusal({}, { KUBECONFIG: file });
    expect(e.message).toBe(`cluster local (context a) of the kubeconfig ${file} (from $KUBECONFIG) has a plain-HTTP server, http://127.0.0.1:8080, ` +
      "which the Kubernetes client refuses without insecure-skip-tls-verify");
    expect(e.hint).toContain("https://");
    // The test API server's kubeconfig says insecure-skip-tls-verify: accepted, namespace and all.
    writeKubeconfig(file, "http://127.0.0.1:8080", "ml");
    expect(loadKubeConfig(sdk, {}, { KUBECONFIG: file }, NO_POD_TOKEN).getCurrentCluster()?.server).toBe("http://127.0.0.1:8080");
  });

  it("is what the Kubernetes manager loads: creating it refuses the same way, and reads the context's namespace", async () => {
    const dir = await tempDir();
    const missing = join(dir, "nope");
    await expect(KubernetesContainerManager.create({ cluster: "c", kubeconfig: missing })).rejects.toThrow(`the kubeconfig ${missing} (from --kubeconfig) does not exist`);
    const file = writeKubeconfig(join(dir, "fake"), "http://127.0.0.1:8080", "ml");
    expect((await KubernetesContainerManager.create({ cluster: "c", kubeconfig: file })).namespace).toBe("ml");
  });
});

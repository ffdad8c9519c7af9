/**
 * The one module that loads the Kubernetes SDK (@kubernetes/client-node): the classes the manager
 * and the autoscaler host use. They import it with `await import(...)` when a manager is created,
 * so importing the library does not load the SDK (test/lazy-sdks.test.ts); everywhere else only its
 * types are imported. A static re-export, so the runtime image's import scan still finds the package.
 */
export { AppsV1Api, CoreV1Api, CustomObjectsApi, KubeConfig, Log, NetworkingV1Api, RbacAuthorizationV1Api } from "@kubernetes/client-node";

/** The SDK's classes, as `await import("./kube-client.js")` gives them. */
export type KubeSdk = typeof import("./kube-client.js");


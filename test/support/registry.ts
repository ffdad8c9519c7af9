/**
 * What registry tests share: the local registry started by scripts/start-registry.sh (loopback
 * only, plain HTTP, which the Docker daemon allows for 127.0.0.0/8 without configuration), whether
 * it answers, and its HTTP API (tags, manifests, deletes) to check what a push left there.
 */
import { IN_CI } from "./docker.js";

/** `127.0.0.1:PORT` of the test registry (CLIPPER_TEST_REGISTRY, default 127.0.0.1:5055). Never anything but loopback. */
export const TEST_REGISTRY = testRegistry();

function testRegistry(): string {
  const address = process.env.CLIPPER_TEST_REGISTRY?.trim() || "127.0.0.1:5055";
  if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}:\d+$/.test(address)) {
    throw new Error(`CLIPPER_TEST_REGISTRY=${address} is not a loopback 127.x.x.x:PORT address; the registry tests talk to loopback only`);
  }
  return address;
}

/** Media types a pushed image's manifest may have: Docker v2 (schema 2) and OCI, single or multi-platform. */
export const MANIFEST_TYPES = [
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.oci.image.index.v1+json",
];

export interface RegistryAnswer {
  status: number;
  headers: Headers;
  body: string;
}

/** One request to the test registry's API, e.g. registryRequest("GET", "/v2/"); bounded by `timeoutMs`. */
export async function registryRequest(method: string, path: string, headers: Record<string, string> = {}, timeoutMs = 10_000): Promise<RegistryAnswer> {
  const response = await fetch(`http://${TEST_REGISTRY}${path}`, { method, headers, signal: AbortSignal.timeout(timeoutMs) });
  return { status: response.status, headers: response.headers, body: await response.text() };
}

/**
 * Why registry tests should be skipped (one line), or undefined when the registry answers
 * `GET /v2/`. Always undefined in CI (CI=true): there the tests run, and fail if it is missing.
 */
export async function registrySkipReason(): Promise<string | undefined> {
  if (IN_CI) return undefined;
  try {
    const answer = await registryRequest("GET", "/v2/", {}, 2000);
    if (answer.status === 200) return undefined;
    return `the registry at ${TEST_REGISTRY} answers GET /v2/ with ${answer.status} (the tests need one without credentials; scripts/start-registry.sh)`;
  } catch {
    return `no registry answers at http://${TEST_REGISTRY}/v2/ (start one with scripts/start-registry.sh; it needs the docker-registry package)`;
  }
}

/** The tags the registry lists for `repository` (e.g. "clipper-test/test-sum:1" -> "clipper-test/test-sum"); [] when it has none. */
export async function registryTags(repository: string): Promise<string[]> {
  const answer = await registryRequest("GET", `/v2/${repository}/tags/list`);
  if (answer.status === 404) return [];
  if (answer.status !== 200) throw new Error(`GET /v2/${repository}/tags/list answered ${answer.status}: ${answer.body}`);
  return (JSON.parse(answer.body) as { tags?: string[] | null }).tags ?? [];
}

/** GET of a manifest by tag or digest, accepting Docker v2 and OCI manifests (and indexes). */
export function registryManifest(repository: string, reference: string): Promise<RegistryAnswer> {
  return registryRequest("GET", `/v2/${repository}/manifests/${reference}`, { Accept: MANIFEST_TYPES.join(", ") });
}

/** Deletes a manifest by digest (the test registry allows deletes); the blobs stay until a garbage collection. */
export async function deleteManifest(repository: string, digest: string): Promise<void> {
  const answer = await registryRequest("DELETE", `/v2/${repository}/manifests/${digest}`);
  if (answer.status !== 202 && answer.status !== 404) throw new Error(`DELETE /v2/${repository}/manifests/${digest} answered ${answer.status}: ${answer.body}`);
}

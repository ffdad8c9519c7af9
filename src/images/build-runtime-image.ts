/**
 * buildRuntimeImage: the image the Docker manager runs the management daemon and the query frontend
 * from, built locally from this package's compiled runtime (no registry needed). Its content hash
 * (Dockerfile and every file) is a label and part of the tag, so an unchanged runtime is never
 * rebuilt: an image carrying the same hash is reused. With a registry the tag is prefixed with it and
 * the image (built or reused) is pushed there, for managers whose hosts pull it (Kubernetes).
 */
import type Docker from "dockerode";
import { packageRoot } from "../../runtime/shared/package-root.js";
import { dockerError } from "../docker/errors.js";
import { ClipperError } from "../errors.js";
import { BuildContext } from "./context.js";
import { daemonPlatform, pushImage, runDockerBuild, splitTag } from "./docker-build.js";
import { RUNTIME_HASH_LABEL, runtimeDockerfile } from "./dockerfile.js";
import { CLIPPER_ROOT, REGISTRY_ADDRESS, RUNTIME_REPOSITORY } from "./layout.js";
import { addNodeRuntime, readPackageJson } from "./node-runtime.js";
import type { BuildProgress, RuntimeImageOptions } from "./types.js";

export { RUNTIME_REPOSITORY };

/**
 * What the runtime image runs besides dist/runtime (relative to dist): the autoscaler host, which
 * holds the Docker and Kubernetes clients. An entry of its own, so that only it imports them: the
 * frontend and the daemon load nothing more than before, and model images never contain them.
 */
export const RUNTIME_IMAGE_EXTRA_ENTRIES: readonly string[] = ["src/autoscaler/host-main.js"];

/** Path of a compiled runtime entry inside the runtime image, e.g. runtimeImageEntry("frontend/main.js"). */
export function runtimeImageEntry(relative: string): string {
  return `${CLIPPER_ROOT}/dist/runtime/${relative}`;
}

/**
 * Builds (or reuses) the runtime image and returns its tag: `clipper-runtime:<version>-<hash12>`,
 * or with `registry` `<registry>/clipper-runtime:<version>-<hash12>`, pushed there before this
 * returns (progress as `push` and `pushed` events; a failed push throws ImageBuildError, code
 * BUILD_FAILED). A registry that is not host[:port][/path] is a USAGE error, before any build; an
 * empty one is no registry.
 */
export async function buildRuntimeImage(docker: Docker, options: RuntimeImageOptions = {}, onProgress?: BuildProgress): Promise<string> {
  const registry = options.registry?.trim().replace(/\/+$/, "");
  if (registry && !REGISTRY_ADDRESS.test(registry)) {
    throw new ClipperError("USAGE", `registry '${options.registry}' is not a registry address (host[:port][/path])`);
  }
  const root = packageRoot();
  const version = readPackageJson(root).version ?? "0.0.0";
  const platform = await daemonPlatform(docker);
  const context = new BuildContext();
  await addNodeRuntime(context, { target: "clipper", platform, root, extraEntries: [...RUNTIME_IMAGE_EXTRA_ENTRIES] });
  const unlabelled = runtimeDockerfile({ baseImage: options.baseImage, version });
  const hash = await context.hash(unlabelled.text);
  const name = options.tag ?? `${RUNTIME_REPOSITORY}:${version}-${hash.slice(0, 12)}`;
  const tag = registry ? `${registry}/${name}` : name;

  const existing = await findByHash(docker, hash);
  if (existing) {
    if (!existing.tags.includes(tag)) {
      const { repository, tag: version } = splitTag(tag);
      try {
        await docker.getImage(existing.id).tag({ repo: repository, tag: version });
      } catch (err) {
        throw dockerError(err, `tagging the runtime image ${existing.id} as ${tag}`);
      }
    }
    onProgress?.({ type: "reused", tag, imageId: existing.id });
  } else {
    const dockerfile = runtimeDockerfile({ baseImage: options.baseImage, version, hash });
    await runDockerBuild(docker, { context, dockerfile, tag, onProgress, what: "runtime image" });
  }
  if (registry) await pushImage(docker, tag, onProgress, options.registryAuth);
  return tag;
}

async function findByHash(docker: Docker, hash: string): Promise<{ id: string; tags: string[] } | undefined> {
  try {
    const images = await docker.listImages({ filters: JSON.stringify({ label: [`${RUNTIME_HASH_LABEL}=${hash}`] }) });
    const image = images.sort((a, b) => b.Created - a.Created)[0];
    return image ? { id: image.Id, tags: (image.RepoTags ?? []).filter((t) => t !== "<none>:<none>") } : undefined;
  } catch (err) {
    const mapped = dockerError(err, "listing images");
    throw mapped instanceof ClipperError ? mapped : new ClipperError("MANAGER", mapped.message);
  }
}

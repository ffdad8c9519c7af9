/**
 * The image builder: model images per framework (Python flavours and Node) and the runtime image,
 * from the Dockerfile templates in templates/docker/, sent to the daemon as a tar-stream context.
 * docs/images.md describes the layout, the base images and the failure messages. The package's
 * `clipper-serve/images` entry; unlike the main entry it loads dockerode, for dockerClient().
 */
export { buildModelImage, checkModelImageRequest } from "./build-model-image.js";
export { buildRuntimeImage, runtimeImageEntry, RUNTIME_REPOSITORY } from "./build-runtime-image.js";
export { DEFAULT_BASE_IMAGES, NODE_BASE_IMAGE, defaultBaseImage, frameworkPackages } from "./base-images.js";
export { modelDockerfile, NO_PIP_HINT, runtimeDockerfile, RUNTIME_HASH_LABEL, RUNTIME_VERSION_LABEL, type DockerfileStep, type RenderedDockerfile } from "./dockerfile.js";
export { pushImage } from "./docker-build.js";
export { buildEventText } from "./progress.js";
export { ImageBuildError, type FailedStep } from "./errors.js";
export { CLIPPER_ROOT, MODEL_ROOT, modelImageTag, modelLayout } from "./layout.js";
export type { BuildEvent, BuildProgress, BuiltImage, ModelImageRequest, RegistryAuth, RuntimeImageOptions } from "./types.js";
export { dockerClient } from "../docker/client.js";

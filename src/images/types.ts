/** The image builder's own types: what to build, and what it reports while building. */
import type { InputType } from "../../runtime/shared/input-types.js";
import type { ModelFramework } from "../managers/container-manager.js";

/** What `buildModelImage` builds: one model version's image. */
export interface ModelImageRequest {
  cluster: string;
  name: string;
  version: string;
  framework: ModelFramework;
  /** Absolute path of the predict file (predict.py, model.ts, model.mjs, ...). */
  predictFile: string;
  /** The function (export) to call; `predict` when empty. */
  predictFunction: string;
  /** Directory of artifacts copied to /model (CLIPPER_MODEL_PATH); default the predict file's directory. */
  modelPath?: string;
  /** pip requirement specifiers installed in the image (`--pkg`). */
  packages?: string[];
  /** A requirements.txt installed with pip in the image. */
  requirementsFile?: string;
  /** npm packages installed with npm in the image (kept out of the bundle); for `node`. */
  npmDependencies?: string[];
  /** Overrides the framework's default base image (docs/images.md). */
  baseImage?: string;
  /** Registry host (and path) the tag is prefixed with; the image is pushed when given. */
  registry?: string;
  /** Credentials sent with the push; default what `docker login` stored for the registry (docs/images.md). */
  registryAuth?: RegistryAuth;
  /** Build on the framework's CUDA base image. */
  gpu?: boolean;
  inputType: InputType;
}

/**
 * Registry credentials, sent with a push as the daemon's `X-Registry-Auth` (the Engine API's
 * AuthConfig). Without them a push uses what `docker login` stored (src/images/docker-credentials.ts).
 */
export interface RegistryAuth {
  username: string;
  password: string;
  /** The registry, e.g. `registry.example.com:5000` or `https://index.docker.io/v1/`. */
  serveraddress?: string;
  /** An identity (refresh) token, exchanged by the daemon for an access token; username and password then empty. */
  identitytoken?: string;
}

export interface BuiltImage {
  /** e.g. `default-sum-model:1`, or `registry.example.com/default-sum-model:1`. */
  tag: string;
  /** sha256:... */
  imageId: string;
}

export interface RuntimeImageOptions {
  /** Must hold Node.js 20 or newer; default node:20-bookworm-slim. */
  baseImage?: string;
  /** Default `clipper-runtime:<package version>-<short content hash>`; prefixed `<registry>/` when a registry is given. */
  tag?: string;
  /**
   * Registry host[:port] with an optional path, e.g. `registry.example.com:5000/team`: the tag
   * becomes `<registry>/clipper-runtime:<version>-<hash>` and the image is pushed there (also when
   * it was reused rather than built). Without it the image stays local.
   */
  registry?: string;
  /** Credentials sent with the push; default what `docker login` stored for the registry (docs/images.md). */
  registryAuth?: RegistryAuth;
}

/**
 * What a build reports as it goes. A CLI shows `step` in a spinner and may print `output` lines;
 * a failed build throws ImageBuildError rather than reporting an event.
 */
export type BuildEvent =
  /** The build context is packed: `files` files, `bytes` bytes before tar. */
  | { type: "context"; files: number; bytes: number }
  /** The daemon started a Dockerfile step. `name` is ours, when the Dockerfile is ours. */
  | { type: "step"; index: number; total: number; instruction: string; name?: string }
  /** One line the current step printed. */
  | { type: "output"; line: string }
  /** The image is built and tagged. */
  | { type: "built"; tag: string; imageId: string }
  /** An image with the same content already exists: nothing was built. */
  | { type: "reused"; tag: string; imageId: string }
  /** Push progress of one layer (or of the whole push when `layer` is absent). */
  | { type: "push"; status: string; layer?: string; progress?: string }
  | { type: "pushed"; tag: string };

export type BuildProgress = (event: BuildEvent) => void;

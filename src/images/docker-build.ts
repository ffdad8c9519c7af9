/**
 * Sends a build context to the daemon and reads its answer. A failed step does not reject the
 * request: the daemon reports it as an `errorDetail` event in the stream, so the stream is scanned,
 * the step that was running and its last output lines are kept, and a failure becomes an
 * ImageBuildError naming that step. The classic builder tags only on success and (with forcerm)
 * removes the failed step's container, so a failed build leaves no image tagged.
 */
import { StringDecoder } from "node:string_decoder";
import type Docker from "dockerode";
import { ClipperError } from "../errors.js";
import { dockerError } from "../docker/errors.js";
import { findRegistryCredentials, loginCommand, registryHost } from "./docker-credentials.js";
import type { BuildContext } from "./context.js";
import { NO_PIP_HINT, type RenderedDockerfile, type RenderedInstruction } from "./dockerfile.js";
import { ImageBuildError, type FailedStep } from "./errors.js";
import { nodePlatform, type TargetPlatform } from "./node-runtime.js";
import type { BuildProgress, RegistryAuth } from "./types.js";

/** Output lines of the failing step kept for the error. */
const KEPT_LINES = 25;

interface DaemonEvent {
  stream?: string;
  status?: string;
  id?: string;
  progress?: string;
  progressDetail?: { current?: number; total?: number };
  aux?: { ID?: string; Tag?: string; Digest?: string };
  error?: string;
  errorDetail?: { code?: number; message?: string };
}

/** Calls `onEvent` for each JSON event of a daemon progress stream; resolves at its end. */
export function readEvents(stream: NodeJS.ReadableStream, onEvent: (event: DaemonEvent) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const decoder = new StringDecoder("utf8");
    let buffer = "";
    let done = false;
    const handle = (line: string): void => {
      const text = line.trim();
      if (!text) return;
      let event: DaemonEvent;
      try {
        event = JSON.parse(text) as DaemonEvent;
      } catch {
        event = { stream: `${text}\n` };
      }
      onEvent(event);
    };
    const finish = (err?: Error): void => {
      if (done) return;
      done = true;
      if (err) return reject(err);
      buffer += decoder.end();
      for (const line of buffer.split("\n")) handle(line);
      resolve();
    };
    stream.on("data", (chunk: Buffer | string) => {
      buffer += typeof chunk === "string" ? chunk : decoder.write(chunk);
      let newline: number;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        try {
          handle(line);
        } catch (err) {
          finish(err as Error);
        }
      }
    });
    stream.on("error", (err: Error) => finish(err));
    stream.on("end", () => finish());
    stream.on("close", () => finish());
  });
}

const STEP_LINE = /^Step (\d+)\/(\d+) : (.*)$/;
const INTERNAL_LINE = /^( ---> |Removing intermediate container |Successfully built |Successfully tagged |Sending build context)/;

export interface BuildRequest {
  context: BuildContext;
  dockerfile: RenderedDockerfile;
  tag: string;
  onProgress?: BuildProgress;
  /** Extra words for the failure message, e.g. "model image". */
  what?: string;
}

/** Builds and tags an image from a context (the Dockerfile is added to it); returns the image id. */
export async function runDockerBuild(docker: Docker, request: BuildRequest): Promise<string> {
  const { context, dockerfile, tag, onProgress } = request;
  const what = request.what ?? "image";
  context.addData("Dockerfile", dockerfile.text);
  onProgress?.({ type: "context", files: context.fileCount, bytes: context.byteCount });

  let stream: NodeJS.ReadableStream;
  try {
    stream = await docker.buildImage(context.pack(), { t: tag, rm: true, forcerm: true, dockerfile: "Dockerfile" });
  } catch (err) {
    const mapped = dockerError(err, `building ${what} ${tag}`);
    if (mapped instanceof ClipperError) throw mapped;
    throw new ImageBuildError(`building ${what} ${tag} failed: ${oneLine(mapped.message)}`,
      "the daemon refused the build request; see the message for why", "", undefined, tag);
  }

  let step: FailedStep | undefined;
  let stepInfo: RenderedInstruction | undefined;
  let partial = "";
  let output: string[] = [];
  let errorMessage: string | undefined;
  let builtId: string | undefined;

  const line = (text: string): void => {
    const match = STEP_LINE.exec(text);
    if (match) {
      const index = Number(match[1]);
      const instruction = match[3]!;
      stepInfo = dockerfile.instructions[index - 1];
      // The daemon prints the instruction as written; only trust our step's name when it matches.
      if (stepInfo && normalizeSpace(stepInfo.instruction) !== normalizeSpace(instruction)) stepInfo = undefined;
      step = { index, total: Number(match[2]), instruction, ...(stepInfo ? { name: stepInfo.step } : {}) };
      output = [];
      onProgress?.({ type: "step", index, total: step.total, instruction, ...(stepInfo ? { name: stepInfo.step } : {}) });
      return;
    }
    const built = /^Successfully built ([0-9a-f]+)/.exec(text);
    if (built) builtId = built[1];
    if (INTERNAL_LINE.test(text)) return;
    output.push(text);
    if (output.length > KEPT_LINES * 4) output = output.slice(-KEPT_LINES);
    onProgress?.({ type: "output", line: text });
  };

  await readEvents(stream, (event) => {
    if (typeof event.stream === "string") {
      partial += event.stream;
      const lines = partial.split(/\r?\n/);
      partial = lines.pop() ?? "";
      for (const l of lines) line(stripAnsi(l).replace(/\r/g, ""));
    } else if (event.status && !event.progressDetail?.total) {
      line(`${event.id ? `${event.id}: ` : ""}${event.status}`);
    }
    if (event.aux?.ID) builtId = event.aux.ID;
    if (event.errorDetail || event.error) errorMessage = event.errorDetail?.message ?? event.error ?? "unknown error";
  }).catch((err: unknown) => {
    throw new ImageBuildError(`building ${what} ${tag}: the connection to the Docker daemon failed (${oneLine(String((err as Error)?.message ?? err))})`,
      "is dockerd still running? build again", output.slice(-KEPT_LINES).join("\n"), step, tag);
  });
  if (partial) line(stripAnsi(partial));

  if (errorMessage !== undefined) throw buildFailure(what, tag, step, stepInfo, errorMessage, output.slice(-KEPT_LINES));

  let imageId: string;
  try {
    imageId = (await docker.getImage(tag).inspect()).Id;
  } catch (err) {
    if (!builtId) throw dockerError(err, `inspecting ${tag} after its build`);
    imageId = builtId.startsWith("sha256:") ? builtId : `sha256:${builtId}`;
  }
  onProgress?.({ type: "built", tag, imageId });
  return imageId;
}

function buildFailure(
  what: string,
  tag: string,
  step: FailedStep | undefined,
  info: RenderedInstruction | undefined,
  errorMessage: string,
  output: string[],
): ImageBuildError {
  const exit = /returned a non-zero code: (\d+)/.exec(errorMessage);
  const reason = exit ? `the command exited with code ${exit[1]}` : oneLine(errorMessage);
  const where = step ? ` at step ${step.index}/${step.total} (${step.name ?? step.instruction})` : "";
  const details = output.length > 0 ? output.join("\n") : errorMessage.trim();
  let hint = info?.hint ?? "the failing step's output is shown above; fix its cause and build again";
  if (/No module named pip|pip: not found/.test(details)) {
    hint = NO_PIP_HINT;
  }
  return new ImageBuildError(`building ${what} ${tag} failed${where}: ${reason}`, hint, details, step, tag);
}

/**
 * Pushes `tag` to its registry, reporting per-layer progress; a failed push throws ImageBuildError.
 * `auth` is sent as given; without it, the credentials the docker CLI would use for the tag's
 * registry (docker login, credential helpers: findRegistryCredentials), else none.
 */
export async function pushImage(docker: Docker, tag: string, onProgress?: BuildProgress, auth?: RegistryAuth): Promise<void> {
  const { repository, tag: version } = splitTag(tag);
  const found = auth ? undefined : await findRegistryCredentials(tag);
  const sent = auth ?? found?.auth;
  let stream: NodeJS.ReadableStream;
  try {
    stream = await docker.getImage(repository).push({ tag: version, ...(sent ? { authconfig: sent } : {}) });
  } catch (err) {
    const mapped = dockerError(err, `pushing ${tag}`);
    if (mapped instanceof ClipperError) throw mapped;
    throw new ImageBuildError(`pushing ${tag} failed: ${oneLine(mapped.message)}`, "check the registry address and your credentials", "", undefined, tag);
  }
  let errorMessage: string | undefined;
  const lines: string[] = [];
  await readEvents(stream, (event) => {
    if (event.errorDetail || event.error) errorMessage = event.errorDetail?.message ?? event.error;
    else if (event.status) {
      if (!event.progressDetail?.total) lines.push(`${event.id ? `${event.id}: ` : ""}${event.status}`);
      onProgress?.({ type: "push", status: event.status, ...(event.id ? { layer: event.id } : {}), ...(event.progress ? { progress: event.progress } : {}) });
    }
  });
  if (errorMessage !== undefined) {
    const refused = /unauthori[sz]ed|authentication required|denied|no basic auth credentials|incorrect username or password|\b401\b/i.test(errorMessage);
    throw new ImageBuildError(`pushing ${tag} failed: ${oneLine(errorMessage)}`,
      refused ? pushAuthHint(registryHost(tag), auth ? "registryAuth" : found?.source)
        : "check that the registry is reachable from the Docker daemon (an insecure registry must be listed in its daemon.json)",
      lines.slice(-KEPT_LINES).join("\n"), undefined, tag);
  }
  onProgress?.({ type: "pushed", tag });
}

/** What to do when the registry refused a push: log in when nothing was sent, else check what was. */
function pushAuthHint(host: string, source: string | undefined): string {
  const login = `\`${loginCommand(host)}\``;
  if (!source) {
    return `no credentials for ${host} were found: log in with ${login} (or configure a credential helper for it), then check that you may push to the repository`;
  }
  if (source === "registryAuth") return `the registry refused the credentials in registryAuth: fix them, and check that the repository exists and you may push to it`;
  return `the registry refused the credentials from ${source}: log in again with ${login}, and check that the repository exists and you may push to it`;
}

/** `host:5000/a/b:1` -> { repository: "host:5000/a/b", tag: "1" }. */
export function splitTag(reference: string): { repository: string; tag: string } {
  const slash = reference.lastIndexOf("/");
  const colon = reference.lastIndexOf(":");
  if (colon > slash) return { repository: reference.slice(0, colon), tag: reference.slice(colon + 1) };
  return { repository: reference, tag: "latest" };
}

/** The daemon's platform in Node's naming, for pruning native binaries of other platforms. */
export async function daemonPlatform(docker: Docker): Promise<TargetPlatform> {
  try {
    const version = await docker.version();
    return nodePlatform(version.Os, version.Arch);
  } catch (err) {
    throw dockerError(err, "asking the Docker daemon for its version");
  }
}

function oneLine(text: string): string {
  return text.trim().split("\n")[0]!.trim();
}

function normalizeSpace(text: string): string {
  return text.replace(/\s+/g, " ").trim();
}

function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*[A-Za-z]/g, "");
}

/**
 * Image build and push failures: a ClipperError (code BUILD_FAILED, so one line and exit code 8 in
 * the CLI) that also names the step that failed and carries that step's last output lines.
 */
import { ClipperError } from "../errors.js";

/** Where in a Dockerfile a build stopped. */
export interface FailedStep {
  /** 1-based, as the daemon counts ("Step 6/13"). */
  index: number;
  total: number;
  /** Our name for the step ("the model's requirements"), when the Dockerfile is ours. */
  name?: string;
  /** The Dockerfile instruction, e.g. `RUN ["python3", "-m", "pip", ...]`. */
  instruction: string;
}

export class ImageBuildError extends ClipperError {
  override readonly name = "ImageBuildError";

  constructor(
    message: string,
    hint: string | undefined,
    /** The failing step's last output lines (pip's error, the compiler's message, ...), newline-joined. */
    readonly details: string = "",
    readonly step?: FailedStep,
    /** The image the build was for. */
    readonly image?: string,
  ) {
    super("BUILD_FAILED", message, hint);
  }
}

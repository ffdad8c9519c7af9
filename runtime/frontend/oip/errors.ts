/** An Open Inference Protocol request that cannot be answered: the HTTP status and `{"error"}` text. */
export class OipError extends Error {
  override readonly name = "OipError";
  constructor(readonly status: number, message: string, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

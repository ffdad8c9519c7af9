/**
 * A ZeroMQ ROUTER playing the query frontend, for tests that drive a model-container runtime
 * process directly: it binds, receives and decodes what the container sends, does the handshake
 * and sends predict requests through our codec.
 */
import * as zmq from "zeromq";
import { decodeContainerMessage, encodeFrontendMessage, type ContainerMessage } from "../../runtime/rpc/codec.js";
import { encodeInput, type InputType } from "../../runtime/shared/input-types.js";

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export type Received = { identity: Buffer; frames: Buffer[]; message: ContainerMessage };

/** A ROUTER playing the query frontend. */
export class Frontend {
  readonly router = new zmq.Router({ linger: 0 });
  constructor(readonly port: number, private readonly describeProcess: () => string) {}

  async bind(): Promise<void> {
    // Rebinding a port a closed ROUTER just released may take a moment.
    for (let attempt = 0; ; attempt++) {
      try {
        await this.router.bind(`tcp://127.0.0.1:${this.port}`);
        return;
      } catch (e) {
        if (attempt >= 50) throw e;
        await sleep(100);
      }
    }
  }

  /** The next message from any container, within timeoutMs. */
  async receive(timeoutMs: number): Promise<Received> {
    this.router.receiveTimeout = Math.max(1, Math.round(timeoutMs));
    let parts: Buffer[];
    try {
      parts = await this.router.receive();
    } catch (e) {
      throw new Error(`no message from the container within ${timeoutMs} ms (${String(e)})\n${this.describeProcess()}`);
    }
    const [identity, ...frames] = parts;
    return { identity: identity!, frames, message: decodeContainerMessage(frames) };
  }

  /** The next message of `kind` (others, such as heartbeats, are skipped), within timeoutMs. */
  async next<K extends ContainerMessage["kind"]>(
    kind: K,
    timeoutMs = 10_000,
    accept: (r: Received & { message: Extract<ContainerMessage, { kind: K }> }) => boolean = () => true,
  ): Promise<Received & { message: Extract<ContainerMessage, { kind: K }> }> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${kind} message within ${timeoutMs} ms\n${this.describeProcess()}`);
      const r = await this.receive(left);
      if (r.message.kind === kind) {
        const typed = r as Received & { message: Extract<ContainerMessage, { kind: K }> };
        if (accept(typed)) return typed;
      }
    }
  }

  async send(identity: Buffer, frames: Buffer[]): Promise<void> {
    await this.router.send([identity, ...frames]);
  }

  /** Waits for a heartbeat, asks for metadata, and returns the metadata message. */
  async handshake(timeoutMs = 10_000) {
    const hb = await this.next("heartbeat", timeoutMs);
    await this.send(hb.identity, encodeFrontendMessage({ kind: "heartbeat", requestMetadata: true }));
    return this.next("metadata", timeoutMs, (r) => r.identity.equals(hb.identity));
  }

  async predict(identity: Buffer, msgId: number, inputType: InputType, inputs: unknown[], timeoutMs = 10_000) {
    const frames = encodeFrontendMessage({ kind: "predict", msgId, inputType, inputs: inputs.map((x) => encodeInput(inputType, x)) });
    await this.send(identity, frames);
    const r = await this.next("response", timeoutMs, (x) => x.message.msgId === msgId);
    return r.message.outputs;
  }

  close(): void {
    if (!this.router.closed) this.router.close();
  }
}

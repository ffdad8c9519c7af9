/**
 * Clipper RPC v3 frames (see docs/compatibility.md and shared/design/rpc-v3-vectors.json).
 * Every message starts with an empty delimiter frame; integers are little-endian.
 * Decoding validates every frame and throws RpcFrameError rather than trusting a peer.
 */
import { MAX_NAME } from "../shared/names.js";
import { INPUT_TYPE_CODES, type InputType, inputTypeFromCode } from "../shared/input-types.js";

export const RPC_VERSION = 3;

/**
 * Drain (3) is our extension (docs/compatibility.md): a container that is stopping sends it, and the
 * frontend answers it with the same type once the container gets no new batch from it. Clipper's
 * frontend reads and ignores a type it does not know, so a container must not count on the answer.
 */
export const MessageType = { NewContainer: 0, ContainerContent: 1, Heartbeat: 2, Drain: 3 } as const;
export const HeartbeatType = { KeepAlive: 0, RequestContainerMetadata: 1 } as const;
export const RequestType = { Predict: 0, Feedback: 1 } as const;

/** What a model container sends to the query frontend. */
export type ContainerMessage =
  | { kind: "heartbeat" }
  /** The container is stopping: send it no new batch (answered with a drain acknowledgement). */
  | { kind: "drain" }
  | { kind: "metadata"; name: string; version: string; inputType: InputType; rpcVersion: number }
  | { kind: "response"; msgId: number; outputs: string[] };

/** What the query frontend sends to a model container. */
export type FrontendMessage =
  | { kind: "heartbeat"; requestMetadata: boolean }
  /** Every batch for the container was sent before this message; none will follow it. */
  | { kind: "drainAck" }
  | { kind: "predict"; msgId: number; inputType: InputType; inputs: Buffer[] };

export class RpcFrameError extends Error {}

const EMPTY = Buffer.alloc(0);

export function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0, 0);
  return b;
}

function u64(value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(value), 0);
  return b;
}

function u64Array(values: number[]): Buffer {
  const b = Buffer.alloc(values.length * 8);
  values.forEach((v, i) => b.writeBigUInt64LE(BigInt(v), i * 8));
  return b;
}

function readU32(frame: Buffer | undefined, what: string): number {
  if (!frame || frame.length !== 4) throw new RpcFrameError(`${what}: expected a 4-byte frame, got ${frame?.length ?? "none"}`);
  return frame.readUInt32LE(0);
}

function readU64(frame: Buffer, offset: number, what: string): number {
  const v = frame.readBigUInt64LE(offset);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RpcFrameError(`${what}: value ${v} is too large`);
  return Number(v);
}

/** Reads a u64 header-length frame and a header of u64s, checking that they agree. */
function readHeader(lenFrame: Buffer | undefined, header: Buffer | undefined, what: string): number[] {
  if (!lenFrame || lenFrame.length !== 8) throw new RpcFrameError(`${what}: expected an 8-byte header length`);
  const declared = readU64(lenFrame, 0, what);
  if (!header || header.length !== declared || declared % 8 !== 0) {
    throw new RpcFrameError(`${what}: header is ${header?.length ?? 0} bytes, declared ${declared}`);
  }
  return Array.from({ length: declared / 8 }, (_, i) => readU64(header, i * 8, what));
}

function checkDelimiter(frames: Buffer[]): void {
  if (frames.length === 0 || frames[0]!.length !== 0) throw new RpcFrameError("missing empty delimiter frame");
}

export function encodeContainerMessage(m: ContainerMessage): Buffer[] {
  switch (m.kind) {
    case "heartbeat":
      return [EMPTY, u32(MessageType.Heartbeat)];
    case "drain":
      return [EMPTY, u32(MessageType.Drain)];
    case "metadata":
      return [
        EMPTY,
        u32(MessageType.NewContainer),
        Buffer.from(m.name, "utf8"),
        Buffer.from(m.version, "utf8"),
        Buffer.from(String(INPUT_TYPE_CODES[m.inputType]), "utf8"),
        u32(m.rpcVersion),
      ];
    case "response": {
      const outputs = m.outputs.map((o) => Buffer.from(o, "utf8"));
      const header = u64Array([outputs.length, ...outputs.map((o) => o.length)]);
      return [EMPTY, u32(MessageType.ContainerContent), u32(m.msgId), u64(header.length), header, ...outputs];
    }
  }
}

/** An input type code is a decimal number of one digit (shared/input-types.ts); a few bytes of slack. */
const MAX_INPUT_TYPE_BYTES = 8;

/** Names are ASCII (shared/names.ts): a frame over MAX_NAME bytes cannot hold a valid one. */
function checkNameFrame(frame: Buffer, kind: string): void {
  if (frame.length > MAX_NAME) throw new RpcFrameError(`container metadata: ${kind} of ${frame.length} bytes, over ${MAX_NAME}`);
}

export function decodeContainerMessage(frames: Buffer[]): ContainerMessage {
  checkDelimiter(frames);
  const type = readU32(frames[1], "message type");
  switch (type) {
    case MessageType.Heartbeat:
      return { kind: "heartbeat" };
    case MessageType.Drain:
      // Our own message: exactly the two frames, so that nothing can hide behind it.
      if (frames.length !== 2) throw new RpcFrameError(`drain: expected 2 frames, got ${frames.length}`);
      return { kind: "drain" };
    case MessageType.NewContainer: {
      if (frames.length < 5) throw new RpcFrameError("container metadata: expected name, version and input type frames");
      // Sizes first, before any text is decoded: a name becomes a label value and a log field.
      checkNameFrame(frames[2]!, "model name");
      checkNameFrame(frames[3]!, "model version");
      if (frames[4]!.length > MAX_INPUT_TYPE_BYTES) throw new RpcFrameError(`container metadata: input type code of ${frames[4]!.length} bytes, over ${MAX_INPUT_TYPE_BYTES}`);
      const name = frames[2]!.toString("utf8");
      const version = frames[3]!.toString("utf8");
      const codeText = frames[4]!.toString("utf8");
      const inputType = /^\d+$/.test(codeText) ? inputTypeFromCode(Number(codeText)) : undefined;
      if (!inputType) throw new RpcFrameError(`container metadata: unknown input type '${codeText}'`);
      // Clipper registers a container only when it states RPC version 3.
      const rpcVersion = frames.length > 5 ? readU32(frames[5], "rpc version") : 0;
      return { kind: "metadata", name, version, inputType, rpcVersion };
    }
    case MessageType.ContainerContent: {
      const msgId = readU32(frames[2], "message id");
      const header = readHeader(frames[3], frames[4], "response header");
      const [n, ...lengths] = header;
      if (n === undefined || lengths.length !== n || frames.length !== 5 + n) {
        throw new RpcFrameError(`response: header announces ${n ?? "?"} outputs, got ${frames.length - 5} frames`);
      }
      const outputs = frames.slice(5).map((f, i) => {
        if (f.length !== lengths[i]) throw new RpcFrameError(`response: output ${i} is ${f.length} bytes, header says ${lengths[i]}`);
        return f.toString("utf8");
      });
      return { kind: "response", msgId, outputs };
    }
    default:
      throw new RpcFrameError(`unknown message type ${type}`);
  }
}

export function encodeFrontendMessage(m: FrontendMessage): Buffer[] {
  switch (m.kind) {
    case "heartbeat":
      return [
        EMPTY,
        u32(RPC_VERSION),
        u32(MessageType.Heartbeat),
        u32(m.requestMetadata ? HeartbeatType.RequestContainerMetadata : HeartbeatType.KeepAlive),
      ];
    case "drainAck":
      return [EMPTY, u32(RPC_VERSION), u32(MessageType.Drain)];
    case "predict": {
      const header = u64Array([INPUT_TYPE_CODES[m.inputType], m.inputs.length, ...m.inputs.map((b) => b.length)]);
      return [
        EMPTY,
        u32(RPC_VERSION),
        u32(MessageType.ContainerContent),
        u32(m.msgId),
        u32(RequestType.Predict),
        u64(header.length),
        header,
        ...m.inputs,
      ];
    }
  }
}

export function decodeFrontendMessage(frames: Buffer[]): FrontendMessage {
  checkDelimiter(frames);
  const version = readU32(frames[1], "rpc version");
  if (version !== RPC_VERSION) throw new RpcFrameError(`unsupported rpc version ${version}`);
  const type = readU32(frames[2], "message type");
  if (type === MessageType.Heartbeat) {
    const hb = readU32(frames[3], "heartbeat type");
    return { kind: "heartbeat", requestMetadata: hb === HeartbeatType.RequestContainerMetadata };
  }
  if (type === MessageType.Drain) {
    if (frames.length !== 3) throw new RpcFrameError(`drain acknowledgement: expected 3 frames, got ${frames.length}`);
    return { kind: "drainAck" };
  }
  if (type !== MessageType.ContainerContent) throw new RpcFrameError(`unknown message type ${type}`);
  const msgId = readU32(frames[3], "message id");
  const requestType = readU32(frames[4], "request type");
  if (requestType !== RequestType.Predict) throw new RpcFrameError(`unsupported request type ${requestType}`);
  const [typeCode, n, ...sizes] = readHeader(frames[5], frames[6], "input header");
  const inputType = typeCode === undefined ? undefined : inputTypeFromCode(typeCode);
  if (!inputType) throw new RpcFrameError(`unknown input type code ${typeCode}`);
  if (n === undefined || sizes.length !== n || frames.length !== 7 + n) {
    throw new RpcFrameError(`predict: header announces ${n ?? "?"} inputs, got ${frames.length - 7} frames`);
  }
  const inputs = frames.slice(7);
  inputs.forEach((f, i) => {
    if (f.length !== sizes[i]) throw new RpcFrameError(`predict: input ${i} is ${f.length} bytes, header says ${sizes[i]}`);
  });
  return { kind: "predict", msgId, inputType, inputs };
}

/**
 * Our runtimes answer a failed batch with every output set to this marker plus the reason, since
 * RPC v3 has no error message; the frontend answers those queries at once instead of at the SLO.
 */
export const BATCH_ERROR_PREFIX = "\u0000clipper-batch-error\u0000";

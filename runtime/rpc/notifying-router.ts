/**
 * A ZeroMQ ROUTER that also tells us when a peer connects or disconnects (ZMQ_ROUTER_NOTIFY).
 * libzmq delivers each event as a two-frame message [identity, ""]: Clipper containers always
 * send at least a delimiter and a type frame, so the two never collide. This is how the frontend
 * notices a replica process that died without waiting for its heartbeat to go silent.
 */
import * as zmq from "zeromq";

const ZMQ_ROUTER_NOTIFY = 97;
const ZMQ_NOTIFY_CONNECT = 1;
const ZMQ_NOTIFY_DISCONNECT = 2;

export interface NotifyingRouterOptions {
  /** Authenticate peers with PLAIN, judged by the ZAP handler of this domain (zap-handler.ts). */
  plainZapDomain?: string;
  /** A peer that sends a bigger frame is disconnected before the frame is allocated (ZMQ_MAXMSGSIZE). */
  maxMessageSize?: number;
}

export class NotifyingRouter extends zmq.Router {
  constructor(options: NotifyingRouterOptions = {}) {
    super({
      mandatory: true,
      linger: 0,
      ...(options.maxMessageSize !== undefined ? { maxMessageSize: options.maxMessageSize } : {}),
      ...(options.plainZapDomain !== undefined ? { plainServer: true, zapDomain: options.plainZapDomain } : {}),
    });
    this.setInt32Option(ZMQ_ROUTER_NOTIFY, ZMQ_NOTIFY_CONNECT | ZMQ_NOTIFY_DISCONNECT);
  }
}

/** Whether a message received on a NotifyingRouter is a connect/disconnect notification. */
export function isPeerNotification(message: Buffer[]): boolean {
  return message.length === 2 && message[1]!.length === 0;
}

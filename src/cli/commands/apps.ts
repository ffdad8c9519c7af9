/** register-app, set-policy, unregister-app, link, unlink, apps: applications, policies and links. */
import { ClipperConnection } from "../../connection.js";
import { formatPolicy } from "../../policy-spec.js";
import { emit, style, table, type OutputOptions } from "../output.js";

type Common = OutputOptions & { cluster?: string };

export async function registerApp(
  name: string,
  options: Common & {
    inputType: string; defaultOutput: string; sloMs?: number; sloMicros?: number; policy?: Record<string, unknown>; shedWith503?: boolean;
  },
): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const sloMicros = options.sloMicros ?? (options.sloMs ?? 100) * 1000;
  const message = await conn.registerApplication({
    name, inputType: options.inputType, defaultOutput: options.defaultOutput, sloMicros, policy: options.policy,
    shedWith503: options.shedWith503,
  });
  emit(options, {
    message, name, input_type: options.inputType, default_output: options.defaultOutput, latency_slo_micros: sloMicros,
    ...(options.policy ? { policy: options.policy } : {}),
  }, [
    style.ok(message),
    `Next: deploy a model and ${style.cmd(`clipper link ${name} MODEL`)}`,
  ]);
}

export async function setPolicy(app: string, policy: Record<string, unknown>, options: Common): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const message = await conn.setApplicationPolicy(app, policy);
  emit(options, { message, name: app, policy }, [style.ok(message), style.dim(`policy: ${formatPolicy(policy)}`)]);
}

export async function unregisterApp(name: string, options: Common): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const message = await conn.unregisterApplication(name);
  emit(options, { message }, style.ok(message));
}

export async function link(app: string, model: string, options: Common): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const message = await conn.linkModelToApp(app, model);
  emit(options, { message }, [style.ok(message), `Try: ${style.cmd(`clipper predict ${app} '<input JSON>'`)}`]);
}

export async function unlink(app: string, model: string, options: Common): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const message = await conn.unlinkModelFromApp(app, model);
  emit(options, { message }, style.ok(message));
}

export async function apps(options: Common): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const all = await conn.getAllApps(true);
  emit(options, all, all.length === 0
    ? style.dim("no applications (register one with `clipper register-app`)")
    : table(["NAME", "INPUT TYPE", "SLO (ms)", "DEFAULT OUTPUT", "POLICY", "LINKED MODELS"],
      all.map((a) => [
        a.name, a.input_type, String(a.latency_slo_micros / 1000), a.default_output, formatPolicy(a.policy), a.linked_models.join(",") || "-",
      ])));
}

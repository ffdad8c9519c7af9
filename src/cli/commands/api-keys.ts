/** api-key create, list, revoke: keys for the query API (docs/security.md). */
import { ClipperConnection } from "../../connection.js";
import { emit, style, table, type OutputOptions } from "../output.js";

type Common = OutputOptions & { cluster?: string };

export async function createApiKey(options: Common & { app?: string; rate?: number }): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const created = await conn.createApiKey({ app: options.app, rate: options.rate });
  emit(options, created, [
    created.key,
    style.dim(`API key '${created.id}'${created.app ? ` for application '${created.app}'` : " for every application"}` +
      `${created.rate ? `, ${created.rate} requests/s` : ""}. It is shown only now: the cluster keeps only its hash.`),
    style.dim("Send it as 'Authorization: Bearer KEY' or 'X-Clipper-Key: KEY' (needed when the cluster runs with --query-auth keys)."),
  ]);
}

export async function listApiKeys(options: Common): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const keys = await conn.getApiKeys();
  emit(options, keys, keys.length === 0
    ? style.dim("no API keys")
    : table(["ID", "APP", "RATE/S", "CREATED"], keys.map((k) => [k.id, k.app ?? "*", k.rate === undefined ? "-" : String(k.rate), k.created_at])));
}

export async function revokeApiKey(id: string, options: Common): Promise<void> {
  const conn = await ClipperConnection.connect({ cluster: options.cluster });
  const message = await conn.revokeApiKey(id);
  emit(options, { message, id }, style.ok(message));
}

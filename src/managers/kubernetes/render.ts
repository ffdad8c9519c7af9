/**
 * Manifests as text: multi-document YAML (what `kubectl apply -f -` reads), or one JSON `List`.
 * Each object is validated against the Kubernetes OpenAPI schemas first, so nothing invalid is
 * ever printed.
 */
import { Document, stringify } from "yaml";
import type { KubernetesObject } from "./manifests.js";

export type ManifestFormat = "yaml" | "json";

/** Plain JSON of each object, after its schema validation (throws on an invalid object). */
export function plainObjects(objects: readonly KubernetesObject[]): Record<string, unknown>[] {
  return objects.map((o) => {
    o.validate();
    return JSON.parse(JSON.stringify(o)) as Record<string, unknown>;
  });
}

export function renderManifests(objects: readonly KubernetesObject[], format: ManifestFormat, header?: string): string {
  const plain = plainObjects(objects);
  if (format === "json") return `${JSON.stringify({ apiVersion: "v1", kind: "List", items: plain }, null, 2)}\n`;
  return plain.map((o, i) => {
    const doc = new Document(o);
    if (i === 0 && header) doc.commentBefore = header.split("\n").map((l) => ` ${l}`).join("\n");
    return `---\n${stringify(doc, { lineWidth: 0 })}`;
  }).join("");
}

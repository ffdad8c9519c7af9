/**
 * Removing the model images a cluster built (`clipper stop --remove-images`), and none other. An
 * image counts as built by the cluster when it carries the labels the image builder writes
 * (modelLabels: the cluster, the model's name and version) and the tag is the one those labels give
 * (`[registry/]<cluster>-<name>:<version>`, modelImageTag). Both, because Docker copies labels into
 * every image built FROM ours: a user's image on top of a model image has our labels but its own
 * tag, and a tag of ours moved onto another image (`docker tag`) lacks the labels.
 *
 * Removal is by tag and never forced: Docker untags, deletes the image once no tag is left, and
 * refuses (kept, with the reason) an image a container still uses. The runtime image is shared by
 * every cluster of the Docker host (found by content hash), so it is never this cluster's to remove.
 */
import type Docker from "dockerode";
import { dockerError } from "../docker/errors.js";
import { ClipperError } from "../errors.js";
import { MODEL_IMAGE_LABEL } from "./dockerfile.js";
import { modelImageTag } from "./layout.js";

/** An image as listed by the daemon, in the fields the choice needs. */
export interface ListedImage {
  id: string;
  tags: readonly string[];
  labels: Readonly<Record<string, string>>;
}

export interface ImageRemoval {
  /** Tags removed (an image whose last tag went is deleted). */
  removed: string[];
  /** Tags left in place, with the daemon's reason (a container uses the image, for one). */
  kept: { image: string; reason: string }[];
}

/** The tags of `images` that the cluster's builds made (see the module comment). */
export function builtImageTags(cluster: string, images: readonly ListedImage[]): string[] {
  const tags: string[] = [];
  for (const image of images) {
    const labels = image.labels;
    const name = labels[MODEL_IMAGE_LABEL.name];
    const version = labels[MODEL_IMAGE_LABEL.version];
    if (labels[MODEL_IMAGE_LABEL.cluster] !== cluster || !name || !version) continue;
    const local = modelImageTag({ cluster, name, version });
    // Ours: the local tag, or the same under a registry prefix (`host:5000/path/<local>`).
    tags.push(...image.tags.filter((tag) => tag === local || tag.endsWith(`/${local}`)));
  }
  return [...new Set(tags)].sort();
}

/** Removes the model images `cluster` built from the Docker daemon; see the module comment. */
export async function removeBuiltImages(docker: Docker, cluster: string): Promise<ImageRemoval> {
  let listed: ListedImage[];
  try {
    const images = await docker.listImages({ filters: JSON.stringify({ label: [`${MODEL_IMAGE_LABEL.cluster}=${cluster}`] }) });
    listed = images.map((i) => ({ id: i.Id, tags: (i.RepoTags ?? []).filter((t) => t !== "<none>:<none>"), labels: i.Labels ?? {} }));
  } catch (err) {
    const mapped = dockerError(err, `listing the images of cluster ${cluster}`);
    throw mapped instanceof ClipperError ? mapped : new ClipperError("MANAGER", mapped.message);
  }
  const removal: ImageRemoval = { removed: [], kept: [] };
  for (const tag of builtImageTags(cluster, listed)) {
    try {
      await docker.getImage(tag).remove({ force: false });
      removal.removed.push(tag);
    } catch (err) {
      const status = (err as { statusCode?: number }).statusCode;
      // Gone meanwhile (removed with an earlier tag, or by someone else): nothing left to do.
      if (status === 404) continue;
      const mapped = dockerError(err, `removing image ${tag}`);
      if (mapped instanceof ClipperError) throw mapped;
      removal.kept.push({ image: tag, reason: oneLine(mapped.message) });
    }
  }
  return removal;
}

function oneLine(text: string): string {
  // dockerode prefixes the daemon's JSON message with "(HTTP code 409) conflict - ".
  return text.trim().split("\n")[0]!.replace(/^\(HTTP code \d+\)\s*[^-]*-\s*/, "").trim();
}

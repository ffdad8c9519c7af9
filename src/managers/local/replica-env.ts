/**
 * What a local model replica may inherit from the environment `clipper start` ran in. Model code
 * runs as the user, so it could read anything the CLI's environment holds (cloud credentials, the
 * supervisor's own settings); it gets only what an interpreter needs to run, and the deployment
 * passes anything else explicitly (`deploy-model --env KEY=VALUE`). docs/security.md lists these.
 */

/** Variables passed through unchanged when the CLI's environment has them, and why. */
export const INHERITED_ENV: Readonly<Record<string, string>> = {
  PATH: "finding python3, node and the programs a model runs",
  HOME: "Python's user site-packages, caches under ~ (pip, torch hub, Hugging Face)",
  USER: "libraries that ask who runs them (getpass, os.userInfo)",
  LOGNAME: "the same, for libraries that read LOGNAME",
  LANG: "the locale: text encoding of stdio and files",
  LANGUAGE: "the locale's message language",
  TZ: "the time zone a model formats times in",
  TMPDIR: "where temporary files go",
  LD_LIBRARY_PATH: "shared libraries of a non-system install (CUDA, conda)",
  CUDA_VISIBLE_DEVICES: "the GPUs the user allowed, unless --gpu chooses them",
};

/** Prefixes of variables passed through: the locale categories. */
export const INHERITED_ENV_PREFIXES = ["LC_"] as const;

/** The part of `env` a replica inherits. */
export function inheritedEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter(
      (entry): entry is [string, string] =>
        entry[1] !== undefined && (Object.hasOwn(INHERITED_ENV, entry[0]) || INHERITED_ENV_PREFIXES.some((p) => entry[0].startsWith(p))),
    ),
  );
}

/**
 * What a local model replica may inherit from the environment `clipper start` ran in. Model code
 * runs as the user, so it could read anything the CLI's environment holds (cloud credentials, the
 * supervisor's own settings); it gets only what an interpreter needs to run, and the deployment
 * passes anything else explicitly (`deploy-model --env KEY=VALUE`). docs/security.md lists these.
 */

const PROXY_REASON = "the proxy a model downloads through (weights, tokenizers); without it a model that downloads fails " +
  "behind a proxy. Proxy URLs can carry credentials (http://user:password@proxy), which the model can then read";

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
  HTTP_PROXY: PROXY_REASON,
  HTTPS_PROXY: PROXY_REASON,
  NO_PROXY: PROXY_REASON,
  http_proxy: PROXY_REASON,
  https_proxy: PROXY_REASON,
  no_proxy: PROXY_REASON,
  SSL_CERT_FILE: "the CA bundle OpenSSL trusts (a company CA that re-signs TLS through a proxy)",
  SSL_CERT_DIR: "the CA directory OpenSSL trusts, the same",
  REQUESTS_CA_BUNDLE: "the CA bundle Python's requests (and so huggingface_hub) trusts, the same",
  NODE_EXTRA_CA_CERTS: "extra CAs a Node model trusts, the same",
  HF_HOME: "where Hugging Face keeps downloaded models: the user's cache rather than a second download",
  TORCH_HOME: "where torch hub keeps downloaded weights, the same",
  XDG_CACHE_HOME: "the cache directory many libraries default to, the same",
  VIRTUAL_ENV: "the virtualenv the user activated (its python3 comes first on PATH; some tools also read this)",
  CONDA_PREFIX: "the conda environment the user activated, for libraries that find their files through it",
  PYTHONPATH: "the user's own module path; the supervisor still puts the Python runtime first on it",
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

/**
 * The `clipper` command line: definitions only. Each command's module is imported when the command
 * runs, so `clipper --help` stays fast and never loads a container SDK.
 */
import { Command, InvalidArgumentError, Option, type OptionValues } from "@commander-js/extra-typings";
import { ClipperError, ERROR_CODES } from "../errors.js";
import { MODEL_FRAMEWORKS } from "../managers/container-manager.js";
import {
  DEFAULT_BATCH_BUDGET_MS,
  DEFAULT_CACHE_BYTES,
  DEFAULT_MAX_BATCH,
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_OIP_TIMEOUT_MS,
  DEFAULT_REPLICA_TIMEOUT_MS,
  MIN_RPC_FRAME_BYTES,
  DEFAULT_MAX_IN_FLIGHT,
  MAX_MAX_IN_FLIGHT,
  MAX_FRONTEND_WORKERS,
} from "../../runtime/shared/frontend-defaults.js";
import { parsePolicySpec, PolicySpecError } from "../policy-spec.js";
import { errorJson } from "./error-json.js";
import { commandPathOf, commanderUsageError, jsonRequested } from "./usage-errors.js";
import { allowedHostsArg, batchSizeArg, collect, envArg, fractionArg, inputTypeArg, intArg, jsonArg, portArg, positiveArg, rateArg, registryArg, sinceArg, stepsArg } from "./parse.js";
import { DEFAULT_ROLLOUT_MIN_QUERIES, DEFAULT_ROLLOUT_STEP_S, DEFAULT_ROLLOUT_STEPS, MAX_ROLLOUT_STEP_S } from "../../runtime/shared/rollout.js";
import {
  DEFAULT_SCALE_DOWN_DELAY_S, DEFAULT_TARGET_QUEUE_PER_REPLICA, MAX_AUTOSCALE_REPLICAS, MAX_SCALE_DOWN_DELAY_S, MAX_TARGET_QUEUE_PER_REPLICA,
} from "../../runtime/shared/autoscaling.js";
import { QUERY_AUTH_MODES } from "../../runtime/shared/api-keys.js";
import { MAX_MAX_CONNECTIONS } from "../../runtime/shared/connection-limit.js";
import { DEFAULT_RPC_AUTH, RPC_AUTH_MODES } from "../../runtime/shared/rpc-auth.js";
import { DEFAULT_QUERY_LOG_MAX_MB, MAX_QUERY_LOG_MAX_MB } from "../../runtime/shared/query-log.js";
import { DEFAULT_WARMUP_BATCHES, MAX_WARMUP_BATCHES, MAX_WARMUP_INPUTS } from "../../runtime/shared/warmup.js";
import { DEFAULT_WARMUP_COUNT } from "../warmup-from-log.js";
import { DEFAULT_REPLAY_IN_FLIGHT, DEFAULT_REPLAY_RATE } from "../replay.js";

const clusterOption = () => new Option("--cluster <name>", "cluster to talk to (default: the current one from `clipper start`)");
const jsonOption = () => new Option("--json", "print machine-readable JSON");
const dryRunOption = () => new Option("--dry-run", "kubernetes: print the objects it would create instead of creating them (no cluster needed)");
const outputOption = () => new Option("-o, --output <format>", "kubernetes --dry-run: manifest format").choices(["yaml", "json"] as const).default("yaml" as const);
const namespaceOption = () => new Option("--namespace <name>", "kubernetes: namespace of every object (default: the kubeconfig context's, else default)");
const kubeconfigOption = () => new Option("--kubeconfig <file>", "kubernetes: kubeconfig file (default: $KUBECONFIG or ~/.kube/config)");
const kubeContextOption = () => new Option("--context <name>", "kubernetes: kubeconfig context (default: its current one)");
const pullSecretOption = () => new Option("--image-pull-secret <name>", "kubernetes: a Secret the pods pull their images with (repeatable)").argParser(collect);
/** The interpreter rule of src/python/interpreter.ts, as the --python flags describe it. */
const PYTHON_RULE = "$CLIPPER_PYTHON, else the first of python3 on PATH and /usr/bin/python3 that imports numpy";

function dryRunNeedsKubernetes(): never {
  throw new ClipperError("USAGE", "--dry-run is available with --manager kubernetes only");
}

const POLICY_HELP = "selection policy: NAME or NAME:key=value,... or JSON, e.g. ensemble:threshold=0.6, " +
  "exp3:gamma=0.1, exp4:eta=0.5, canary:1=95,2=5, cascade:models=fast|slow,threshold=0.8 (see docs/policies.md)";

function policyArg(value: string): Record<string, unknown> {
  try {
    return parsePolicySpec(value);
  } catch (err) {
    if (err instanceof PolicySpecError) throw new InvalidArgumentError(err.message);
    throw err;
  }
}

/** Runs a command body; known errors become one line and an exit code (the reporter loads only then). */
async function run(json: boolean | undefined, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    process.exitCode = (await import("./output.js")).reportError(err, { json });
  }
}

/** The command line; `argv` (as process.argv) only decides how commander's own usage errors are reported. */
export function buildProgram(argv: readonly string[] = []): Command {
  const json = jsonRequested(argv);
  const program = new Command()
    .name("clipper")
    .description("Serve models behind a low-latency REST API (Clipper-compatible)")
    .version("0.1.0")
    // Subcommands have their own --version (a model version): program options must come first.
    .enablePositionalOptions()
    .showHelpAfterError("(run with --help for usage)")
    // Under --json commander's text (and its help after an error) gives way to the JSON below.
    .configureOutput({ outputError: (str, write) => (json ? undefined : write(str)), ...(json ? { writeErr: () => undefined } : {}) })
    // Usage errors exit as every other usage error (help and --version exit 0); commander's default would be 1.
    .exitOverride((err) => {
      if (err.exitCode !== 0 && json) process.stdout.write(errorJson(commanderUsageError(err.message, commandPathOf(program, argv))));
      process.exit(err.exitCode === 0 ? 0 : ERROR_CODES.USAGE.exitCode);
    });

  program.command("start")
    .description("start the query frontend and management daemon")
    .addOption(new Option("--manager <kind>", "where to run: local processes, Docker containers, or a Kubernetes cluster").choices(["local", "docker", "kubernetes"] as const).default("local" as const))
    .option("--runtime-base-image <image>", "docker: base of the image the frontends run from (must hold Node 20)")
    .option("--cluster <name>", "cluster name", "default")
    .option("--host <address>", "address the frontends and RPC listen on", "127.0.0.1")
    .option("--query-port <n>", "query REST port (0: any free port)", portArg, 1337)
    .option("--management-port <n>", "management REST port", portArg, 1338)
    .option("--rpc-port <n>", "model RPC port (local; docker and kubernetes keep it inside the cluster's network)", portArg, 7000)
    .option("--frontend-workers <n>", `query frontend processes sharing the query port, worker i on RPC port rpc-port + i ` +
      `(1 to ${MAX_FRONTEND_WORKERS}; each has its own cache and batches; every replica connects to each); docker: in the frontend ` +
      "container, kubernetes: in each frontend pod (which requests half a core per worker)", intArg(1, MAX_FRONTEND_WORKERS), 1)
    .option("--max-body-bytes <n>", "largest request body accepted (413 above)", intArg(1), DEFAULT_MAX_BODY_BYTES)
    .option("--max-connections <n>", "open HTTP connections per frontend process and on the management daemon; at the cap the " +
      "idlest connection is closed, or the new one answered 503 (default: each process's file-descriptor limit less a tenth, at least 128)",
      intArg(1, MAX_MAX_CONNECTIONS))
    .option("--startup-timeout-ms <n>", "how long to wait for the cluster to answer (default 60000; kubernetes 300000)", intArg(1))
    .option("--replica-timeout-ms <n>", "drop a replica silent for this long", intArg(100), DEFAULT_REPLICA_TIMEOUT_MS)
    .option("--cache-bytes <n>", "prediction cache bound per frontend, in bytes (0 disables)", intArg(0), DEFAULT_CACHE_BYTES)
    .option("--max-batch <n>", "largest batch for models without a fixed batch size", intArg(1), DEFAULT_MAX_BATCH)
    .option("--max-in-flight <n>", "batches a frontend keeps in flight to one replica, so it finds the next one waiting " +
      `when it answers one (1 to ${MAX_MAX_IN_FLIGHT}; 1: the next batch only after the answer)`, intArg(1, MAX_MAX_IN_FLIGHT), DEFAULT_MAX_IN_FLIGHT)
    .option("--batch-budget-ms <n>", "batch latency budget for models no application links", intArg(1), DEFAULT_BATCH_BUDGET_MS)
    .option("--no-admission", "never shed queries that cannot meet their SLO (Clipper's behaviour)")
    .option("--no-autoscaler", "run no autoscaler (`clipper autoscale` settings are kept but nothing acts on them); docker and kubernetes " +
      "then create no autoscaler container or Deployment and no credential to scale (docs/autoscaling.md)")
    .option("--oip-timeout-ms <n>", "deadline of Open Inference Protocol requests to models no application links", intArg(1), DEFAULT_OIP_TIMEOUT_MS)
    .addOption(new Option("--rpc-auth <mode>", "who may register as a model replica: plain (replicas with their version's credential, " +
      "handed out by the manager) or none (any process reaching the RPC port; for Clipper's own container images)")
      .choices(RPC_AUTH_MODES).default(DEFAULT_RPC_AUTH))
    .option("--max-rpc-frame-bytes <n>", "largest RPC frame the frontends accept from a replica (default: the frontend's)", intArg(MIN_RPC_FRAME_BYTES))
    .option("--python <path>", `local: Python interpreter for Python models that name none (must import numpy; default: chosen at each deploy: ${PYTHON_RULE})`)
    .option("--allowed-hosts <names>", "host names both HTTP APIs answer to besides loopback names and IP addresses " +
      "(comma list; '*': any, e.g. behind a load balancer); the manager's own container and Service names are added", allowedHostsArg)
    .addOption(new Option("--query-auth <mode>", "API keys on predict/update/OIP (`clipper api-key`): default none when --host is loopback, keys otherwise")
      .choices(QUERY_AUTH_MODES))
    .addOption(dryRunOption()).addOption(outputOption())
    .addOption(kubeconfigOption()).addOption(kubeContextOption()).addOption(namespaceOption())
    .option("--create-namespace", "kubernetes: create the namespace too")
    .option("--frontend-replicas <n>", "kubernetes: query frontend replicas", intArg(1), 1)
    .option("--service-type <[service=]type>", "kubernetes: ClusterIP | NodePort | LoadBalancer for the query Service, " +
      "or query=TYPE / management=TYPE (repeatable)", collect)
    .addOption(pullSecretOption())
    .option("--registry <host/path>", "kubernetes: push the runtime image built here to this registry (model images default to it too)", registryArg)
    .option("--runtime-image <image>", "docker, kubernetes: the image the frontends and management run from (already built, pushed or loaded)")
    .option("--token-secret <name>", "kubernetes: use this existing Secret (key `token`) as the management token instead of creating one")
    .option("--storage-class <name>", "kubernetes: storage class of the management state volume (default: the cluster's)")
    .addOption(jsonOption())
    .action((opts) => run(opts.json, async () => {
      const kubernetes = opts.manager === "kubernetes";
      const startupTimeoutMs = opts.startupTimeoutMs ?? (kubernetes ? 300_000 : 60_000);
      if (kubernetes && opts.dryRun) {
        return (await import("./commands/manifests.js")).startDryRun({ ...opts, startupTimeoutMs, namespace: opts.namespace ?? "default" });
      }
      if (opts.dryRun) dryRunNeedsKubernetes();
      const {
        dryRun: _d, output: _o, kubeconfig, context, namespace, createNamespace, frontendReplicas, serviceType, imagePullSecret,
        registry, runtimeImage, tokenSecret, storageClass, manager, ...rest
      } = opts;
      const { serviceTypes } = await import("./commands/manifests.js");
      return (await import("./commands/cluster.js")).start({
        ...rest, startupTimeoutMs, manager,
        ...(!kubernetes && runtimeImage ? { runtimeImage } : {}),
        ...(kubernetes ? {
          kubernetes: {
            kubeconfig, context, namespace, createNamespace, frontendReplicas, serviceTypes: serviceTypes(serviceType),
            imagePullSecrets: imagePullSecret, registry, runtimeImage, tokenSecret, storageClass,
            ...(opts.runtimeBaseImage ? { runtimeBaseImage: opts.runtimeBaseImage } : {}),
          },
        } : {}),
      });
    }));

  program.command("attach")
    .description("find a cluster that is already running (on Kubernetes, by its labels) and make it the current one")
    .addOption(new Option("--manager <kind>", "where it runs").choices(["local", "docker", "kubernetes"] as const).default("kubernetes" as const))
    .option("--cluster <name>", "cluster name", "default")
    .addOption(kubeconfigOption()).addOption(kubeContextOption()).addOption(namespaceOption())
    .addOption(jsonOption())
    .action((opts) => run(opts.json, async () => (await import("./commands/cluster.js")).attach(opts)));

  program.command("stop")
    .description("stop every process of the cluster")
    .addOption(clusterOption())
    .option("--keep-state", "keep the management daemon's state for the next start")
    .addOption(new Option("--remove-images", "then remove the model images this cluster built (build-model, deploy-model) from the " +
      "Docker daemon, and no other image (docs/docker.md)").conflicts("keepState"))
    .addOption(jsonOption())
    .action((opts) => run(opts.json, async () => (await import("./commands/cluster.js")).stop(opts)));

  program.command("status")
    .description("show the cluster: components and replicas (uptime, restarts, CPU, memory), queue and p99 per model version, links per application")
    .addOption(clusterOption()).addOption(jsonOption())
    .action((opts) => run(opts.json, async () => (await import("./commands/cluster.js")).status(opts)));

  program.command("dashboard")
    .description("print the URL of the cluster's live dashboard, and open it in a browser when there is a display")
    .option("--no-open", "only print the URL")
    .addOption(clusterOption()).addOption(jsonOption())
    .action((opts) => run(opts.json, async () => (await import("./commands/dashboard.js")).dashboard(opts)));

  program.command("logs")
    .description("show the logs of a component (management, frontend, <model>-<version>-<replica>) or of all")
    .argument("[component]")
    .option("--tail <n>", "lines per log", intArg(1), 100)
    .option("-f, --follow", "keep printing new lines (of replicas started later too) until Ctrl-C")
    .option("--since <duration|time>", "only lines since then: 10m, 1h30m, 2d, or a time such as 2026-12-03T07:00:00Z", (v: string) => sinceArg(v))
    .addOption(clusterOption()).addOption(new Option("--json", "print machine-readable JSON (with --follow or --since: one object per line)"))
    .action((component, opts) => run(opts.json, async () => (await import("./commands/cluster.js")).logs(component, opts)));

  program.command("register-app")
    .description("register an application")
    .argument("<name>")
    .requiredOption("--input-type <type>", "bytes | integers | floats | doubles | strings", inputTypeArg)
    .option("--default-output <text>", "answer when no prediction arrives in time", "None")
    .addOption(new Option("--slo-ms <n>", "latency objective in milliseconds").argParser(intArg(1)).conflicts("sloMicros"))
    .addOption(new Option("--slo-micros <n>", "latency objective in microseconds").argParser(intArg(1)))
    .option("--shed-with-503", "answer queries shed under overload with 503 and Retry-After instead of the default output")
    .option("--policy <spec>", POLICY_HELP, policyArg)
    .addOption(clusterOption()).addOption(jsonOption())
    .action((name, opts) => run(opts.json, async () => (await import("./commands/apps.js")).registerApp(name, opts)));

  program.command("set-policy")
    .description("change an application's selection policy")
    .argument("<app>").argument("<spec>", POLICY_HELP, policyArg)
    .addOption(clusterOption()).addOption(jsonOption())
    .action((app, spec, opts) => run(opts.json, async () => (await import("./commands/apps.js")).setPolicy(app, spec, opts)));

  program.command("unregister-app")
    .description("delete an application")
    .argument("<name>")
    .addOption(clusterOption()).addOption(jsonOption())
    .action((name, opts) => run(opts.json, async () => (await import("./commands/apps.js")).unregisterApp(name, opts)));

  program.command("apps")
    .description("list applications")
    .addOption(clusterOption()).addOption(jsonOption())
    .action((opts) => run(opts.json, async () => (await import("./commands/apps.js")).apps(opts)));

  program.command("link")
    .description("link a model to an application")
    .argument("<app>").argument("<model>")
    .addOption(clusterOption()).addOption(jsonOption())
    .action((app, model, opts) => run(opts.json, async () => (await import("./commands/apps.js")).link(app, model, opts)));

  program.command("unlink")
    .description("unlink a model from an application")
    .argument("<app>").argument("<model>")
    .addOption(clusterOption()).addOption(jsonOption())
    .action((app, model, opts) => run(opts.json, async () => (await import("./commands/apps.js")).unlink(app, model, opts)));

  /** The flags that say what goes into a model image (build-model and deploy-model). */
  const withBuildFlags = <Opts extends OptionValues>(command: Command<[string], Opts>) => command
    .requiredOption("--version <v>", "model version")
    .requiredOption("--input-type <type>", "bytes | integers | floats | doubles | strings", inputTypeArg)
    .option("--predict <file[:function]>", "predict file and function (default function: predict)")
    .option("--model-path <dir>", "directory given to the model as CLIPPER_MODEL_PATH, with its artifacts (default: the predict file's)")
    .option("--pkg <name>", "docker: a pip package to install in the image (repeatable)", collect)
    .option("--requirements <file>", "docker: a requirements.txt to install in the image")
    .option("--npm <name>", "docker: an npm package to install in a node image (repeatable)", collect)
    .option("--base-image <image>", "docker: the image to build on (default: the framework's official image)")
    .option("--registry <host/path>", "docker, kubernetes: prefix the tag with this registry and push the image there", registryArg)
    .option("--gpu [n]", "GPUs for each replica: all, or a number", intArg(1))
    .option("--gpu-ids <ids>", "GPUs for each replica by device id, e.g. 0,1");

  withBuildFlags(program.command("build-model")
    .description("build a model version's image (docker), tagged <cluster>-<name>:<version>")
    .argument("<name>")
    .addOption(new Option("--framework <kind>", "runtime, base image and artifact loaders").choices(MODEL_FRAMEWORKS).makeOptionMandatory()))
    .addOption(clusterOption()).addOption(jsonOption())
    .action((name, opts) => run(opts.json, async () => (await import("./commands/models.js")).buildModel(name, opts)));

  withBuildFlags(program.command("deploy-model")
    .description("start replicas of a model and make the version current (building its image under docker)")
    .argument("<name>")
    // Not mandatory to commander: a prebuilt --image builds nothing (connection.deployModel asks for it otherwise).
    .addOption(new Option("--framework <kind>", "runtime (and, for images, base image and artifact loaders); not needed with --image")
      .choices(MODEL_FRAMEWORKS)))
    .option("--image <image>", "docker: deploy this prebuilt image (it must speak Clipper's RPC v3)")
    .option("--replicas <n>", "replicas to start", intArg(0), 1)
    .option("--batch-size <n>", "fixed batch size (-1: let the frontend choose)", batchSizeArg, -1)
    .option("--batch-wait-us <n>", "hold a short batch up to this many microseconds to fill it", intArg(0), 0)
    .option("--link <app>", "link the model to this application once live")
    .option("--label <label>", "a label (repeatable)", collect)
    .option("--env <KEY=VALUE>", "an environment variable of the replicas (repeatable); local replicas get these and a few basics " +
      "(PATH, HOME, locale: docs/security.md), never the rest of your environment", envArg)
    .option("--python <path>", `local: the replicas' Python interpreter (must import numpy; default: start's --python, else ${PYTHON_RULE})`)
    .option("--ready-timeout-ms <n>", "how long to wait for the replicas to connect (default 60000; kubernetes 300000)", intArg(1))
    .option("--warmup-input <json>", "a query input (JSON, as `predict` takes it) every new replica predicts before it takes traffic " +
      "(first deploy, scale-up, restart), so no query pays the cold start", jsonArg)
    .addOption(new Option("--warmup-from-log <app>", "warm every new replica up on the application's recorded queries instead: a batch of the latest " +
      `distinct inputs of its query log (at most ${MAX_WARMUP_INPUTS} and 64 KiB of JSON, carried in the replicas' environment)`).conflicts(["warmupInput"]))
    .option("--warmup-count <n>", `recorded inputs in a warm-up batch (default ${DEFAULT_WARMUP_COUNT}; needs --warmup-from-log)`, intArg(1, MAX_WARMUP_INPUTS))
    .option("--warmup-batches <n>", `batches of the warm-up input(s) each replica predicts first (default ${DEFAULT_WARMUP_BATCHES}; needs --warmup-input or --warmup-from-log)`,
      intArg(1, MAX_WARMUP_BATCHES))
    .addOption(new Option("--manager <kind>", "print this manager's objects instead of deploying (with --dry-run; a live deploy uses the cluster's manager)").choices(["kubernetes"] as const))
    .addOption(dryRunOption()).addOption(outputOption()).addOption(namespaceOption()).addOption(pullSecretOption())
    .option("--node-selector <key=value>", "kubernetes: schedule replicas only on nodes with this label (repeatable)", collect)
    .option("--frontend-workers <n>", "kubernetes --dry-run: the cluster's frontend workers per pod (its `start --frontend-workers`, default 1), " +
      "so the replicas are told every worker's RPC port; a live deploy reads it from the cluster", intArg(1, MAX_FRONTEND_WORKERS))
    .addOption(clusterOption()).addOption(jsonOption())
    .action((name, opts) => run(opts.json, async () => {
      if (opts.warmupCount !== undefined && opts.warmupFromLog === undefined) throw new ClipperError("USAGE", "--warmup-count goes with --warmup-from-log APP");
      if (opts.warmupFromLog !== undefined && opts.dryRun) {
        throw new ClipperError("USAGE", "--warmup-from-log reads the cluster's query log: it cannot go with --dry-run (give --warmup-input instead)");
      }
      if (opts.frontendWorkers !== undefined && !(opts.manager === "kubernetes" && opts.dryRun)) {
        throw new ClipperError("USAGE", "--frontend-workers on deploy-model is for --manager kubernetes --dry-run; a live deploy reads it from the cluster");
      }
      if (opts.manager === "kubernetes") {
        const { gpuRequest } = await import("./commands/models.js");
        const { gpu: _flag, ...rest } = opts;
        return (await import("./commands/manifests.js")).deployModelDryRun(name, { ...rest, namespace: opts.namespace ?? "default", gpu: gpuRequest(opts) });
      }
      if (opts.dryRun) dryRunNeedsKubernetes();
      return (await import("./commands/models.js")).deployModel(name, opts);
    }));

  program.command("stop-models")
    .description("stop the replicas of models: every version, given versions, or all but the current one " +
      "(the deployments stay: `clipper replicas MODEL N --version V` brings a version back)")
    .argument("<models...>")
    .option("--version <v>", "only this version (repeatable)", collect)
    .option("--inactive", "only the versions that are not current")
    .addOption(clusterOption()).addOption(jsonOption())
    .action((models, opts) => run(opts.json, async () => (await import("./commands/models.js")).stopModels(models, opts)));

  program.command("stop-all-models")
    .description("stop every model replica of the cluster (the deployments stay, as with stop-models)")
    .addOption(clusterOption()).addOption(jsonOption())
    .action((opts) => run(opts.json, async () => (await import("./commands/models.js")).stopAllModels(opts)));

  program.command("delete-model")
    .description("delete a model version (or every version): stop its replicas and remove its record")
    .argument("<model>")
    .option("--version <v>", "only this version (default: every version)")
    .option("--force", "also when applications link the version they are served: unlink the model from them first")
    .addOption(clusterOption()).addOption(jsonOption())
    .action((model, opts) => run(opts.json, async () => (await import("./commands/models.js")).deleteModel(model, opts)));

  program.command("set-version")
    .description("make a version current (roll forward or back)")
    .argument("<model>").argument("<version>")
    .option("--replicas <n>", "also set that version's replica count", intArg(0))
    .addOption(clusterOption()).addOption(jsonOption())
    .action((model, version, opts) => run(opts.json, async () => (await import("./commands/models.js")).setVersion(model, version, opts)));

  program.command("replicas")
    .description("scale a model version's replicas")
    .argument("<model>").argument("<count>", "replicas wanted", intArg(0))
    .option("--version <v>", "version to scale (default: the current one)")
    .addOption(clusterOption()).addOption(jsonOption())
    .action((model, count, opts) => run(opts.json, async () => (await import("./commands/models.js")).replicas(model, count, opts)));

  program.command("models")
    .description("list model versions")
    .addOption(clusterOption()).addOption(jsonOption())
    .action((opts) => run(opts.json, async () => (await import("./commands/models.js")).models(opts)));

  program.command("autoscale")
    .description("set a model version's autoscaling: replica bounds and tuning, stored with the version (docs/autoscaling.md)")
    .argument("<model>")
    .option("--version <v>", "version to autoscale (default: the current one)")
    .option("--min <n>", "fewest replicas (0: scale to zero when idle)", intArg(0, MAX_AUTOSCALE_REPLICAS))
    .option("--max <n>", "most replicas", intArg(1, MAX_AUTOSCALE_REPLICAS))
    .option("--target-queue-per-replica <q>", `queries waiting per replica above which it scales up (default ${DEFAULT_TARGET_QUEUE_PER_REPLICA})`,
      positiveArg(MAX_TARGET_QUEUE_PER_REPLICA))
    .option("--scale-down-delay-s <s>", `seconds of low load before a replica is removed (default ${DEFAULT_SCALE_DOWN_DELAY_S})`,
      intArg(0, MAX_SCALE_DOWN_DELAY_S))
    .addOption(new Option("--off", "stop autoscaling the version (its replicas stay as they are)")
      .conflicts(["min", "max", "targetQueuePerReplica", "scaleDownDelayS"]))
    .addOption(clusterOption()).addOption(jsonOption())
    .action((model, opts) => run(opts.json, async () => (await import("./commands/autoscale.js")).autoscale(model, opts)));

  program.command("shadow")
    .description("copy a share of the live queries of a model's current version to another version, compare its answers, never return them (docs/rollouts.md)")
    .argument("<model>")
    .option("--version <v>", "the version to shadow with (registered, with replicas, not the current one)")
    .option("--percent <p>", "share of the live queries copied, above 0 and at most 100 (default 100)", positiveArg(100))
    .addOption(new Option("--off", "end the model's shadow").conflicts(["version", "percent"]))
    .addOption(clusterOption()).addOption(jsonOption())
    .action((model, opts) => run(opts.json, async () => (await import("./commands/rollout.js")).shadow(model, opts)));

  const rollout = program.command("rollout")
    .description("move a model's traffic to a new version through canary steps, judged on gates after each step, rolled back by itself when one fails; " +
      "or `rollout status` (docs/rollouts.md)")
    .argument("[model]", "the model to roll out (`rollout status M` shows one: a model named 'status' is rolled out with the library)")
    .option("--to <v>", "the version to move the traffic to (registered, with replicas, not the current one)")
    .option("--steps <list>", `percent of the queries to the new version per step, increasing, the last 100 (default ${DEFAULT_ROLLOUT_STEPS.join(",")})`, stepsArg)
    .option("--step-s <s>", `seconds each step lasts before it is judged (default ${DEFAULT_ROLLOUT_STEP_S})`, positiveArg(MAX_ROLLOUT_STEP_S))
    .option("--min-queries <n>", `compared queries a step must see before it is judged: a quiet step waits (default ${DEFAULT_ROLLOUT_MIN_QUERIES})`, intArg(1))
    .option("--max-p99-ms <ms>", "gate: the new version's p99 latency at most this", positiveArg(1_000_000))
    .option("--min-agreement <a>", "gate: its agreement with the current version at least this (0 to 1)", fractionArg)
    .option("--max-default-rate <d>", "gate: its share of errors and timeouts at most this (0 to 1)", fractionArg)
    .option("--detach", "return once the rollout started; the daemon drives it (follow it with `rollout status`)")
    .addOption(new Option("--abort", "roll back the model's running rollout")
      .conflicts(["to", "steps", "stepS", "minQueries", "maxP99Ms", "minAgreement", "maxDefaultRate", "detach"]))
    .addOption(clusterOption()).addOption(jsonOption())
    .action((model, opts) => run(opts.json, async () => (await import("./commands/rollout.js")).rollout(model, opts)));
  rollout.command("status")
    .description("a model's current version, its rollout (step, gates, progress, or how it ended), its shadow version, and how the shadow compares: agreement, latency percentiles, errors")
    .argument("<model>")
    .addOption(clusterOption()).addOption(jsonOption())
    .action((model, opts) => run(opts.json, async () => (await import("./commands/rollout.js")).rolloutStatus(model, opts)));
  program.command("query-log")
    .description("record a sample of an application's queries (input, output, version, default reason, latency, feedback) " +
      "in the cluster's state directory, show what is recorded, or export it as JSON lines (docs/rollouts.md#query-log)")
    .argument("<app>")
    .option("--sample <share>", "share of answered queries to record, above 0 and at most 1 (0.01: 1%)", positiveArg(1))
    .option("--max-mb <n>", `bound of the log's files in MiB; the oldest records go first (default ${DEFAULT_QUERY_LOG_MAX_MB}, or the current bound)`,
      intArg(1, MAX_QUERY_LOG_MAX_MB))
    .addOption(new Option("--off", "stop recording (what was recorded is kept until the application is deleted)").conflicts(["sample", "maxMb"]))
    .addOption(new Option("--export <file>", "write the log into FILE as JSON lines, feedback joined to its query").conflicts(["sample", "maxMb", "off"]))
    .addOption(clusterOption()).addOption(jsonOption())
    .action((app, opts) => run(opts.json, async () => (await import("./commands/query-log.js")).queryLog(app, opts)));

  program.command("replay")
    .description("send an application's recorded queries (an exported query log, or the cluster's) to one model version, not through " +
      "the application's policy, and report agreement with the recorded outputs, errors and latency (docs/rollouts.md#replay-and-warm-up)")
    .argument("<app>")
    .addOption(new Option("--from <file>", "a query log exported with `clipper query-log APP --export FILE`").conflicts(["log"]))
    .option("--log", "the application's query log in the cluster, read as it streams")
    .requiredOption("--to <name:version>", "the model version that answers, such as m:2")
    .option("--rate <r>", `queries per second, sent open loop (default ${DEFAULT_REPLAY_RATE}; at most ${DEFAULT_REPLAY_IN_FLIGHT} await answers at once)`, rateArg)
    .option("--limit <n>", "send at most this many recorded queries (the oldest first)", intArg(1))
    .addOption(new Option("--api-key <key>", "query API key (clusters started with --query-auth keys)").env("CLIPPER_API_KEY"))
    .addOption(clusterOption()).addOption(jsonOption())
    .action((app, opts) => run(opts.json, async () => (await import("./commands/replay.js")).replay(app, opts)));

  program.command("events")
    .description("show the autoscaler's events: scale decisions with their reasons, configuration changes, how long a first replica took after a scale from zero, and gated rollouts' steps")
    .option("--follow", "keep printing events as they happen (--json: one JSON object per line)")
    .option("--since <seq>", "only events after this sequence number", intArg(0))
    .addOption(clusterOption()).addOption(jsonOption())
    .action((opts) => run(opts.json, async () => (await import("./commands/events.js")).events(opts)));

  program.command("predict")
    .description("send a query: JSON is the input, or a body with input/input_batch")
    .argument("<app>").argument("<json>", "the input as JSON", jsonArg)
    .option("--batch", "the JSON is an array of inputs to send as input_batch")
    .option("--version <v>", "pin the model version")
    .addOption(new Option("--api-key <key>", "query API key (clusters started with --query-auth keys)").env("CLIPPER_API_KEY"))
    .addOption(clusterOption()).addOption(jsonOption())
    .action((app, input, opts) => run(opts.json, async () => (await import("./commands/predict.js")).predict(app, input, opts)));

  program.command("feedback")
    .description("send feedback to an application (the query API's /update): the true label of an input, which exp3 and exp4 learn from")
    .argument("<app>")
    .requiredOption("--uid <uid>", "the user the feedback is for (0: no particular user, the application-wide weights)")
    .requiredOption("--input <json>", "the input the label is for, as JSON (as `predict` takes it)", jsonArg)
    .requiredOption("--label <json>", "the true label: a JSON number or string", jsonArg)
    .option("--query-id <id>", "the query_id of the answer the feedback is about: the query log joins them (docs/rollouts.md#query-log)", intArg(0))
    .addOption(new Option("--api-key <key>", "query API key (clusters started with --query-auth keys)").env("CLIPPER_API_KEY"))
    .addOption(clusterOption()).addOption(jsonOption())
    .action((app, opts) => run(opts.json, async () => (await import("./commands/feedback.js")).feedback(app, opts)));

  program.command("policy-state")
    .description("show the weights an application's learning policy has learned, per uid (*: application-wide)")
    .argument("<app>")
    .option("--uid <uid>", "only this user's weights")
    .addOption(clusterOption()).addOption(jsonOption())
    .action((app, opts) => run(opts.json, async () => (await import("./commands/feedback.js")).policyState(app, opts)));

  const apiKey = program.command("api-key")
    .description("keys for the query API, needed when the cluster runs with --query-auth keys (docs/security.md)");
  apiKey.command("create")
    .description("create a key and print it (shown only once: the cluster keeps only its hash)")
    .option("--app <name>", "the one application the key may query (default: every application and OIP)")
    .option("--rate <n>", "requests per second (`10` or `10/s`) the key may send (default: unlimited; 429 with Retry-After above)", rateArg)
    .addOption(clusterOption()).addOption(jsonOption())
    .action((opts) => run(opts.json, async () => (await import("./commands/api-keys.js")).createApiKey(opts)));
  apiKey.command("list")
    .description("list the keys: id, application, rate and creation time (never the keys themselves)")
    .addOption(clusterOption()).addOption(jsonOption())
    .action((opts) => run(opts.json, async () => (await import("./commands/api-keys.js")).listApiKeys(opts)));
  apiKey.command("revoke")
    .description("revoke a key by its id; the frontends refuse it as soon as they see the change")
    .argument("<id>")
    .addOption(clusterOption()).addOption(jsonOption())
    .action((id, opts) => run(opts.json, async () => (await import("./commands/api-keys.js")).revokeApiKey(id, opts)));

  program.command("test-predict")
    .description("run a predict function here on an input or a batch, as a replica would (no cluster needed)")
    .addHelpText("after", "\nPrints each output as the runtime sends it over RPC (--json: { outputs, answers }, answers as the query\n" +
      "API would embed them). A function that fails prints its error and traceback and exits 9.")
    .requiredOption("--predict <file[:function]>", "predict file and function (default function: predict)")
    .requiredOption("--input-type <type>", "bytes | integers | floats | doubles | strings", inputTypeArg)
    .requiredOption("--input <json>", "the input as JSON (with --batch, a JSON array of inputs)", jsonArg)
    .option("--batch", "the JSON is an array of inputs, run as one batch")
    .addOption(new Option("--framework <kind>", "runtime (default: python for a .py file, else node)").choices(MODEL_FRAMEWORKS))
    .option("--model-path <dir>", "directory given to the model as CLIPPER_MODEL_PATH (default: the predict file's)")
    .option("--python <path>", `Python interpreter (must import numpy; default: ${PYTHON_RULE})`)
    .option("--timeout-ms <n>", "give up on a function that runs longer", intArg(1), 120_000)
    .addOption(jsonOption())
    .action((opts) => run(opts.json, async () => (await import("./commands/test-predict.js")).testPredict(opts)));

  program.command("save-function")
    .description("pickle a Python predict function with cloudpickle (closures by value) for --predict FILE.pkl")
    .addHelpText("after", "\nThe file records the cloudpickle and Python versions that wrote it; images pin that cloudpickle\n" +
      "version, and a replica says so when versions differ (docs/deploy-from-code.md).")
    .argument("<file[:function]>", "the .py file and its function (default function: predict)")
    .argument("<out.pkl>", "where to write it")
    .option("--python <path>", `Python interpreter with cloudpickle (must import numpy; default: ${PYTHON_RULE}, as deploy-model chooses)`)
    .addOption(jsonOption())
    .action((spec, out, opts) => run(opts.json, async () => (await import("./commands/save-function.js")).saveFunction(spec, out, opts)));

  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram(argv).parseAsync(argv);
}

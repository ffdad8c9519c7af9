/**
 * The dashboard page: polls the admin API every two seconds, renders the tables and the live
 * charts, and offers the safe actions (link, unlink, set the current version). Every name shown is
 * set as text, never as HTML: names come from whoever can write to the admin API.
 */
import type { LiveStats } from "../../shared/live-stats.js";
import { AdminCallError, getJson, post, postJson, savedToken, saveToken } from "./api.js";
import { renderChart } from "./chart.js";
import { appCharts, versionCharts, type Chart } from "./series.js";

interface App {
  name: string;
  input_type: string;
  latency_slo_micros: number;
  linked_models: string[];
  policy?: { name: string };
}
interface ModelVersion {
  model_name: string;
  model_version: string;
  input_type: string;
  is_current_version: boolean;
}
interface Replica {
  model_name: string;
  model_version: string;
  model_replica_id: number;
}

const POLL_MS = 2_000;
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, text?: string, className?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (className) e.className = className;
  return e;
}

function button(label: string, action: () => Promise<unknown> | void, testId: string): HTMLButtonElement {
  const b = el("button", label);
  b.type = "button";
  b.dataset.action = testId;
  b.addEventListener("click", async () => {
    b.disabled = true;
    try {
      await action();
      await refresh();
    } catch (err) {
      notice(err instanceof Error ? err.message : String(err));
    } finally {
      b.disabled = false;
    }
  });
  return b;
}

function notice(message: string | Node[]): void {
  const n = $("notice");
  n.hidden = false;
  if (typeof message === "string") n.textContent = message;
  else n.replaceChildren(...message);
}

function renderApps(apps: App[], models: ModelVersion[]): void {
  const body = $("apps").querySelector("tbody")!;
  body.replaceChildren();
  if (apps.length === 0) body.append(emptyRow(6, "No application yet: clipper register-application NAME ..."));
  for (const app of apps) {
    const row = el("tr");
    row.dataset.app = app.name;
    const linked = el("td");
    for (const m of app.linked_models) {
      const chip = el("span", m, "chip");
      chip.append(button("×", () => post("/admin/delete_model_links", { app_name: app.name, model_names: [m] }), `unlink:${app.name}:${m}`));
      linked.append(chip);
    }
    const linkable = [...new Set(models.filter((v) => v.input_type === app.input_type).map((v) => v.model_name))]
      .filter((m) => !app.linked_models.includes(m));
    const link = el("td");
    if (linkable.length > 0) {
      const select = el("select");
      select.dataset.linkFor = app.name;
      for (const m of linkable) select.append(new Option(m, m));
      link.append(select, button("Link", () => post("/admin/add_model_links", { app_name: app.name, model_names: [select.value] }), `link:${app.name}`));
    }
    row.append(el("td", app.name), el("td", app.input_type), el("td", `${app.latency_slo_micros / 1000} ms`),
      el("td", app.policy?.name ?? "default"), linked, link);
    body.append(row);
  }
}

function renderModels(models: ModelVersion[], replicas: Replica[], queues: Map<string, number>): void {
  const body = $("models").querySelector("tbody")!;
  body.replaceChildren();
  if (models.length === 0) body.append(emptyRow(7, "No model yet: clipper deploy-model ..."));
  for (const v of models) {
    const key = `${v.model_name}:${v.model_version}`;
    const connected = replicas.filter((r) => r.model_name === v.model_name && r.model_version === v.model_version).length;
    const row = el("tr");
    row.dataset.model = key;
    const state = el("td");
    state.append(v.is_current_version ? el("span", "current", "badge current") : el("span", "not current", "badge"));
    if (connected === 0) state.append(" ", el("span", "no replica", "badge down"));
    const actions = el("td");
    if (!v.is_current_version) {
      actions.append(button("Set current", () => post("/admin/set_model_version", { model_name: v.model_name, model_version: v.model_version }),
        `set-current:${key}`));
    }
    actions.append(button("Scale…", () => scaleHint(v, connected), `scale:${key}`));
    const replicasCell = el("td", String(connected));
    replicasCell.dataset.replicas = String(connected);
    row.append(el("td", v.model_name), el("td", v.model_version), el("td", v.input_type), state, replicasCell,
      el("td", String(queues.get(key) ?? 0)), actions);
    body.append(row);
  }
}

/**
 * The management daemon stores the configuration and has no container manager: replicas are
 * started where the cluster is managed (the CLI, the local supervisor, Kubernetes). So scaling
 * from the page says what to run instead of pretending.
 */
function scaleHint(v: ModelVersion, connected: number): void {
  const command = `clipper replicas ${v.model_name} ${connected + 1} --version ${v.model_version}`;
  notice([
    document.createTextNode("The management daemon does not start or stop replicas (it has no container manager). To scale, run: "),
    el("code", command),
  ]);
}

function emptyRow(columns: number, text: string): HTMLTableRowElement {
  const row = el("tr");
  const cell = el("td", text, "empty");
  cell.colSpan = columns;
  row.append(cell);
  return row;
}

/** Keeps one element per chart id, so charts keep their place between polls. */
function renderCharts(container: HTMLElement, charts: Array<[string, Chart]>): void {
  const wanted = new Set(charts.map(([id]) => id));
  for (const child of [...container.children]) if (!wanted.has((child as HTMLElement).dataset.chart ?? "")) child.remove();
  if (charts.length === 0 && container.children.length === 0) container.append(el("p", "No traffic reported yet.", "empty"));
  for (const [id, chart] of charts) {
    let host = [...container.children].find((c) => (c as HTMLElement).dataset.chart === id) as HTMLElement | undefined;
    if (!host) {
      container.querySelector(".empty")?.remove();
      host = el("div");
      host.dataset.chart = id;
      container.append(host);
    }
    renderChart(host, chart);
  }
}

async function refresh(): Promise<void> {
  const [apps, models, replicas, stats] = await Promise.all([
    postJson<App[]>("/admin/get_all_applications", { verbose: true }),
    postJson<ModelVersion[]>("/admin/get_all_models", { verbose: true }),
    postJson<Replica[]>("/admin/get_all_containers", { verbose: true }),
    getJson<LiveStats>("/admin/live_stats"),
  ]);
  const queues = new Map<string, number>();
  for (const f of stats.frontends) {
    const last = f.samples[f.samples.length - 1];
    for (const v of last?.versions ?? []) {
      const key = `${v.model_name}:${v.model_version}`;
      queues.set(key, (queues.get(key) ?? 0) + v.queue_depth);
    }
  }
  renderApps(apps, models);
  renderModels(models, replicas, queues);
  renderCharts($("app-charts"), appCharts(stats).flatMap((a) => [
    [`requests:${a.app}`, a.requests], [`latency:${a.app}`, a.latency], [`answers:${a.app}`, a.answers],
  ] as Array<[string, Chart]>));
  renderCharts($("version-charts"), versionCharts(stats).flatMap((v) => [
    [`queue:${v.model}`, v.queue], [`batches:${v.model}`, v.batches], [`cache:${v.model}`, v.cacheHitRate],
  ] as Array<[string, Chart]>));
  const status = $("status");
  status.textContent = `updated ${new Date().toLocaleTimeString()} · ${stats.frontends.length} frontend(s) reporting`;
  status.classList.remove("error");
}

async function poll(): Promise<void> {
  try {
    await refresh();
  } catch (err) {
    const status = $("status");
    status.textContent = err instanceof AdminCallError ? err.message : `cannot reach the daemon: ${String(err)}`;
    status.classList.add("error");
  }
  setTimeout(() => void poll(), POLL_MS);
}

function start(): void {
  const input = $<HTMLInputElement>("token");
  input.value = savedToken();
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    saveToken(input.value.trim());
    void refresh().catch(() => undefined);
  });
  void poll();
}

start();

/**
 * The dashboard page: polls the admin API every two seconds, renders the tables, the live charts
 * and the autoscaler's events, and offers the safe actions (link, unlink, set the current version,
 * scale a version or change an autoscaled version's bounds), each through the admin endpoint the
 * CLI and the library use. Every name shown is set as text, never as HTML: names come from whoever
 * can write to the admin API.
 */
import type { AutoscaleEvent, AutoscaleEventPage, ScaleRequest } from "../../shared/autoscaling.js";
import { describeChange } from "../../shared/event-change.js";
import type { LiveStats } from "../../shared/live-stats.js";
import type { ShadowStatus } from "../../shared/shadow.js";
import { AdminCallError, getJson, post, postJson, savedToken, saveToken } from "./api.js";
import { renderChart } from "./chart.js";
import { appCharts, eventMarkers, versionCharts, type Chart } from "./series.js";

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
  autoscaling?: { min_replicas: number; max_replicas: number; target_queue_per_replica: number; scale_down_delay_s: number };
  /** On a model's shadow version only (docs/rollouts.md). */
  shadow?: { percent: number; since_revision: number };
}
interface Replica {
  model_name: string;
  model_version: string;
  model_replica_id: number;
}

const POLL_MS = 2_000;
/** Events the page keeps and shows, newest first. */
const EVENTS_SHOWN = 50;
/** The most replicas the daemon accepts (shared/autoscaling.ts MAX_AUTOSCALE_REPLICAS; not imported: it would bundle zod). */
const MAX_REPLICAS = 64;
// Admin paths (shared/autoscaling.ts), spelled out for the same reason.
const SET_NUM_REPLICAS_PATH = "/admin/set_num_replicas";
const SCALE_REQUESTS_PATH = "/admin/get_scale_requests";
const SET_AUTOSCALING_PATH = "/admin/set_autoscaling";
const AUTOSCALER_EVENTS_PATH = "/admin/get_autoscaler_events";
const GET_SHADOW_STATUS_PATH = "/admin/get_shadow_status";
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

/**
 * What the operator typed into a number field, kept across the page's re-renders (every poll
 * rebuilds the tables) until an action that used it succeeds.
 */
const drafts = new Map<string, string>();

function numberField(id: string, value: number, min: number, title: string): HTMLInputElement {
  const input = el("input");
  input.type = "number";
  input.min = String(min);
  input.max = String(MAX_REPLICAS);
  input.step = "1";
  input.title = title;
  input.value = drafts.get(id) ?? String(value);
  input.dataset.field = id;
  input.addEventListener("input", () => drafts.set(id, input.value));
  return input;
}

/** A whole number from a field, or an error the notice shows (the daemon checks the range). */
function wholeNumber(input: HTMLInputElement, what: string): number {
  const n = Number(input.value);
  if (input.value.trim() === "" || !Number.isInteger(n)) throw new Error(`${what} must be a whole number, got '${input.value}'`);
  return n;
}

/**
 * Scale: a version asks for a replica count through POST /admin/set_num_replicas; the cluster's
 * manager (the autoscaler loop's host) applies it within seconds. An autoscaled version offers its
 * bounds instead (set_autoscaling): a count set by hand would be undone by the next decision.
 */
function scaleControls(v: ModelVersion, connected: number, pending: ScaleRequest | undefined): HTMLElement[] {
  const key = `${v.model_name}:${v.model_version}`;
  const target = { model_name: v.model_name, model_version: v.model_version };
  const auto = v.autoscaling;
  if (auto) {
    const min = numberField(`min:${key}`, auto.min_replicas, 0, "fewest replicas");
    const max = numberField(`max:${key}`, auto.max_replicas, 1, "most replicas");
    return [el("span", "autoscaled", "badge auto"), min, el("span", "–"), max, button("Set bounds", async () => {
      // A setting replaces the version's whole configuration: its tuning goes along unchanged.
      const text = await post(SET_AUTOSCALING_PATH, {
        ...target, min_replicas: wholeNumber(min, "min"), max_replicas: wholeNumber(max, "max"),
        target_queue_per_replica: auto.target_queue_per_replica, scale_down_delay_s: auto.scale_down_delay_s,
      });
      drafts.delete(`min:${key}`);
      drafts.delete(`max:${key}`);
      notice(text);
    }, `bounds:${key}`)];
  }
  const count = numberField(`scale:${key}`, pending?.num_replicas ?? connected, 0, "replicas");
  const controls: HTMLElement[] = [count, button("Scale", async () => {
    const reply = JSON.parse(await post(SET_NUM_REPLICAS_PATH, { ...target, num_replicas: wholeNumber(count, "the replica count") })) as { message: string };
    drafts.delete(`scale:${key}`);
    notice(reply.message);
  }, `scale:${key}`)];
  if (pending) controls.push(el("span", `→ ${pending.num_replicas} pending`, "badge pending"));
  return controls;
}

/** A shadow version's badge: its share of the live queries, and what the comparison shows so far. */
function shadowBadge(v: ModelVersion, status: ShadowStatus | undefined): HTMLElement {
  const f = status?.figures;
  const ms = (value: number | null | undefined) => (value === null || value === undefined ? "-" : `${Math.round(value * 10) / 10} ms`);
  const figures = !f || f.agreement === null
    ? "no copy answered yet"
    : `agree ${(f.agreement * 100).toFixed(1)}% of ${f.compared} · p99 ${ms(f.shadow_p99_ms)} vs live ${ms(f.live_p99_ms)}` +
      (f.counts.error + f.counts.timeout + f.counts.skipped > 0 ? ` · ${f.counts.error} errors, ${f.counts.timeout} timeouts, ${f.counts.skipped} skipped` : "");
  const badge = el("span", `shadow ${v.shadow!.percent}%: ${figures}`, "badge shadow");
  badge.dataset.shadow = `${v.model_name}:${v.model_version}`;
  return badge;
}

function renderModels(
  models: ModelVersion[], replicas: Replica[], queues: Map<string, number>, pending: ScaleRequest[], shadows: Map<string, ShadowStatus>,
): void {
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
    if (v.shadow) state.append(" ", shadowBadge(v, shadows.get(v.model_name)));
    const actions = el("td");
    if (!v.is_current_version) {
      actions.append(button("Set current", () => post("/admin/set_model_version", { model_name: v.model_name, model_version: v.model_version }),
        `set-current:${key}`));
    }
    const request = pending.find((r) => r.model_name === v.model_name && r.model_version === v.model_version);
    actions.append(...scaleControls(v, connected, request));
    const replicasCell = el("td", String(connected));
    replicasCell.dataset.replicas = String(connected);
    row.append(el("td", v.model_name), el("td", v.model_version), el("td", v.input_type), state, replicasCell,
      el("td", String(queues.get(key) ?? 0)), actions);
    body.append(row);
  }
}

/** The events read so far (newest last) and where to read on from. */
let events: AutoscaleEvent[] = [];
let eventsSince = 0;

/**
 * Reads the events after the last one seen. A daemon that restarted numbers its events afresh (and
 * answers from its start): the list starts afresh too. Two reads at once (a click during a poll)
 * add each event once.
 */
async function readEvents(): Promise<AutoscaleEvent[]> {
  const page = await getJson<AutoscaleEventPage>(`${AUTOSCALER_EVENTS_PATH}?since=${eventsSince}`);
  if (page.next_seq < eventsSince) {
    events = [];
    eventsSince = 0;
  }
  const newest = events[events.length - 1]?.seq ?? 0;
  events = [...events, ...page.events.filter((e) => e.seq > newest)].slice(-EVENTS_SHOWN);
  eventsSince = Math.max(eventsSince, page.next_seq);
  return events;
}

function renderEvents(list: readonly AutoscaleEvent[]): void {
  const body = $("events").querySelector("tbody")!;
  body.replaceChildren();
  if (list.length === 0) body.append(emptyRow(4, "No autoscaler event yet: scale a version, or clipper autoscale NAME --min N --max N"));
  for (const e of [...list].reverse()) {
    const row = el("tr");
    row.dataset.event = String(e.seq);
    row.dataset.kind = e.kind;
    row.dataset.version = `${e.model_name}:${e.model_version}`;
    row.append(el("td", new Date(e.at).toLocaleTimeString()), el("td", `${e.model_name}:${e.model_version}`),
      el("td", describeChange(e), `change ${e.kind}`), el("td", e.reason));
    body.append(row);
  }
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
  const [apps, models, replicas, stats, pending, recent] = await Promise.all([
    postJson<App[]>("/admin/get_all_applications", { verbose: true }),
    postJson<ModelVersion[]>("/admin/get_all_models", { verbose: true }),
    postJson<Replica[]>("/admin/get_all_containers", { verbose: true }),
    getJson<LiveStats>("/admin/live_stats"),
    getJson<{ requests: ScaleRequest[] }>(SCALE_REQUESTS_PATH),
    readEvents(),
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
  // One status read per model with a shadow (there are few): its figures summed over the frontends.
  const shadowed = [...new Set(models.filter((v) => v.shadow).map((v) => v.model_name))];
  const statuses = await Promise.all(shadowed.map((model_name) => postJson<ShadowStatus>(GET_SHADOW_STATUS_PATH, { model_name })));
  renderModels(models, replicas, queues, pending.requests, new Map(statuses.map((s) => [s.model_name, s])));
  renderEvents(recent);
  renderCharts($("app-charts"), appCharts(stats).flatMap((a) => [
    [`requests:${a.app}`, a.requests], [`latency:${a.app}`, a.latency], [`answers:${a.app}`, a.answers],
  ] as Array<[string, Chart]>));
  renderCharts($("version-charts"), versionCharts(stats).flatMap((v) => {
    const markers = eventMarkers(recent, v.model, v.queue.t);
    return [
      [`queue:${v.model}`, { ...v.queue, markers }], [`batches:${v.model}`, { ...v.batches, markers }],
      [`cache:${v.model}`, { ...v.cacheHitRate, markers }],
    ] as Array<[string, Chart]>;
  }));
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

/**
 * A small SVG line chart: enough for a few series over the last minutes, with no library to ship.
 * Each chart element carries its newest values in data attributes (`data-points`, `data-last`,
 * `data-markers`), which is what the browser test reads to see a chart move.
 * Autoscaler events are vertical lines (green up, orange down, blue manual or configuration) with
 * the event as their tooltip.
 */
import type { Chart } from "./series.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 400;
const HEIGHT = 140;
const PAD = { left: 40, right: 8, top: 8, bottom: 18 };
const COLORS = ["#2f6fed", "#e8772e", "#c83232", "#1f9d55", "#8e44ad", "#16a2b8", "#7f8c8d", "#d4a017"];

/** Renders `chart` into `host` (an element with the chart's id), replacing what was there. */
export function renderChart(host: HTMLElement, chart: Chart): void {
  host.className = "chart";
  host.replaceChildren();
  const title = document.createElement("h3");
  title.textContent = chart.title;
  host.append(title);

  const values = chart.series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  const max = Math.max(1e-9, ...values) * 1.1;
  const t0 = chart.t[0] ?? 0;
  const span = Math.max(1, (chart.t[chart.t.length - 1] ?? 0) - t0);
  const x = (t: number) => PAD.left + ((t - t0) / span) * (WIDTH - PAD.left - PAD.right);
  const y = (v: number) => HEIGHT - PAD.bottom - (v / max) * (HEIGHT - PAD.top - PAD.bottom);

  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${WIDTH} ${HEIGHT}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.append(line(PAD.left, y(0), WIDTH - PAD.right, y(0), "#ccc"));
  svg.append(text(2, PAD.top + 8, format(max / 1.1, chart.unit)));
  svg.append(text(2, HEIGHT - PAD.bottom, format(0, chart.unit)));
  svg.append(text(PAD.left, HEIGHT - 4, `${Math.round(span)} s`));
  chart.series.forEach((s, i) => {
    const points = s.values.flatMap((v, j) => (v === null ? [] : [`${x(chart.t[j]!).toFixed(1)},${y(v).toFixed(1)}`]));
    if (points.length === 0) return;
    const poly = document.createElementNS(SVG, "polyline");
    poly.setAttribute("points", points.length === 1 ? `${points[0]} ${points[0]}` : points.join(" "));
    poly.setAttribute("fill", "none");
    poly.setAttribute("stroke", COLORS[i % COLORS.length]!);
    poly.setAttribute("stroke-width", "1.8");
    if (s.label === "SLO") poly.setAttribute("stroke-dasharray", "4 3");
    svg.append(poly);
  });
  const drawn = drawMarkers(svg, chart, x);
  host.append(svg);

  const legend = document.createElement("div");
  legend.className = "legend";
  chart.series.forEach((s, i) => {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = COLORS[i % COLORS.length]!;
    const last = [...s.values].reverse().find((v) => v !== null);
    item.append(swatch, `${s.label} ${last === undefined || last === null ? "–" : format(last, chart.unit)}`);
    legend.append(item);
  });
  host.append(legend);
  host.dataset.points = String(chart.t.length);
  host.dataset.markers = String(drawn);
  host.dataset.last = JSON.stringify(chart.series.map((s) => s.values[s.values.length - 1] ?? null));
}

const MARKER_COLORS: Record<string, string> = { scale_up: "#1f9d55", scale_down: "#e8772e" };

/** Draws the chart's event markers; returns how many. Later than the last point: at the right edge. */
function drawMarkers(svg: SVGSVGElement, chart: Chart, x: (t: number) => number): number {
  const right = WIDTH - PAD.right;
  for (const m of chart.markers ?? []) {
    const at = Math.min(right, x(m.t));
    const mark = line(at, PAD.top, at, HEIGHT - PAD.bottom, MARKER_COLORS[m.kind] ?? "#2f6fed");
    mark.setAttribute("stroke-dasharray", "2 2");
    mark.setAttribute("stroke-width", "1.5");
    mark.classList.add("marker");
    const title = document.createElementNS(SVG, "title");
    title.textContent = m.label;
    mark.append(title);
    svg.append(mark);
  }
  return chart.markers?.length ?? 0;
}

function line(x1: number, y1: number, x2: number, y2: number, stroke: string): SVGLineElement {
  const l = document.createElementNS(SVG, "line");
  for (const [k, v] of Object.entries({ x1, y1, x2, y2 })) l.setAttribute(k, String(v));
  l.setAttribute("stroke", stroke);
  return l;
}

function text(x: number, y: number, content: string): SVGTextElement {
  const t = document.createElementNS(SVG, "text");
  t.setAttribute("x", String(x));
  t.setAttribute("y", String(y));
  t.setAttribute("font-size", "9");
  t.setAttribute("fill", "#6b7385");
  t.textContent = content;
  return t;
}

function format(v: number, unit: string): string {
  const n = v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return unit === "%" ? `${n}%` : unit === "ms" ? `${n} ms` : n;
}

/** Benchmark reports: a markdown table and an SVG bar chart per benchmark, written into docs/bench/. */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const REPORT_DIR = fileURLToPath(new URL("../../../docs/bench/", import.meta.url));

export function markdownTable(headers: string[], rows: Array<Array<string | number>>): string {
  const cell = (v: string | number) => (typeof v === "number" ? formatNumber(v) : v);
  return [
    `| ${headers.join(" | ")} |`,
    `|${headers.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.map(cell).join(" | ")} |`),
  ].join("\n");
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v) || Number.isInteger(v)) return String(v);
  if (Math.abs(v) >= 100) return v.toFixed(0);
  if (Math.abs(v) >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

export interface Bar {
  label: string;
  value: number;
  /** A second value drawn as a tick on the bar (e.g. p99 against a limit). */
  note?: string;
}

/** A horizontal bar chart as standalone SVG (no dependency, readable in any browser or viewer). */
export function barChartSvg(title: string, unit: string, bars: Bar[]): string {
  const width = 720;
  const rowHeight = 28;
  const left = 200;
  const top = 40;
  const max = Math.max(...bars.map((b) => b.value), 1);
  const scale = (width - left - 120) / max;
  const rows = bars.map((b, i) => {
    const y = top + i * rowHeight;
    const w = Math.max(1, b.value * scale);
    return [
      `<text x="${left - 8}" y="${y + 17}" text-anchor="end" font-size="13">${escapeXml(b.label)}</text>`,
      `<rect x="${left}" y="${y + 4}" width="${w.toFixed(1)}" height="${rowHeight - 8}" fill="#3b7dd8"/>`,
      `<text x="${left + w + 6}" y="${y + 17}" font-size="12">${formatNumber(b.value)} ${escapeXml(unit)}${b.note ? ` (${escapeXml(b.note)})` : ""}</text>`,
    ].join("");
  });
  const height = top + bars.length * rowHeight + 16;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">` +
    `<rect width="100%" height="100%" fill="white"/>` +
    `<text x="12" y="24" font-size="15" font-weight="bold">${escapeXml(title)}</text>${rows.join("")}</svg>\n`;
}

export interface Line {
  label: string;
  color: string;
  /** One value per x step. */
  values: number[];
  /** Drawn against the right-hand axis (e.g. a replica count beside a rate). */
  right?: boolean;
}

/** Lines over time (x: seconds), a left and an optional right axis, as standalone SVG. */
export function lineChartSvg(title: string, axes: { left: string; right?: string }, lines: Line[]): string {
  const width = 760;
  const height = 320;
  const pad = { left: 60, right: 60, top: 40, bottom: 50 };
  const steps = Math.max(2, ...lines.map((l) => l.values.length));
  const maxOf = (side: boolean) => Math.max(1, ...lines.filter((l) => !!l.right === side).flatMap((l) => l.values)) * 1.1;
  const [maxLeft, maxRight] = [maxOf(false), maxOf(true)];
  const x = (i: number) => pad.left + (i / (steps - 1)) * (width - pad.left - pad.right);
  const y = (v: number, right: boolean) => height - pad.bottom - (v / (right ? maxRight : maxLeft)) * (height - pad.top - pad.bottom);
  const paths = lines.map((l) => `<polyline fill="none" stroke="${l.color}" stroke-width="2" points="${
    l.values.map((v, i) => `${x(i).toFixed(1)},${y(v, !!l.right).toFixed(1)}`).join(" ")}"/>`);
  const ticks = [0, 0.5, 1].flatMap((f) => [
    `<text x="${pad.left - 6}" y="${y(f * maxLeft, false) + 4}" text-anchor="end" font-size="11">${formatNumber(f * maxLeft)}</text>`,
    ...(axes.right ? [`<text x="${width - pad.right + 6}" y="${y(f * maxRight, true) + 4}" font-size="11">${formatNumber(f * maxRight)}</text>`] : []),
  ]);
  const xTicks = Array.from({ length: 7 }, (_, k) => Math.round((k / 6) * (steps - 1)))
    .map((i) => `<text x="${x(i)}" y="${height - pad.bottom + 16}" text-anchor="middle" font-size="11">${i}</text>`);
  const legend = lines.map((l, i) => `<rect x="${pad.left + i * 190}" y="${height - 18}" width="12" height="4" fill="${l.color}"/>` +
    `<text x="${pad.left + i * 190 + 16}" y="${height - 13}" font-size="12">${escapeXml(l.label)}</text>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">` +
    `<rect width="100%" height="100%" fill="white"/>` +
    `<text x="12" y="24" font-size="15" font-weight="bold">${escapeXml(title)}</text>` +
    `<line x1="${pad.left}" y1="${height - pad.bottom}" x2="${width - pad.right}" y2="${height - pad.bottom}" stroke="#999"/>` +
    `<text x="${pad.left - 50}" y="${pad.top - 8}" font-size="11">${escapeXml(axes.left)}</text>` +
    (axes.right ? `<text x="${width - pad.right - 10}" y="${pad.top - 8}" font-size="11">${escapeXml(axes.right)}</text>` : "") +
    `<text x="${width / 2}" y="${height - pad.bottom + 32}" text-anchor="middle" font-size="11">seconds</text>` +
    ticks.join("") + xTicks.join("") + paths.join("") + legend.join("") + `</svg>\n`;
}

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Where and how a run happened, so a table can be read (and rerun) later. */
export function runContext(command: string): string {
  return [
    `Command: \`${command}\``,
    `Run: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC, Node ${process.version}, ${cpus().length} cores ` +
      `(shared machine: compare the rows of one table, not absolute numbers across runs).`,
  ].join("  \n");
}

export function writeReport(name: string, markdown: string, svgs: Record<string, string>): void {
  mkdirSync(REPORT_DIR, { recursive: true });
  for (const [file, svg] of Object.entries(svgs)) writeFileSync(join(REPORT_DIR, file), svg);
  writeFileSync(join(REPORT_DIR, `${name}.md`), markdown);
  process.stdout.write(`wrote docs/bench/${name}.md\n`);
}

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

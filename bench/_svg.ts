/**
 * Grouped horizontal bar charts as standalone SVG, written by hand: one colour per pool, a bar
 * per pool within each group (a case), a log scale when the values span more than a decade
 * and a half, optional whiskers for a spread, and a dashed reference line (the floor). Several
 * panels, each with its own axis, stack into one image.
 *
 * @module
 */

/** One bar. */
export interface Bar {
  /** The row label, and the key of its colour. */
  label: string;
  value: number;
  /** The spread to draw as a whisker, if any. */
  low?: number;
  high?: number;
  /** Text after the bar; the formatted value when absent. */
  text?: string;
  /** Overrides {@linkcode colourOf}. */
  colour?: string;
}

/** A group of bars: one case. */
export interface Group {
  label: string;
  bars: Bar[];
}

/** One chart with its own axis. */
export interface Panel {
  title: string;
  /** The axis caption, e.g. "ns per acquire+release (median)". */
  unit: string;
  groups: Group[];
  /** Forces the scale; by default log when max/min > 30. */
  log?: boolean;
  /** A dashed vertical line at this value, labelled. */
  reference?: { value: number; label: string };
  /** Formats a value for ticks and bar text. */
  format?: (value: number) => string;
}

const WIDTH = 900;
const LABEL_W = 380;
const RIGHT_W = 150;
const BAR_H = 14;
const BAR_GAP = 4;
const GROUP_GAP = 12;
const GROUP_HEAD = 18;
const FONT = "font-family:system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif";

const HUES: [prefix: string, main: string, light: string][] = [
  ["floor", "#8a8a8a", "#c2c2c2"],
  ["edgepool", "#1f5fd6", "#86aef0"],
  ["generic-pool", "#e69a28", "#f3c884"],
  ["tarn", "#3f9e4a", "#94cf9b"],
  ["pg-pool", "#8e4fc2", "#c7a3e3"],
  ["postgres.js", "#d2423d", "#eda19e"],
  ["new connection", "#555555", "#999999"],
];

/**
 * The colour of a row: one hue per pool (by the label's first word), lighter for a variant of
 * it: "edgepool, createConcurrency 2", "edgepool + onEvent". A colon ("floor: 5 resources")
 * describes the row, it does not make a variant.
 */
export function colourOf(label: string): string {
  for (const [prefix, main, light] of HUES) {
    if (!label.startsWith(prefix)) continue;
    return /^(,| \+)/.test(label.slice(prefix.length)) ? light : main;
  }
  return "#999999";
}

function escape(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

/** A compact number: 1.2k, 35, 0.42. */
export function compact(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 1e6) return `${+(value / 1e6).toPrecision(3)}M`;
  if (abs >= 1e4) return `${+(value / 1e3).toPrecision(3)}k`;
  if (abs >= 100) return `${Math.round(value)}`;
  if (abs >= 1) return `${+value.toPrecision(3)}`;
  return `${+value.toPrecision(2)}`;
}

interface Scale {
  x(value: number): number;
  ticks: number[];
}

function scaleOf(panel: Panel, plotW: number): Scale {
  const values = panel.groups.flatMap((g) =>
    g.bars.flatMap((b) => [b.value, b.low ?? b.value, b.high ?? b.value])
  ).filter((v) => v > 0 && Number.isFinite(v));
  if (panel.reference !== undefined) values.push(panel.reference.value);
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  const log = panel.log ?? hi / lo > 30;
  if (log) {
    const a = Math.floor(Math.log10(lo));
    const b = Math.max(a + 1, Math.ceil(Math.log10(hi)));
    const ticks: number[] = [];
    for (let e = a; e <= b; e++) ticks.push(10 ** e);
    return {
      x: (v) => ((Math.log10(Math.max(v, 10 ** a)) - a) / (b - a)) * plotW,
      ticks,
    };
  }
  const raw = hi / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw)!;
  const top = Math.ceil(hi / step) * step;
  const ticks: number[] = [];
  for (let t = 0; t <= top + step / 2; t += step) ticks.push(t);
  return { x: (v) => (Math.max(0, v) / top) * plotW, ticks };
}

function panelHeight(panel: Panel): number {
  const rows = panel.groups.reduce((n, g) => n + g.bars.length, 0);
  return 40 + panel.groups.length * (GROUP_HEAD + GROUP_GAP) + rows * (BAR_H + BAR_GAP) + 34;
}

function renderPanel(panel: Panel, top: number): string {
  const plotW = WIDTH - LABEL_W - RIGHT_W;
  const scale = scaleOf(panel, plotW);
  const format = panel.format ?? compact;
  const height = panelHeight(panel);
  const out: string[] = [];
  const x0 = LABEL_W;
  out.push(
    `<text x="12" y="${top + 22}" font-size="15" font-weight="600">${escape(panel.title)}</text>`,
  );
  const plotTop = top + 36;
  const plotBottom = top + height - 34;
  // Grid and ticks.
  for (const t of scale.ticks) {
    const x = x0 + scale.x(t);
    out.push(
      `<line x1="${x.toFixed(1)}" y1="${plotTop}" x2="${
        x.toFixed(1)
      }" y2="${plotBottom}" stroke="#e3e3e3"/>`,
      `<text x="${x.toFixed(1)}" y="${
        plotBottom + 14
      }" font-size="11" fill="#666" text-anchor="middle">${escape(format(t))}</text>`,
    );
  }
  out.push(
    `<text x="${x0 + plotW / 2}" y="${
      plotBottom + 29
    }" font-size="11" fill="#444" text-anchor="middle">${escape(panel.unit)}</text>`,
  );
  let y = plotTop;
  for (const group of panel.groups) {
    out.push(
      `<text x="12" y="${y + 13}" font-size="12" font-weight="600" fill="#222">${
        escape(group.label)
      }</text>`,
    );
    y += GROUP_HEAD;
    for (const bar of group.bars) {
      const w = Math.max(1, scale.x(bar.value));
      const colour = bar.colour ?? colourOf(bar.label);
      out.push(
        `<text x="${x0 - 6}" y="${y + BAR_H - 3}" font-size="11" fill="#333" text-anchor="end">${
          escape(bar.label)
        }</text>`,
        `<rect x="${x0}" y="${y}" width="${
          w.toFixed(1)
        }" height="${BAR_H}" fill="${colour}" rx="2">` +
          `<title>${
            escape(`${group.label} · ${bar.label}: ${bar.text ?? format(bar.value)}`)
          }</title></rect>`,
      );
      let end = x0 + w;
      if (bar.low !== undefined && bar.high !== undefined && bar.high > bar.low) {
        const a = x0 + scale.x(bar.low);
        const b = x0 + scale.x(bar.high);
        const mid = y + BAR_H / 2;
        out.push(
          `<path d="M${a.toFixed(1)} ${mid}H${b.toFixed(1)}M${a.toFixed(1)} ${mid - 4}v8M${
            b.toFixed(1)
          } ${mid - 4}v8" stroke="#222" stroke-width="1.2" fill="none"/>`,
        );
        end = Math.max(end, b);
      }
      out.push(
        `<text x="${(end + 5).toFixed(1)}" y="${y + BAR_H - 3}" font-size="11" fill="#222">${
          escape(bar.text ?? format(bar.value))
        }</text>`,
      );
      y += BAR_H + BAR_GAP;
    }
    y += GROUP_GAP;
  }
  if (panel.reference !== undefined) {
    const x = x0 + scale.x(panel.reference.value);
    out.push(
      `<line x1="${x.toFixed(1)}" y1="${plotTop - 4}" x2="${
        x.toFixed(1)
      }" y2="${plotBottom}" stroke="#444" stroke-dasharray="4 3"/>`,
      `<text x="${(x + 4).toFixed(1)}" y="${plotTop + 2}" font-size="10" fill="#444">${
        escape(panel.reference.label)
      }</text>`,
    );
  }
  return out.join("\n");
}

/** Splits a footer at its " · " separators into lines that fit the width. */
function wrap(text: string, max = Math.floor((WIDTH - 24) / 5.6)): string[] {
  const lines: string[] = [];
  for (const part of text.split(" · ")) {
    const last = lines.length - 1;
    if (last >= 0 && lines[last].length + 3 + part.length <= max) lines[last] += ` · ${part}`;
    else lines.push(part);
  }
  return lines;
}

/** One SVG document: the panels stacked, with a footer (the machine, the date). */
export function chart(panels: Panel[], footer: string): string {
  let top = 0;
  const body: string[] = [];
  for (const panel of panels) {
    body.push(renderPanel(panel, top));
    top += panelHeight(panel) + 8;
  }
  const lines = wrap(footer);
  const height = top + 8 + lines.length * 13;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" style="${FONT}">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<g style="${FONT}">`,
    ...body,
    ...lines.map((line, i) =>
      `<text x="12" y="${top + 12 + i * 13}" font-size="10" fill="#777">${escape(line)}</text>`
    ),
    `</g>`,
    `</svg>`,
    "",
  ].join("\n");
}

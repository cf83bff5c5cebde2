// Drawing: tables and uPlot charts. No fetching here; app.js decides what to show.

/** An element with text content (never HTML: every value comes from data). */
export function el(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (className) e.className = className;
  return e;
}

/** Replaces `tbody`'s rows with `rows`, each an array of cells: text, or {text, className, node}. */
export function fillBody(tbody, rows) {
  tbody.replaceChildren(
    ...rows.map((cells) => {
      const tr = document.createElement("tr");
      for (const cell of cells) {
        const td = el("td", cell && cell.node ? null : cell && typeof cell === "object" ? cell.text : cell);
        if (cell && cell.className) td.className = cell.className;
        if (cell && cell.node) td.append(cell.node);
        tr.append(td);
      }
      return tr;
    }),
  );
}

/** Shows `text` in `node` (hidden when empty). */
export function say(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

const charts = new Map();

/** A bar chart of `values` over category `labels` in `container`, sized to it; drawn again when the width changes. */
export function barChart(container, { labels, values, label, describe }) {
  const old = charts.get(container);
  if (old) old.chart.destroy();
  container.setAttribute("aria-label", describe);
  if (!labels.length) {
    charts.delete(container);
    container.replaceChildren(el("p", "Nothing to draw yet.", "hint"));
    return;
  }
  container.replaceChildren();
  const xs = labels.map((_, i) => i);
  const width = Math.max(280, container.clientWidth);
  const narrow = width < 600;
  const bars = window.uPlot.paths.bars({ size: [0.7, 64], align: 0 });
  const opts = {
    width,
    height: narrow ? 220 : 280,
    legend: { show: false },
    cursor: { show: true, points: { show: false }, drag: { x: false, y: false } },
    scales: { x: { time: false, range: [-0.5, labels.length - 0.5] }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [
      {
        splits: () => xs,
        values: (_u, splits) => splits.map((i) => shorten(labels[i] ?? "", narrow ? 8 : 16)),
        rotate: labels.length > (narrow ? 4 : 8) ? -45 : 0,
        size: labels.length > (narrow ? 4 : 8) ? 70 : 40,
        gap: 4,
      },
      { size: 60 },
    ],
    series: [{}, { label, fill: "#3b6ea8", stroke: "#2a5388", paths: bars, points: { show: false } }],
  };
  const chart = new window.uPlot(opts, [xs, values], container);
  charts.set(container, { chart, labels });
}

function shorten(text, max) {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Keeps every chart as wide as its box. */
export function followWidths() {
  let pending = null;
  window.addEventListener("resize", () => {
    clearTimeout(pending);
    pending = setTimeout(() => {
      for (const [container, { chart }] of charts) {
        chart.setSize({ width: Math.max(280, container.clientWidth), height: chart.height });
      }
    }, 100);
  });
}

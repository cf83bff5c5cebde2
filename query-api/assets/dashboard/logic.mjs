// The dashboard's logic that is more than wiring: pure functions, tested by logic.test.mjs (`node --test`).

/** The URL of `rel="next"` in a Link header, or null. */
export function nextLink(header) {
  if (!header) return null;
  for (const part of header.split(/,(?=\s*<)/)) {
    const m = part.match(/^\s*<([^>]*)>\s*;(.*)$/);
    if (m && /(^|;)\s*rel\s*=\s*"?([^";]*\s)?next(\s[^";]*)?"?\s*(;|$)/i.test(m[2])) return m[1];
  }
  return null;
}

/** A relative API path: the Link header's absolute path made relative, so the page works under a stage prefix. */
export function relative(path) {
  return path.startsWith("/") ? path.slice(1) : path;
}

/** `totalrevenue` as shown: exact decimal text, and "unknown" where no price is known (never 0). */
export function revenueText(value) {
  return value === null || value === undefined ? "unknown" : String(value);
}

/** The query string of an item report request. */
export function itemQuery({ sort = "itemid", order = "asc", limit, consistentWith = [] }) {
  const q = new URLSearchParams({ sort, order });
  if (limit) q.set("limit", String(limit));
  for (const c of consistentWith) q.append("consistentWith", c);
  return q.toString();
}

/** The top-items chart's series: labels and values in the API's order; an unknown revenue counts as 0 there. */
export function topSeries(rows, by) {
  const labels = rows.map((r) => r.itemid);
  const values = rows.map((r) => (by === "totalrevenue" ? Number(r.totalrevenue ?? 0) : r.totalordered));
  return { labels, values };
}

/** The monthly chart's series: the API gives newest first; a chart reads oldest to newest, left to right. */
export function monthSeries(rows) {
  const oldestFirst = [...rows].reverse();
  return { labels: oldestFirst.map((r) => r.monthyear), values: oldestFirst.map((r) => r.monthlyordered) };
}

/** Seconds as a person reads them: "0.4 s", "42 s", "3 min 5 s", "2 h 1 min". */
export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "never";
  if (seconds < 10) return `${Math.max(0, seconds).toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const two = (big, bigUnit, small, smallUnit) => `${big} ${bigUnit}${small ? ` ${small} ${smallUnit}` : ""}`;
  if (s < 3600) return two(Math.floor(s / 60), "min", s % 60, "s");
  if (s < 86400) return two(Math.floor(s / 3600), "h", Math.floor((s % 3600) / 60), "min");
  return two(Math.floor(s / 86400), "d", Math.floor((s % 86400) / 3600), "h");
}

/** `/projection/status` as rows of the panel, and the warning to show (null when every source is within it). */
export function lagView(status, thresholdOverride) {
  const threshold = thresholdOverride ?? status.lagThresholdSeconds;
  const rows = (status.sources || []).map((s) => ({
    source: s.source,
    lag: duration(s.lagSeconds),
    behind: `${s.behind}${s.behindAtLeast ? "+" : ""}`,
    sinceLastChange: duration(s.secondsSinceLastChange),
    position: s.sequence ?? "none yet",
    over: s.lagSeconds > threshold,
  }));
  const over = rows.filter((r) => r.over).map((r) => r.source);
  const warning = over.length
    ? `Lag over ${duration(threshold)} on ${over.join(", ")}: the reports are behind the orders.`
    : status.status && status.status !== "ok"
      ? (status.reasons || []).map((r) => r.message).join(" ") || `Projection ${status.status}.`
      : null;
  return { rows, warning };
}

/** The order form's values as the command API's body. Quantities that read as integers go as numbers; anything else
 * goes as typed, so the API's own validation names what is wrong. Blank lines are left out. */
export function orderBody(orderId, lines) {
  const items = lines
    .filter((l) => l.itemid.trim() || String(l.quantity).trim() || (l.unitPrice || "").trim())
    .map((l) => {
      const q = String(l.quantity).trim();
      const line = { itemid: l.itemid.trim(), quantity: /^-?\d+$/.test(q) ? Number(q) : q };
      if ((l.unitPrice || "").trim()) line.unitPrice = l.unitPrice.trim();
      return line;
    });
  return { orderId: orderId.trim(), items };
}

/** A 422's details by field (`orderId`, `items[0].quantity`, ...), several reasons joined. */
export function fieldErrors(details) {
  const byField = new Map();
  for (const d of details || []) {
    byField.set(d.field, byField.has(d.field) ? `${byField.get(d.field)}; ${d.reason}` : d.reason);
  }
  return byField;
}

/** The bearer token a hosted login put in the URL fragment (`#access_token=...` or `#id_token=...`), or null. */
export function tokenFromFragment(hash) {
  const params = new URLSearchParams((hash || "").replace(/^#/, ""));
  return params.get("access_token") || params.get("id_token") || null;
}

/** An error answer's text as the API words it: "code: message". */
export function apiErrorText(status, body) {
  const e = body && body.error;
  return e && e.code ? `${e.code}: ${e.message}` : `HTTP ${status}`;
}

/** Whether a query in `state` can still change. */
export function running(state) {
  return state === "QUEUED" || state === "RUNNING";
}

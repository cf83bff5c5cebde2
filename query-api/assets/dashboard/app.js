// The dashboard's wiring: what each control fetches and where the answer goes. Every call goes to this API
// (relative paths, so a stage prefix works) or to the command API named by dashboard/config.json.
import {
  apiErrorText, fieldErrors, itemQuery, lagView, monthSeries, nextLink, orderBody, relative, revenueText, running,
  tokenFromFragment, topSeries,
} from "./logic.mjs";
import { barChart, el, fillBody, followWidths, say } from "./views.mjs";

const $ = (id) => document.getElementById(id);
const PAGE = 20;
const TOP = 10;
const STATUS_EVERY_MS = 3000;
const RESULTS_PAGE = 25;

let config = { commandApi: null, auth: "none" };
let token = null;
const items = { sort: "itemid", order: "asc", before: [], current: null, next: null };
let chartBy = "totalordered";
let selectedItem = null;
let query = { id: null, nextToken: null };

/** One call: the bearer token when there is one; the answer's JSON (or text); never throws. */
async function call(url, init = {}) {
  const headers = new Headers(init.headers || {});
  const used = token;
  if (used) headers.set("authorization", `Bearer ${used}`);
  if (!headers.has("accept")) headers.set("accept", "application/json");
  let response;
  try {
    response = await fetch(url, { ...init, headers });
  } catch (e) {
    return { status: 0, ok: false, headers: new Headers(), body: { error: { code: "unreachable", message: `cannot reach ${url}: ${e.message}` } } };
  }
  const text = await response.text();
  let body = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: kept as text
  }
  // A refusal of a token already replaced (an older call still in flight) is no reason to ask again.
  if (response.status === 401 && config.auth === "JWT" && used === token) {
    askForToken("The API refused the token (401). Sign in again.");
  }
  return { status: response.status, ok: response.ok, headers: response.headers, body };
}

function askForToken(why) {
  sessionStorage.removeItem("orders-token");
  token = null;
  say($("signin-why"), why);
  $("signin").hidden = false;
  $("token").focus();
}

// ---- item sales: chart and table -------------------------------------------------------------------------------

async function loadChart(consistentWith = []) {
  const r = await call(`itemSalesReport?${itemQuery({ sort: chartBy, order: "desc", limit: TOP, consistentWith })}`);
  if (!r.ok) return say($("items-error"), apiErrorText(r.status, r.body));
  const { labels, values } = topSeries(r.body, chartBy);
  const what = chartBy === "totalrevenue" ? "revenue" : "units";
  const describe = labels.length
    ? `Top ${labels.length} items by ${what}: ${labels.map((l, i) => `${l} ${values[i]}`).join(", ")}`
    : "No items yet";
  barChart($("items-chart"), { labels, values, label: what, describe });
}

function firstItemsPage(consistentWith = []) {
  return `itemSalesReport?${itemQuery({ sort: items.sort, order: items.order, limit: PAGE, consistentWith })}`;
}

async function loadItems(url) {
  const r = await call(url);
  if (!r.ok) return say($("items-error"), apiErrorText(r.status, r.body));
  say($("items-error"), "");
  items.current = url;
  items.next = nextLink(r.headers.get("link"));
  fillBody(
    $("items-table").tBodies[0],
    r.body.map((row) => {
      const pick = el("button", row.itemid, "link");
      pick.type = "button";
      pick.title = `Show ${row.itemid} by month`;
      pick.addEventListener("click", () => showMonthly(row.itemid, [], true));
      return [
        { node: pick },
        { text: row.totalordered, className: "num" },
        { text: revenueText(row.totalrevenue), className: row.totalrevenue === null ? "num unknown" : "num" },
        { text: row.pricedordered, className: "num" },
        { text: row.ordercount, className: "num" },
        row.lastorderdate ?? "",
      ];
    }),
  );
  for (const th of $("items-table").tHead.rows[0].cells) {
    if (!th.dataset.sort) continue;
    if (th.dataset.sort === items.sort) th.setAttribute("aria-sort", items.order === "asc" ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
  $("items-prev").disabled = items.before.length === 0;
  $("items-first").disabled = items.before.length === 0;
  $("items-next").disabled = !items.next;
  const shown = r.body.length ? `Page ${items.before.length + 1}, ${r.body.length} items` : "No items yet";
  $("items-where").textContent = shown;
}

function sortBy(key) {
  if (items.sort === key) items.order = items.order === "asc" ? "desc" : "asc";
  else [items.sort, items.order] = [key, key === "itemid" ? "asc" : "desc"];
  items.before = [];
  loadItems(firstItemsPage());
}

// ---- monthly ---------------------------------------------------------------------------------------------------

async function showMonthly(item, consistentWith = [], focus = false) {
  selectedItem = item;
  $("monthly-item").value = item;
  if (focus) $("monthly").scrollIntoView({ block: "start" });
  const q = new URLSearchParams();
  for (const c of consistentWith) q.append("consistentWith", c);
  const r = await call(`monthlySalesByItem/${encodeURIComponent(item)}${q.size ? `?${q}` : ""}`);
  if (!r.ok) {
    say($("monthly-error"), apiErrorText(r.status, r.body));
    $("monthly-table").hidden = true;
    barChart($("monthly-chart"), { labels: [], values: [], label: "units", describe: "No months to show" });
    return;
  }
  say($("monthly-error"), "");
  const { labels, values } = monthSeries(r.body);
  barChart($("monthly-chart"), {
    labels, values, label: "units",
    describe: `Units of ${item} by UTC month: ${labels.map((l, i) => `${l} ${values[i]}`).join(", ") || "none"}`,
  });
  $("monthly-caption").textContent = r.body.length ? `${item}, newest month first` : `${item} has no sales yet`;
  fillBody($("monthly-table").tBodies[0], r.body.map((m) => [m.monthyear, { text: m.monthlyordered, className: "num" }]));
  $("monthly-table").hidden = false;
}

// ---- projection status -----------------------------------------------------------------------------------------

async function loadStatus() {
  const r = await call("projection/status");
  if (!r.ok || !r.body || !Array.isArray(r.body.sources)) {
    say($("status-error"), apiErrorText(r.status, r.body));
  } else {
    say($("status-error"), "");
    const view = lagView(r.body);
    fillBody($("status-table").tBodies[0], view.rows.map((s) => [
      s.source, { text: s.lag, className: s.over ? "over" : "" }, s.behind, s.sinceLastChange, s.position,
    ]));
    say($("status-warning"), view.warning);
  }
  setTimeout(loadStatus, STATUS_EVERY_MS);
}

// ---- placing an order ------------------------------------------------------------------------------------------

function addLine() {
  const box = $("order-lines");
  const i = box.querySelectorAll(".line").length;
  const line = el("div", null, "line");
  for (const [name, label, mode] of [["itemid", "Item id", "text"], ["quantity", "Quantity", "numeric"], ["unitPrice", "Unit price (optional)", "decimal"]]) {
    const field = el("div", null, "field");
    const id = `line-${i}-${name}`;
    const lab = el("label", `${label}, line ${i + 1}`);
    lab.htmlFor = id;
    const input = el("input");
    Object.assign(input, { id, name, autocomplete: "off", inputMode: mode });
    input.dataset.field = `items[${i}].${name}`;
    const error = el("span", null, "field-error");
    error.dataset.errorFor = `items[${i}].${name}`;
    error.id = `${id}-error`;
    field.append(lab, input, error);
    line.append(field);
  }
  const lineError = el("span", null, "field-error");
  lineError.dataset.errorFor = `items[${i}]`;
  line.append(lineError);
  box.append(line);
  return line;
}

function showFieldErrors(details) {
  const form = $("order-form");
  for (const e of form.querySelectorAll(".field-error")) e.textContent = "";
  for (const i of form.querySelectorAll("[aria-invalid]")) {
    i.removeAttribute("aria-invalid");
    i.removeAttribute("aria-describedby");
  }
  const left = [];
  for (const [field, reason] of fieldErrors(details)) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(field)}"]`);
    if (!slot) {
      left.push(`${field}: ${reason}`);
      continue;
    }
    slot.textContent = reason;
    const input = form.querySelector(`[data-field="${CSS.escape(field)}"]`);
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", slot.id);
    }
  }
  return left;
}

async function placeOrder(event) {
  event.preventDefault();
  const lines = [...$("order-lines").querySelectorAll(".line")].map((line) => ({
    itemid: line.querySelector("[name=itemid]").value,
    quantity: line.querySelector("[name=quantity]").value,
    unitPrice: line.querySelector("[name=unitPrice]").value,
  }));
  const body = orderBody($("order-id").value, lines);
  showFieldErrors([]);
  $("order-result").textContent = "Sending…";
  const r = await call(`${config.commandApi}/orders`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
  });
  if (!r.ok) {
    const left = r.status === 422 ? showFieldErrors(r.body.error.details) : [];
    $("order-result").textContent = [apiErrorText(r.status, r.body), ...left].join(" ");
    $("order-form").querySelector("[aria-invalid]")?.focus();
    return;
  }
  const { commandResult, orderId, version } = r.body;
  const consistentWith = [`${orderId}:${version}`];
  $("order-result").textContent = `${commandResult}: order ${orderId}, version ${version}. The reports below now include it.`;
  items.before = [];
  const item = selectedItem ?? body.items[0]?.itemid;
  await Promise.all([loadChart(consistentWith), loadItems(firstItemsPage(consistentWith)), item && showMonthly(item, consistentWith)]);
}

// ---- ad-hoc SQL ------------------------------------------------------------------------------------------------

async function runQuery(event) {
  event.preventDefault();
  say($("console-error"), "");
  $("console-table").hidden = true;
  $("console-next").hidden = true;
  $("console-download").hidden = true;
  $("console-state").textContent = "Submitting…";
  const r = await call("queries", {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ sql: $("sql").value }),
  });
  if (!r.ok) {
    $("console-state").textContent = "";
    return say($("console-error"), apiErrorText(r.status, r.body));
  }
  query = { id: r.body.queryId, nextToken: null };
  $("console-cancel").disabled = false;
  follow(r.body.queryId);
}

async function follow(id) {
  if (query.id !== id) return;
  const r = await call(`queries/${id}`);
  if (!r.ok) {
    $("console-cancel").disabled = true;
    return say($("console-error"), apiErrorText(r.status, r.body));
  }
  const s = r.body;
  $("console-state").textContent = `Query ${s.state.toLowerCase()}${s.runTimeMs != null ? ` (${s.runTimeMs} ms)` : ""}`;
  if (running(s.state)) return setTimeout(() => follow(id), 400);
  $("console-cancel").disabled = true;
  if (s.state === "SUCCEEDED") {
    const link = $("console-download");
    link.href = `queries/${id}/download`;
    link.download = `${id}.csv`;
    link.hidden = false;
    return loadResults(id, null);
  }
  if (s.failureReason) say($("console-error"), s.failureReason);
}

async function loadResults(id, nextToken) {
  const q = new URLSearchParams({ maxResults: String(RESULTS_PAGE) });
  if (nextToken) q.set("nextToken", nextToken);
  const r = await call(`queries/${id}/results?${q}`);
  if (!r.ok) return say($("console-error"), apiErrorText(r.status, r.body));
  const table = $("console-table");
  const head = document.createElement("tr");
  for (const c of r.body.columns) {
    const th = el("th", c.name);
    th.scope = "col";
    th.title = c.type;
    head.append(th);
  }
  table.tHead.replaceChildren(head);
  fillBody(table.tBodies[0], r.body.rows.map((row) => row.map((v) => (v === null ? { text: "NULL", className: "unknown" } : v))));
  table.hidden = false;
  query.nextToken = r.body.nextToken ?? null;
  $("console-next").hidden = !query.nextToken;
}

/** With a bearer token a plain link cannot authorize the download: fetch it with the token, then save the CSV
 * that came, or (AWS) go to the presigned link the API gives instead of a redirect the token must not follow. */
async function downloadWithToken(event) {
  if (!token) return;
  event.preventDefault();
  const link = event.currentTarget;
  const headers = { authorization: `Bearer ${token}`, accept: "application/json, text/csv;q=0.9" };
  const r = await fetch(link.getAttribute("href"), { headers }).catch((e) => ({ ok: false, status: 0, e }));
  const json = r.ok === false || (r.headers.get("content-type") || "").startsWith("application/json");
  const body = json && r.json ? await r.json().catch(() => null) : null;
  if (!r.ok) return say($("console-error"), apiErrorText(r.status, body));
  if (body && body.url) return window.location.assign(body.url);
  const url = URL.createObjectURL(await r.blob());
  const save = el("a");
  save.href = url;
  save.download = link.download;
  save.click();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function cancelQuery() {
  if (!query.id) return;
  const r = await call(`queries/${query.id}`, { method: "DELETE" });
  if (!r.ok) say($("console-error"), apiErrorText(r.status, r.body));
}

// ---- start -----------------------------------------------------------------------------------------------------

function wire() {
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    token = $("token").value.trim();
    sessionStorage.setItem("orders-token", token);
    $("signin").hidden = true;
    start();
  });
  for (const radio of document.querySelectorAll("input[name=chart-by]")) {
    radio.addEventListener("change", () => {
      chartBy = radio.value;
      loadChart();
    });
  }
  $("items-refresh").addEventListener("click", () => {
    loadChart();
    loadItems(items.current ?? firstItemsPage());
  });
  for (const th of $("items-table").tHead.rows[0].cells) {
    if (th.dataset.sort) th.querySelector("button").addEventListener("click", () => sortBy(th.dataset.sort));
  }
  $("items-next").addEventListener("click", () => {
    if (!items.next) return;
    items.before.push(items.current);
    loadItems(relative(items.next));
  });
  $("items-prev").addEventListener("click", () => items.before.length && loadItems(items.before.pop()));
  $("items-first").addEventListener("click", () => {
    items.before = [];
    loadItems(firstItemsPage());
  });
  $("monthly-form").addEventListener("submit", (e) => {
    e.preventDefault();
    showMonthly($("monthly-item").value.trim());
  });
  $("order-add-line").addEventListener("click", () => addLine().querySelector("input").focus());
  $("order-form").addEventListener("submit", placeOrder);
  $("console-form").addEventListener("submit", runQuery);
  $("console-cancel").addEventListener("click", cancelQuery);
  $("console-next").addEventListener("click", () => loadResults(query.id, query.nextToken));
  $("console-download").addEventListener("click", downloadWithToken);
  followWidths();
}

let polling = false;
/** Loads what the page shows; again after a new token. The lag panel's polling starts once. */
function start() {
  if (!polling) {
    polling = true;
    loadStatus();
  }
  loadChart();
  loadItems(items.current ?? firstItemsPage());
  if (selectedItem) showMonthly(selectedItem);
}

async function boot() {
  addLine();
  wire();
  const r = await call("dashboard/config.json");
  if (r.ok) config = r.body;
  if (!config.commandApi) {
    for (const c of $("order-form").elements) c.disabled = true;
    $("order-result").textContent = "The command API's URL is not configured (DASHBOARD_COMMAND_API_URL).";
  }
  if (config.auth === "JWT") {
    const fromFragment = tokenFromFragment(window.location.hash);
    if (fromFragment) {
      sessionStorage.setItem("orders-token", fromFragment);
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    token = fromFragment || sessionStorage.getItem("orders-token");
    if (!token) return askForToken("These APIs take a bearer token (JWT) from your identity provider: paste one, or sign in through its hosted page and come back here.");
  }
  start();
}

boot();

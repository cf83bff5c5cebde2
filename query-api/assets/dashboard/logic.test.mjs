// The dashboard's logic as specifications: `node --test query-api/assets/dashboard/` (run by ./scripts/test).
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  apiErrorText, duration, fieldErrors, itemQuery, lagView, monthSeries, nextLink, orderBody, relative, revenueText,
  running, tokenFromFragment, topSeries,
} from "./logic.mjs";

test("given the report's Link header, then the next page's URL is taken from rel=next only", () => {
  const url = "/itemSalesReport?sort=itemid&order=asc&limit=20&cursor=abc%3D";
  assert.equal(nextLink(`<${url}>; rel="next"`), url);
  assert.equal(nextLink(`</a>; rel="prev", <${url}>; rel="next"`), url);
  assert.equal(nextLink(`</a?x=1,2>; rel="prev"`), null);
  assert.equal(nextLink(null), null);
  assert.equal(relative(url), url.slice(1), "relative, so a stage prefix is kept");
});

test("given an unknown revenue, then it reads 'unknown', never 0", () => {
  assert.equal(revenueText(null), "unknown");
  assert.equal(revenueText("0"), "0");
  assert.equal(revenueText("15.0006"), "15.0006");
});

test("given sort, order, page size and writes to wait for, then the report's query string carries them all", () => {
  const q = new URLSearchParams(itemQuery({ sort: "totalrevenue", order: "desc", limit: 10, consistentWith: ["a:1", "b:2"] }));
  assert.deepEqual([...q], [["sort", "totalrevenue"], ["order", "desc"], ["limit", "10"], ["consistentWith", "a:1"], ["consistentWith", "b:2"]]);
  assert.equal(itemQuery({}), "sort=itemid&order=asc");
});

test("given the top items by revenue, then an unknown revenue is a zero bar and the API's order is kept", () => {
  const rows = [
    { itemid: "a", totalordered: 3, totalrevenue: "10.50" },
    { itemid: "b", totalordered: 9, totalrevenue: null },
  ];
  assert.deepEqual(topSeries(rows, "totalrevenue"), { labels: ["a", "b"], values: [10.5, 0] });
  assert.deepEqual(topSeries(rows, "totalordered"), { labels: ["a", "b"], values: [3, 9] });
});

test("given months newest first, then the chart reads oldest to newest with the API's labels", () => {
  const rows = [
    { monthyear: "December 2022", month: "2022-12", monthlyordered: 4 },
    { monthyear: "November 2022", month: "2022-11", monthlyordered: 6 },
  ];
  assert.deepEqual(monthSeries(rows), { labels: ["November 2022", "December 2022"], values: [6, 4] });
  assert.equal(rows[0].month, "2022-12", "the rows themselves are left as they came");
});

test("given seconds, then they read as a person says them", () => {
  assert.equal(duration(0.04), "0.0 s");
  assert.equal(duration(4.25), "4.3 s");
  assert.equal(duration(42), "42 s");
  assert.equal(duration(185), "3 min 5 s");
  assert.equal(duration(7260), "2 h 1 min");
  assert.equal(duration(90000), "1 d 1 h");
  assert.equal(duration(60), "1 min");
  assert.equal(duration(null), "never");
});

test("given a source past the lag threshold, then it is flagged and the warning names it", () => {
  const status = {
    status: "degraded",
    reasons: [{ code: "lagging", message: "orders is 95 s behind" }],
    lagThresholdSeconds: 60,
    sources: [
      { source: "orders", sequence: "17", behind: 3, behindAtLeast: false, lagSeconds: 95, secondsSinceLastChange: 2 },
      { source: "stream", sequence: null, behind: 100, behindAtLeast: true, lagSeconds: 1, secondsSinceLastChange: null },
    ],
  };
  const view = lagView(status);
  assert.deepEqual(view.rows.map((r) => [r.source, r.over, r.behind, r.position]), [["orders", true, "3", "17"], ["stream", false, "100+", "none yet"]]);
  assert.match(view.warning, /over 1 min on orders/);
  assert.equal(view.rows[1].sinceLastChange, "never");
});

test("given every source within the threshold, then no warning unless the API reports another reason", () => {
  const ok = { status: "ok", reasons: [], lagThresholdSeconds: 60, sources: [{ source: "orders", behind: 0, lagSeconds: 0.2 }] };
  assert.equal(lagView(ok).warning, null);
  const letters = { ...ok, status: "degraded", reasons: [{ code: "dead_letters", message: "1 change set aside" }] };
  assert.equal(lagView(letters).warning, "1 change set aside");
});

test("given the form's lines, then integers go as numbers, the rest as typed, blank lines left out", () => {
  const body = orderBody(" 6119 ", [
    { itemid: "z3333", quantity: "6", unitPrice: "" },
    { itemid: " a1 ", quantity: "two", unitPrice: "2.50" },
    { itemid: "", quantity: "", unitPrice: "" },
  ]);
  assert.deepEqual(body, { orderId: "6119", items: [{ itemid: "z3333", quantity: 6 }, { itemid: "a1", quantity: "two", unitPrice: "2.50" }] });
});

test("given a 422's details, then each field gets its reasons, several joined", () => {
  const byField = fieldErrors([
    { field: "orderId", reason: "must not be empty" },
    { field: "items[0].quantity", reason: "must be at least 1" },
    { field: "items[0].quantity", reason: "must be an integer" },
  ]);
  assert.equal(byField.get("orderId"), "must not be empty");
  assert.equal(byField.get("items[0].quantity"), "must be at least 1; must be an integer");
});

test("given a hosted login's fragment, then its token is taken", () => {
  assert.equal(tokenFromFragment("#access_token=abc.def&token_type=Bearer"), "abc.def");
  assert.equal(tokenFromFragment("#id_token=xyz"), "xyz");
  assert.equal(tokenFromFragment("#items"), null);
  assert.equal(tokenFromFragment(""), null);
});

test("given an error answer, then it reads as the API words it", () => {
  assert.equal(apiErrorText(400, { error: { code: "sql_not_a_query", message: "only queries" } }), "sql_not_a_query: only queries");
  assert.equal(apiErrorText(502, "Bad Gateway"), "HTTP 502");
  assert.ok(running("QUEUED") && running("RUNNING") && !running("SUCCEEDED") && !running("CANCELLED"));
});

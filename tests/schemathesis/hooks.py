"""Rules the servers enforce that JSON Schema cannot state, applied to the requests schemathesis generates as valid.

Each rule is in the OpenAPI descriptions too. Only requests generated as schema-valid ("positive") are touched: the
check that valid requests are accepted then holds the servers to every rule the documents state, and nothing
more. Requests generated to break the schema ("negative") are sent as generated.
"""

import datetime
import re

import schemathesis

VALID_SQL = "SELECT itemid, SUM(quantity) AS total FROM order_lines_current GROUP BY itemid"
# An order the run creates before it starts (tests/schemathesis/run): `consistentWith` names a version a command
# returned, so a valid one names an order that exists.
SEEDED_VERSION = "schemathesis-seed:1"
EARLIEST = datetime.datetime(1900, 1, 1, tzinfo=datetime.timezone.utc)


def _positive(case):
    meta = case.meta
    return meta is None or not meta.generation.mode.is_negative


def _parse_order_date(text):
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.timezone.utc)
        parsed = datetime.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        return parsed if parsed.tzinfo else None
    except ValueError:
        return None


def _lines(items):
    """An item at most once per order; whole numbers written as 6, not 6.0; prices rounded to 4 places."""
    seen, kept = set(), []
    for line in items:
        if not isinstance(line, dict):
            kept.append(line)
            continue
        if line.get("itemid") in seen:
            continue
        seen.add(line.get("itemid"))
        if isinstance(line.get("quantity"), float) and line["quantity"].is_integer():
            line["quantity"] = int(line["quantity"])
        price = line.get("unitPrice")
        if isinstance(price, float):
            line["unitPrice"] = round(price, 4)
        kept.append(line)
    return kept


def _order_body(body):
    if isinstance(body.get("items"), list):
        body["items"] = _lines(body["items"])
    date = body.get("orderDate")
    if isinstance(date, str):
        parsed = _parse_order_date(date)
        now = datetime.datetime.now(datetime.timezone.utc)
        # From 1900-01-01 to at most a day ahead of now.
        if parsed is not None and not (EARLIEST <= parsed <= now + datetime.timedelta(days=1)):
            body["orderDate"] = "2022-10-13"


def _if_match_version(headers):
    raw = (headers or {}).get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    return int(raw.strip().removeprefix("W/").strip('"'))


CONSISTENT_WITH = re.compile(r"^[A-Za-z0-9._:-]{1,64}:0*[1-9][0-9]{0,17}$")


@schemathesis.hook
def before_call(context, case, kwargs):
    method, path = case.operation.method.upper(), case.operation.path
    if method == "GET" and path in ("/itemSalesReport", "/monthlySalesByItem/{itemid}"):
        # Whatever else a case breaks, a well-formed `consistentWith` names a version a command returned: the seeded
        # order's (one that does not exist is waited for, then answered 503, as documented). Malformed ones stay.
        query = case.query or {}
        values = query.get("consistentWith")
        if isinstance(values, str):
            values = [values]
        if isinstance(values, list):
            query["consistentWith"] = [
                SEEDED_VERSION if isinstance(v, str) and CONSISTENT_WITH.match(v) else v for v in values
            ]
    if not _positive(case):
        return
    body = case.body if isinstance(case.body, dict) else None
    if method == "POST" and path in ("/orders", "/") and body is not None:
        _order_body(body)
    elif method == "PUT" and path == "/orders/{orderId}" and body is not None:
        _order_body(body)
        # If present, the body's orderId is the path's.
        if body.get("orderId") is not None:
            body["orderId"] = case.path_parameters["orderId"]
        # The version read, in If-Match or the body (one of the two; equal when both), written as 3, not 3.0.
        if isinstance(body.get("version"), float) and body["version"].is_integer():
            body["version"] = int(body["version"])
        header = _if_match_version(case.headers)
        if header is None and body.get("version") is None:
            body["version"] = 1
        elif header is not None and body.get("version") is not None:
            body["version"] = header
    elif method == "POST" and path == "/queries" and body is not None:
        # One query over the lake's tables (what the guard checks is not a schema's business).
        if isinstance(body.get("QueryString"), str):
            body["QueryString"] = VALID_SQL
        elif isinstance(body.get("sql"), str):
            body["sql"] = VALID_SQL
    elif method == "GET" and path == "/queries/{id}/results":
        # A token is one the previous page of this query gave.
        (case.query or {}).pop("nextToken", None)
    if method == "GET" and path == "/itemSalesReport":
        # A cursor is one a previous page's Link header gave, for the same sort.
        (case.query or {}).pop("cursor", None)

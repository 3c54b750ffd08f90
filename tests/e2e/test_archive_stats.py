"""End to end: the archive and the statistics over HTTP, and erasure.

All six services run as real processes. A few complaints are driven to
closed; then:
  - GET /v1/archive/{case_no} returns the immutable record (case, whole
    history, notifications) without contact data; a handler of another
    department and an unknown case get 404; no token gets 401;
  - GET /v1/archive?from=&to= exports the day's records as JSON lines,
    paged with limit and X-Next-Cursor (keyset) or X-Next-Offset; a bad
    cursor, or a cursor with an offset, is 400 naming "cursor";
  - GET /v1/stats counts the cases by channel (JSON and CSV), and
    `kesuctl stats` prints the same figures as a table;
  - bad dates and group_by values are 400 with the field named;
  - `kesuctl template render --case` previews a notice with the case's values;
  - `kesuctl complainant erase --case` purges the contact data (the case
    and its archive record stay), logs it in pii_erasures, and a second
    erase reports "already erased".
"""
import csv
import io
import json
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scripts"))
import kesu_client as kc  # noqa: E402

HTTP_PORT = int(os.environ.get("KESU_E2E_HTTP_PORT", "18280"))
OPS_BASE = int(os.environ.get("KESU_E2E_OPS_BASE", "19300"))
N = 4

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        kc.log("FAIL: " + msg)


def raw_get(api, path, token=None):
    """GET returning (status, body text, headers) without JSON decoding."""
    import urllib.request
    import urllib.error
    req = urllib.request.Request(api.base + path)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def main():
    stack = kc.Stack(http_port=HTTP_PORT, ops_base=OPS_BASE)
    kc.log("logs in " + stack.logdir)
    try:
        run(stack)
    finally:
        codes = stack.stop()
        stack.delete_topics()
        check(all(c == 0 for c in codes.values()), "clean exits: %s" % codes)


def run(stack):
    stack.start()
    api = stack.api
    agent = kc.token("agent", label="e2e-archive-agent")
    sup = kc.token("supervisor", label="e2e-archive-supervisor")
    other = kc.token("handler", department="e2e-nobody-%s" % uuid.uuid4().hex[:6],
                     label="e2e-archive-other")
    tag = uuid.uuid4().hex[:8]
    msgs = kc.load_messages(N, 0)
    cases = []
    for i, m in enumerate(msgs):
        phone = "137%08d" % (int(tag[:6], 16) % 10**8 // 10 * 10 + i)
        req = {"channel": "web" if i % 2 else "phone", "title": m["title"], "body": m["body"],
               "language": m["language"], "external_ref": "e2e-arch-%s-%d" % (tag, i),
               "complainant": {"name": "归档测试%d" % i, "phone": phone}}
        if req["channel"] == "phone":  # the phone channel's own details (issue 3)
            req.update(call_id="call-%s-%d" % (tag, i), agent_id="agent-e2e")
        st, js, _ = api.call("POST", "/v1/complaints", req, token=agent)
        check(st == 201, "submit %d: %s %s" % (i, st, js))
        if st == 201:
            cases.append({"no": js["case_no"], "id": js["case_id"], "code": js["access_code"],
                          "phone": phone, "channel": req["channel"]})

    def status_of(c):
        st, js, _ = api.call("GET", "/v1/cases/%s" % c["no"], token=sup)
        return js.get("status") if st == 200 else None

    kc.wait_for(lambda: all(status_of(c) == "assigned" for c in cases), 90, "assigned")
    for c in cases:
        api.call("POST", "/v1/cases/%s/actions" % c["no"], {"action": "accept"}, token=sup)
        st, js, _ = api.call("POST", "/v1/cases/%s/actions" % c["no"],
                             {"action": "resolve", "measures": "explanation",
                              "reply": "已处理，谢谢。"}, token=sup)
        check(st == 200, "%s resolve: %s %s" % (c["no"], st, js))
    kc.wait_for(lambda: all(status_of(c) == "replied" for c in cases), 60, "replied")
    for i, c in enumerate(cases):
        st, js, _ = api.call("POST", "/v1/cases/%s/feedback" % c["no"],
                             {"access_code": c["code"], "satisfaction": 5 if i % 2 else 3})
        check(st == 200 and js.get("status") == "closed", "%s feedback: %s %s"
              % (c["no"], st, js))

    def archived():
        return all(raw_get(api, "/v1/archive/%s" % c["no"], sup)[0] == 200 for c in cases)

    kc.wait_for(archived, 60, "every case archived")

    # --- one record ---------------------------------------------------------
    c0 = cases[0]
    st, body, hdr = raw_get(api, "/v1/archive/%s" % c0["no"], sup)
    doc = json.loads(body)
    check(doc["case_no"] == c0["no"] and doc["versions"] == [doc["case_version"]],
          "archive doc head: %s" % {k: doc.get(k) for k in ("case_no", "case_version",
                                                           "versions")})
    rec = doc["record"]
    types = [e["event_type"] for e in rec["history"]]
    check(types[0] == "CaseReceived" and "CaseClosed" in types, "record history %s" % types)
    check(rec["case"]["case_no"] == c0["no"], "record case row")
    check(not any(k.endswith("_enc") or k.endswith("_hash") for k in rec["case"]),
          "record has no encrypted/hashed columns")
    check(c0["phone"] not in body, "record has no phone number")
    check(rec["feedback"]["satisfaction"] in (3, 5), "record feedback %s" % rec["feedback"])
    check(raw_get(api, "/v1/archive/%s" % c0["no"], other)[0] == 404,
          "handler of another department sees no record")
    check(raw_get(api, "/v1/archive/%s" % c0["no"])[0] == 401, "no token: 401")
    check(raw_get(api, "/v1/archive/NOPE-%s" % tag, sup)[0] == 404, "unknown case: 404")
    check(raw_get(api, "/v1/archive/%s?version=x" % c0["no"], sup)[0] == 400, "bad version")

    # --- the export -----------------------------------------------------------
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
    st, body, hdr = raw_get(api, "/v1/archive?from=%s&to=%s" % (today, today), sup)
    check(st == 200 and hdr.get("Content-Type", "").startswith("application/x-ndjson"),
          "export: %s %s" % (st, hdr.get("Content-Type")))
    lines = [json.loads(x) for x in body.splitlines() if x]
    nos = {x["case_no"] for x in lines}
    check(all(c["no"] in nos for c in cases), "export has every case")
    st, body, hdr = raw_get(api, "/v1/archive?from=%s&limit=1" % today, sup)
    check(st == 200 and len(body.splitlines()) == 1 and hdr.get("X-Next-Offset") == "1",
          "export page 1: %s %s" % (st, hdr.get("X-Next-Offset")))
    st, body, _ = raw_get(api, "/v1/archive?from=%s&limit=1&offset=1" % today, sup)
    check(st == 200 and len(body.splitlines()) == 1, "export page 2")
    # paging by cursor, one record a page, gives the whole export in the same order
    everything = [(x["case_no"], x["case_version"]) for x in lines]
    paged, cursor, pages = [], None, 0
    while pages <= len(everything):
        q = "/v1/archive?from=%s&to=%s&limit=1" % (today, today)
        st, body, hdr = raw_get(api, q + ("&cursor=%s" % cursor if cursor else ""), sup)
        check(st == 200, "cursor page %d: %s %s" % (pages, st, body[:200]))
        paged += [(x["case_no"], x["case_version"]) for x in map(json.loads, body.splitlines())]
        pages += 1
        check(cursor is None or "X-Next-Offset" not in hdr, "cursor page has no X-Next-Offset")
        cursor = hdr.get("X-Next-Cursor")
        if not cursor:
            break
    check(paged == everything, "cursor paging: %d pages, %d of %d records, same order"
          % (pages, len(paged), len(everything)))
    # a cursor from before the range starts at the range's first record
    st, body, _ = raw_get(api, "/v1/archive?from=%s&to=%s&limit=1&cursor=1.1.K" % (today, today),
                          sup)
    first = [(x["case_no"], x["case_version"]) for x in map(json.loads, body.splitlines())]
    check(st == 200 and first == everything[:1], "old cursor: %s %s" % (st, first))
    st, body, _ = raw_get(api, "/v1/archive?from=%s&cursor=12.x.KS1" % today, sup)
    check(st == 400 and json.loads(body)["error"]["field"] == "cursor", "bad cursor: %s" % body)
    st, body, _ = raw_get(api, "/v1/archive?from=%s&cursor=1.1.K&offset=1" % today, sup)
    check(st == 400 and json.loads(body)["error"]["field"] == "cursor",
          "cursor with offset: %s" % body)
    st, body, _ = raw_get(api, "/v1/archive?from=2026-02-30", sup)
    check(st == 400 and json.loads(body)["error"]["field"] == "from", "bad date: %s" % body)

    # --- statistics ------------------------------------------------------------
    def by_channel():
        st, body, _ = raw_get(api, "/v1/stats?from=%s&group_by=channel" % today, sup)
        if st != 200:
            return None
        return {r["channel"]: r for r in json.loads(body)["rows"]}

    rows = by_channel()
    check(rows is not None, "stats json")
    want = {"phone": sum(1 for c in cases if c["channel"] == "phone"),
            "web": sum(1 for c in cases if c["channel"] == "web")}
    for ch, n in want.items():
        r = (rows or {}).get(ch, {})
        # the day may hold other runs' cases of the same database: at least ours
        check(r.get("received", 0) >= n and r.get("closed", 0) >= n,
              "stats %s: %s (want >= %d)" % (ch, r, n))
    st, body, hdr = raw_get(api, "/v1/stats?from=%s&group_by=channel&format=csv" % today, sup)
    check(st == 200 and hdr.get("Content-Type", "").startswith("text/csv"), "csv %s" % st)
    table = list(csv.DictReader(io.StringIO(body)))
    check({r["channel"] for r in table} >= set(want), "csv rows %s" % table)
    check(raw_get(api, "/v1/stats?from=%s&group_by=mood" % today, sup)[0] == 400,
          "bad group_by: 400")
    check(raw_get(api, "/v1/stats?from=%s&format=xml" % today, sup)[0] == 400, "bad format")
    st, body, _ = raw_get(api, "/v1/stats?from=%s&group_by=channel" % today, other)
    check(st == 200 and json.loads(body)["rows"] == [],
          "a handler of another department sees no figures: %s" % body[:200])
    out = kc.kesuctl("stats", "--from", today, "--group_by", "channel").stdout
    check("channel" in out and "received" in out and "phone" in out, "kesuctl stats:\n%s" % out)

    # --- template preview with a real case's values ---------------------------------
    out = kc.kesuctl("template", "render", "--event", "CaseResolved", "--audience",
                     "complainant", "--lang", "en", "--case", c0["no"]).stdout
    check(c0["no"] in out and "Their reply: 已处理，谢谢。" in out, "template render: %s" % out)
    bad = kc.kesuctl("template", "render", "--event", "CaseResolved", "--audience", "mayor",
                     check=False)
    check(bad.returncode == 2 and "--event CaseReceived --audience complainant" in bad.stderr,
          "unknown template lists the known ones: %s" % bad.stderr)

    # --- erasure ----------------------------------------------------------------
    out = kc.kesuctl("complainant", "erase", "--case", c0["no"], "--reason",
                     "complainant asked on the hotline", "--actor", "e2e-operator").stdout
    check(("erased %s" % c0["no"]) in out, "erase: %s" % out)
    rows = kc.psql("SELECT p.phone_enc IS NULL, p.purged_at IS NOT NULL FROM complainants p "
                   "JOIN cases c ON c.complainant_id = p.id WHERE c.case_no = :'p1'", c0["no"])
    check(rows and rows[0] == ["t", "t"], "complainant purged: %s" % rows)
    rows = kc.psql("SELECT actor, kind, reason FROM pii_erasures WHERE :'p1' = ANY (case_nos)",
                   c0["no"])
    check(rows and rows[0] == ["e2e-operator", "request", "complainant asked on the hotline"],
          "erasure logged: %s" % rows)
    out = kc.kesuctl("complainant", "erase", "--case", c0["no"], "--reason", "again").stdout
    check("already erased" in out, "second erase: %s" % out)
    check(raw_get(api, "/v1/archive/%s" % c0["no"], sup)[0] == 200, "archive kept after erase")


if __name__ == "__main__":
    kc.run_main(main)
    if failures:
        kc.log("%d failure(s)" % len(failures))
        sys.exit(1)
    kc.log("ok")

"""End to end: the supervisor console in Debian's headless Chromium.

All six services run as real processes; the sla-monitor's limits are scaled
down (sla.time_scale on the 24x7 calendar) so deadlines pass within the test.
Known cases are submitted - one of them a gas-leak emergency whose title
carries HTML - two are driven to closed with a rating, and then
tests/e2e/console/console.js signs in to GET /console with a token in
headless Chromium (playwright-core, /usr/bin/chromium) and reports what the
page shows. Asserted:
  - the page and its assets are served with a same-origin-only CSP, a wrong
    token is refused on the login form, the token lives in sessionStorage
    only and is gone after signing out, no request leaves the origin;
  - a supervisor sees the live counts per status (equal to the API's, and
    our open cases on top of the baseline), the emergency listed with its
    department, the emergency's SLA timer past its limit, the emergency
    desk's load, the satisfaction trend point for today and its note;
  - the emergency's HTML title is shown as text, never as markup;
  - a handler sees only its own department (row-level security);
  - GET /v1/console/summary: 401 without a token, 403 for an integrator.
Screenshots are saved under the test's temp dir; their paths are printed.
"""
import json
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scripts"))
import kesu_client as kc  # noqa: E402

HTTP_PORT = int(os.environ.get("KESU_CONSOLE_E2E_HTTP_PORT", "18620"))
OPS_BASE = int(os.environ.get("KESU_CONSOLE_E2E_OPS_BASE", "19620"))
HERE = os.path.dirname(os.path.abspath(__file__))
DRIVER = os.path.join(HERE, "console")
CHROMIUM = os.environ.get("KESU_CHROMIUM", "/usr/bin/chromium")
# 1 working day (24 h on the always calendar) becomes 26 s; an emergency's
# 30-minute accept limit half a second
TIME_SCALE = "0.0003"
EMERGENCY_TITLE = "燃气泄漏 <img src=x> <b>紧急</b>"

failures = []
RUN_CASES = []  # case numbers this run submitted, left withdrawn or closed at the end


def check(cond, msg):
    if not cond:
        failures.append(msg)
        kc.log("FAIL: " + msg)


def raw_get(base, path, token=None):
    req = urllib.request.Request(base + path)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def npm_ready():
    if os.path.isdir(os.path.join(DRIVER, "node_modules", "playwright-core")):
        return True
    out = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=DRIVER,
                         capture_output=True, text=True, check=False)
    check(out.returncode == 0, "npm ci: %s" % out.stderr[-800:])
    return out.returncode == 0


def browse(base, token, shot, tmp):
    """Run the browser driver; returns what the page showed."""
    profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp)
    env = dict(os.environ, KESU_CHROMIUM=CHROMIUM)
    out = subprocess.run(["node", os.path.join(DRIVER, "console.js"), base, token, shot, profile],
                         capture_output=True, text=True, env=env, timeout=120, check=False)
    if out.returncode != 0:
        raise RuntimeError("console.js failed (%d): %s" % (out.returncode, out.stderr[-2000:]))
    kc.log("screenshot: " + shot)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    check(os.access(CHROMIUM, os.X_OK), "%s is installed (apt-get install chromium)" % CHROMIUM)
    if failures or not npm_ready():
        return
    tmp = tempfile.mkdtemp(prefix="kesu-console-")
    kc.log("screenshots in " + tmp)
    stack = kc.Stack(http_port=HTTP_PORT, ops_base=OPS_BASE, extra={
        "sla-monitor": ["--sla.time_scale", TIME_SCALE, "--sla.calendar",
                        "deploy/config/calendar/always.json", "--sla.scan_ms", "200"]})
    kc.log("logs in " + stack.logdir)
    try:
        run(stack, tmp)
    finally:
        leave_nothing_open(stack)
        codes = stack.stop()
        stack.delete_topics()
        check(all(c == 0 for c in codes.values()), "clean exits: %s" % codes)


def leave_nothing_open(stack):
    """Withdraw this run's open cases: a later stack on the same database would otherwise
    fire their (time-scaled) SLA timers into its own feed."""
    if not RUN_CASES:
        return
    sup = kc.token("supervisor", label="e2e-console-cleanup")
    for no in RUN_CASES:
        stack.api.call("POST", "/v1/cases/%s/actions" % no,
                       {"action": "withdraw", "reason": "console test done"}, token=sup)
    nos = ",".join("'%s'" % no for no in RUN_CASES)
    kc.wait_for(lambda: kc.psql("SELECT count(*) FROM sla_timers t JOIN cases c ON c.id = "
                                "t.case_id WHERE t.state IN ('running', 'breached') AND "
                                "c.case_no IN (%s)" % nos)[0][0] == "0", 30,
                "no SLA timer of this run left running")


def run(stack, tmp):
    stack.start()
    api, base = stack.api, stack.api.base
    agent = kc.token("agent", label="e2e-console-agent")
    sup = kc.token("supervisor", label="e2e-console-supervisor")
    integ = kc.token("integrator", label="e2e-console-integrator")

    def summary(tok=sup):
        st, js, _ = api.call("GET", "/v1/console/summary", token=tok)
        check(st == 200, "summary: %s %s" % (st, js))
        return js

    # --- the routes themselves ---------------------------------------------------
    st, body, hdr = raw_get(base, "/console")
    check(st == 200 and hdr.get("Content-Type", "").startswith("text/html")
          and 'id="login-form"' in body, "GET /console: %s %s" % (st, hdr.get("Content-Type")))
    csp = hdr.get("Content-Security-Policy", "")
    check("default-src 'none'" in csp and "script-src 'self'" in csp
          and "connect-src 'self'" in csp, "CSP: %s" % csp)
    st, body, hdr = raw_get(base, "/console/app.js")
    check(st == 200 and "javascript" in hdr.get("Content-Type", ""), "app.js: %s" % st)
    check(raw_get(base, "/console/app.css")[0] == 200, "app.css served")
    check(raw_get(base, "/console/secret.txt")[0] == 404, "unknown console file: 404")
    check(raw_get(base, "/console/index.html")[0] == 404, "index.html only at /console")
    check(raw_get(base, "/v1/console/summary")[0] == 401, "summary without a token: 401")
    check(raw_get(base, "/v1/console/summary", integ)[0] == 403, "summary for an integrator: 403")

    base0 = summary()
    day0 = base0["satisfaction"][-1]

    # --- known cases -----------------------------------------------------------------
    tag = kc.unique_tag()
    msgs = kc.load_messages(4, 0)[:4]
    cases = []
    emergency = {"channel": "web", "title": EMERGENCY_TITLE, "external_ref": "e2e-con-%s-e" % tag,
                 "body": "小区3号楼楼道里燃气泄漏，煤气味很大，请马上派人来处理！",
                 "location": {"address": "朝阳路1号", "district_code": "110105"}}
    for i, m in enumerate([emergency] + msgs):
        req = dict(m) if i == 0 else {"channel": "web", "title": m["title"], "body": m["body"],
                                      "external_ref": "e2e-con-%s-%d" % (tag, i)}
        st, js, _ = api.call("POST", "/v1/complaints", req, token=agent)
        check(st == 201, "submit %d: %s %s" % (i, st, js))
        if st == 201:
            cases.append({"no": js["case_no"], "code": js["access_code"]})
            RUN_CASES.append(js["case_no"])
    check(len(cases) == 5, "5 cases submitted: %d" % len(cases))
    if len(cases) != 5:
        return
    emer = cases[0]

    def case(c):
        st, js, _ = api.call("GET", "/v1/cases/%s" % c["no"], token=sup)
        return js if st == 200 else {}

    kc.wait_for(lambda: all(case(c).get("status") == "assigned" for c in cases), 90,
                "every case assigned")
    ec = case(emer)
    check((ec.get("classification") or {}).get("urgency") == "emergency",
          "gas leak is an emergency: %s" % ec.get("classification"))
    emer_dept = (ec.get("assignment") or {}).get("department")

    # two cases to closed with a rating: 5 (satisfied) and 3 (closes, not satisfied)
    for c, rating in ((cases[1], 5), (cases[2], 3)):
        api.call("POST", "/v1/cases/%s/actions" % c["no"], {"action": "accept"}, token=sup)
        st, js, _ = api.call("POST", "/v1/cases/%s/actions" % c["no"],
                             {"action": "resolve", "measures": "explanation",
                              "reply": "已处理。"}, token=sup)
        check(st == 200, "%s resolve: %s %s" % (c["no"], st, js))
    kc.wait_for(lambda: all(case(c).get("status") == "replied" for c in cases[1:3]), 60,
                "replied")
    for c, rating in ((cases[1], 5), (cases[2], 3)):
        st, js, _ = api.call("POST", "/v1/cases/%s/feedback" % c["no"],
                             {"access_code": c["code"], "satisfaction": rating})
        check(st == 200 and js.get("status") == "closed", "%s feedback: %s %s"
              % (c["no"], st, js))

    closed_dept = (case(cases[1]).get("assignment") or {}).get("department")

    def settled():
        s = summary()
        today = s["satisfaction"][-1]
        nos = {x["case_no"]: x for x in s["sla"]["items"]}
        judged = [d for d in s["departments"] if d["code"] == closed_dept
                  and d.get("on_time_rate") is not None]
        ok = (today["evaluated"] - day0["evaluated"] >= 2
              and nos.get(emer["no"], {}).get("level") == "breached"
              and any(c["no"] in nos for c in cases[3:]) and judged)
        return s if ok else None

    # the archiver counts the ratings; the scaled limits pass or warn; the
    # on-time rate needs the resolve timer, which the SLA monitor may record
    # after the archiver closed the case (it reads another topic)
    now = kc.wait_for(settled, 90, "ratings counted and deadlines passed")

    # --- the supervisor's view ----------------------------------------------------------
    seen = browse(base, sup, os.path.join(tmp, "console-supervisor.png"), tmp)
    after = summary()
    kc.log("page (supervisor): %s" % json.dumps({k: seen[k] for k in (
        "scope", "open_total", "sla_breached", "sla_warning", "emergency_count",
        "status_counts", "satisfaction_note")}, ensure_ascii=False))
    check(seen["login_visible"] and seen["board_hidden_before"], "login form first")
    check("not valid" in (seen["bad_token_message"] or ""),
          "a wrong token is refused: %r" % seen["bad_token_message"])
    check(seen["login_hidden_after"] and seen["board_visible_after"],
          "signed in: the login form is gone, the board shown")
    check(seen["token_in_session"] and seen["token_in_local"] == 0,
          "token in sessionStorage only")
    check(not seen["console_errors"], "no script errors: %s" % seen["console_errors"])
    check(not seen["requests_elsewhere"], "nothing fetched elsewhere: %s"
          % seen["requests_elsewhere"])
    check("supervisor" in seen["scope"] and "all departments" in seen["scope"],
          "scope: %s" % seen["scope"])
    # counts: what the API says, and our three open cases on top of the baseline
    check(seen["open_total"] == after["open_total"] == now["open_total"],
          "open total shown %s = API %s" % (seen["open_total"], after["open_total"]))
    check(after["open_total"] - base0["open_total"] == 3,
          "3 of our 5 cases are open: %s -> %s" % (base0["open_total"], after["open_total"]))
    want_counts = {k: v for k, v in after["status_counts"].items() if v}
    check(seen["status_counts"] == want_counts, "status table %s = API %s"
          % (seen["status_counts"], want_counts))
    check(after["status_counts"]["closed"] - base0["status_counts"]["closed"] == 2,
          "two more closed")
    check(seen["status_bars"].get("assigned") == after["status_counts"]["assigned"],
          "status chart bar for assigned: %s" % seen["status_bars"])
    # the emergency: listed, with its department, and past its accept limit
    em_rows = [r for r in seen["emergencies"] if r["case_no"] == emer["no"]]
    check(len(em_rows) == 1, "emergency %s listed: %s" % (emer["no"], seen["emergencies"]))
    if em_rows:
        cells = em_rows[0]["cells"]
        check(cells[1] == EMERGENCY_TITLE, "title shown as text: %r" % cells[1])
        check(cells[3] == emer_dept and emer_dept, "emergency's department %r shown: %s"
              % (emer_dept, cells))
    check(seen["emergency_count"] == after["emergency_total"] >= len(after["emergencies"]) >= 1,
          "emergency tile %s = API total %s (listed %d)" % (seen["emergency_count"],
                                                           after["emergency_total"],
                                                           len(after["emergencies"])))
    check(seen["emergencies_more_hidden"] == (after["emergency_total"] <= len(after["emergencies"])),
          "'more emergencies' note shown exactly when the list is cut: hidden=%s"
          % seen["emergencies_more_hidden"])
    check(seen["injected"] == 0, "HTML in a title never becomes elements")
    # one row per timer: a case can have two (its accept limit past, its resolve limit near)
    sla_rows = {}
    for r in seen["sla_rows"]:
        sla_rows.setdefault(r["case_no"], []).append(r["cells"])
    check(any(cells[2] == "accept" and cells[3] == "past limit"
              for cells in sla_rows.get(emer["no"], [])),
          "emergency past its accept limit: %s" % sla_rows.get(emer["no"]))
    check(any(c["no"] in sla_rows for c in cases[3:]), "an open case close to or past its limit")
    check(seen["sla_breached"] == after["sla"]["breached"] >= 1, "breached tile %s = API %s"
          % (seen["sla_breached"], after["sla"]["breached"]))
    # department load: the emergency desk carries the emergency
    depts = {r["code"]: r["cells"] for r in seen["departments"]}
    api_depts = {d["code"]: d for d in after["departments"]}
    check(emer_dept in depts and int(depts[emer_dept][1]) == api_depts[emer_dept]["open"] >= 1,
          "emergency desk load shown: %s (API %s)" % (depts.get(emer_dept),
                                                      api_depts.get(emer_dept)))
    check(int(depts.get(emer_dept, ["", "0", "0"])[2]) >= 1, "its overdue count")
    check(emer_dept in seen["dept_bars"], "department chart has the emergency desk")
    check(closed_dept in depts and depts[closed_dept][5].endswith("%"),
          "on-time rate shown for %s: %s" % (closed_dept, depts.get(closed_dept)))
    # satisfaction: today's point and the note agree with the API
    today = after["satisfaction"][-1]
    pts = {p["day"]: p["rate"] for p in seen["satisfaction_points"]}
    check(today["day"] in pts and abs(pts[today["day"]] - float(today["satisfaction_rate"])) < 1e-9,
          "today's satisfaction point %s = API %s" % (pts, today))
    ev = sum(d["evaluated"] for d in after["satisfaction"])
    sat = sum(d["satisfied"] for d in after["satisfaction"])
    check(seen["satisfaction_note"].startswith("%d of %d evaluations" % (sat, ev)),
          "satisfaction note: %s" % seen["satisfaction_note"])
    check(after["hotspots"]["available"] is True and "not installed" not in seen["hotspots_empty"],
          "hotspots section present: %s" % after["hotspots"])
    check(seen["after_logout_login_visible"] and seen["token_after_logout"] is None,
          "signing out forgets the token")

    # --- a handler sees its own department only --------------------------------------------
    hdept = (case(cases[3]).get("assignment") or {}).get("department")
    if hdept and hdept != emer_dept:
        handler = kc.token("handler", department=hdept, label="e2e-console-handler")
        hs = summary(handler)
        hseen = browse(base, handler, os.path.join(tmp, "console-handler.png"), tmp)
        check(hdept in hseen["scope"], "handler scope: %s" % hseen["scope"])
        check({r["code"] for r in hseen["departments"]} == {hdept},
              "handler sees only %s: %s" % (hdept, [r["code"] for r in hseen["departments"]]))
        check(all(r["case_no"] != emer["no"] for r in hseen["emergencies"]),
              "handler of %s does not see the emergency" % hdept)
        check(hseen["open_total"] == hs["open_total"] < after["open_total"],
              "handler's open total %s (API %s, all %s)" % (hseen["open_total"],
                                                            hs["open_total"],
                                                            after["open_total"]))
    else:
        check(False, "a normal case went to a department other than the emergency desk: %s"
              % hdept)

    # --- more open emergencies than the list holds --------------------------------------------
    # rows only (no events: the stages never see them), removed again at the end
    extra = "e2e-con-%s-x" % tag
    kc.psql("INSERT INTO cases (id, case_no, access_code_hash, channel, title, body, trace_id, "
            "urgency) SELECT gen_random_uuid(), :'p1' || '-' || i, '\\x00'::bytea, 'web', "
            "'燃气泄漏', 'b', 'e2e', 'emergency' FROM generate_series(1, 60) i", extra)
    try:
        many = summary()
        mseen = browse(base, sup, os.path.join(tmp, "console-many-emergencies.png"), tmp)
        check(many["emergency_total"] >= len(many["emergencies"]) + 10
              and len(many["emergencies"]) == 50,
              "50 of %s emergencies listed: %d" % (many["emergency_total"],
                                                   len(many["emergencies"])))
        check(mseen["emergency_count"] == many["emergency_total"],
              "the tile counts all open emergencies: %s (API %s)"
              % (mseen["emergency_count"], many["emergency_total"]))
        check(not mseen["emergencies_more_hidden"], "the page says the list is cut")
    finally:
        kc.psql("DELETE FROM cases WHERE case_no LIKE :'p1' || '-%'", extra)


if __name__ == "__main__":
    kc.run_main(main)
    if failures:
        kc.log("%d failure(s)" % len(failures))
        sys.exit(1)
    kc.log("console e2e: ok")

"""End to end, security (issue 7 item 7), against a real stack:

- no token / a malformed or unknown token -> 401 on every token route;
- a valid token of a role that may not call the route or take the action -> 403;
- a handler of department A cannot read, list or act on department B's case through any
  route (404 as for an unknown case; row-level security itself is covered by intake's
  integration test, this is the HTTP matrix);
- a wrong access code sees nothing (404) and the sixth try is throttled (429);
- SQL / script / template / path injection strings in the free-text fields are stored and
  returned verbatim and harmlessly (tables intact, console JSON valid);
- after a full life cycle of cases with known names, phones, e-mails and ID numbers, the
  services' logs, every envelope on every topic and the public feed carry none of them.
"""
import json
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scripts"))
import kesu_client as kc  # noqa: E402

HTTP_PORT = int(os.environ.get("KESU_SECURITY_E2E_HTTP_PORT", "18760"))
OPS_BASE = int(os.environ.get("KESU_SECURITY_E2E_OPS_BASE", "19760"))
N_CASES = 6
TOPICS = ["kesu.intake.v1", "kesu.classifier.v1", "kesu.dispatcher.v1", "kesu.sla.v1",
          "kesu.notifier.v1", "kesu.public.v1", "kesu.dlq.v1"]
INJECT = ["'; DROP TABLE cases; --", "<script>alert(1)</script>", "{{case_no}}",
          "../../etc/passwd", "emoji 😀🚧 \\ \" %s %n"]

failures = []
STACK = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        kc.log("FAIL: " + msg)


def id_number(run, i):
    """A mainland resident ID number with a valid check character (GB 11643)."""
    body = "440305" + "19%02d0%d1%d" % (60 + i, 1 + i % 9, i % 10) + "%03d" % (int(run[:3], 16) % 1000)
    w = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return body + "10X98765432"[sum(int(d) * k for d, k in zip(body, w)) % 11]


def main():
    stack = kc.Stack(http_port=HTTP_PORT, ops_base=OPS_BASE)
    STACK.append(stack)
    kc.log("logs in " + stack.logdir)
    stack.start()
    api = stack.api
    run = uuid.uuid4().hex[:8]
    tok = {r: kc.token(r, label="sec-" + r) for r in
           ("agent", "supervisor", "auditor", "admin", "integrator")}
    t0 = time.time()

    # --- a full life cycle of cases with known personal data -------------------------------
    msgs = kc.load_messages(N_CASES - 2, 2)
    pii = []
    cases = []
    for i, m in enumerate(msgs):
        person = {"name": "安全测试%s%s" % (run[:4], "甲乙丙丁戊己"[i]),
                  "phone": "139%08d" % ((int(run[:6], 16) * 7 + i) % 10**8),
                  "email": "sec.%s.%d@example.org" % (run, i),
                  "id_number": id_number(run, i)}
        pii.append(person)
        body = m["body"] + " 电话%s，身份证%s。" % (person["phone"], person["id_number"])
        req = {"channel": "web", "title": m["title"], "body": body, "language": m["language"],
               "complainant": person}
        st, js, _ = api.call("POST", "/v1/complaints", req, token=tok["agent"])
        check(st == 201, "submit %d: %s %s" % (i, st, js))
        if st == 201:
            cases.append({"no": js["case_no"], "id": js["case_id"], "code": js["access_code"]})
    if len(cases) != N_CASES:
        raise RuntimeError("only %d of %d cases submitted" % (len(cases), N_CASES))

    def case(c, who="supervisor"):
        return api.call("GET", "/v1/cases/%s" % c["no"], token=tok[who])[1]

    kc.wait_for(lambda: all(case(c).get("status") == "assigned" for c in cases), 90,
                "every case assigned")
    for c in cases:
        c["dept"] = (case(c).get("assignment") or {}).get("department")
    a_case = cases[0]
    dept_a = a_case["dept"]
    others = [c for c in cases if c["dept"] != dept_a]
    # department B: a real other department if the cases spread, else one holding none of them
    dept_b = others[0]["dept"] if others else "SEC-NONE"
    h_a = kc.token("handler", department=dept_a, label="sec-handler-a")
    h_b = kc.token("handler", department=dept_b, label="sec-handler-b")
    kc.log("cases in departments %s; handler A=%s B=%s" %
           (sorted({c["dept"] for c in cases}), dept_a, dept_b))

    # --- 401: every token route, without a token and with bad ones --------------------------
    no = a_case["no"]
    token_routes = [
        ("POST", "/v1/complaints", json.dumps({"channel": "web", "title": "t", "body": "b"})),
        ("POST", "/v1/complaints/batch", '{"channel":"web","title":"t","body":"b"}\n'),
        ("GET", "/v1/cases", None), ("GET", "/v1/cases/%s" % no, None),
        ("GET", "/v1/cases/%s/history" % no, None), ("GET", "/v1/cases/%s/sla" % no, None),
        ("POST", "/v1/cases/%s/actions" % no, json.dumps({"action": "accept"})),
        ("GET", "/v1/stats", None), ("GET", "/v1/archive/%s" % no, None),
        ("GET", "/v1/console/summary", None),
    ]
    bad_tokens = [None, "kesu_" + "0" * 40, "not a token", tok["agent"] + "x"]
    for method, path, raw in token_routes:
        for bt in bad_tokens:
            hdr = {"Content-Type": "application/x-ndjson"} if path.endswith("batch") else None
            st, js, h = api.call(method, path, raw=raw.encode() if raw else None, token=bt,
                                 headers=hdr)
            check(st == 401, "%s %s with token %r -> %s %s" % (method, path, (bt or "")[:8], st, js))
            check(st != 401 or "Bearer" in (h.get("WWW-Authenticate") or ""),
                  "%s %s 401 without WWW-Authenticate: %s" % (method, path, h))
        # a wrong scheme is no token either
        st, _, _ = api.call(method, path, raw=raw.encode() if raw else None,
                            headers={"Authorization": "Basic " + tok["agent"]})
        check(st == 401, "%s %s with Basic auth -> %s" % (method, path, st))
    # the complainant's view without a token needs the access code
    st, js, _ = api.call("GET", "/v1/cases/%s" % no)
    check(st in (400, 401, 404), "case without token or code -> %s %s" % (st, js))

    # --- 403: a valid token of the wrong role --------------------------------------------------
    for who in ("integrator", "auditor"):
        st, js, _ = api.call("POST", "/v1/cases/%s/actions" % no, {"action": "accept"},
                             token=tok[who])
        check(st == 403, "%s accept -> %s %s" % (who, st, js))
    st, js, _ = api.call("POST", "/v1/cases/%s/actions" % no, {"action": "accept"},
                         token=tok["agent"])
    check(st == 403, "agent accept -> %s %s" % (st, js))
    st, js, _ = api.call("POST", "/v1/cases/%s/actions" % no,
                         {"action": "supervise", "level": 1, "note": "x"}, token=h_a)
    check(st == 403, "handler supervise -> %s %s" % (st, js))
    st, js, _ = api.call("POST", "/v1/cases/%s/actions" % no, {"action": "reject",
                                                               "reason": "x"}, token=h_a)
    check(st == 403, "handler reject -> %s %s" % (st, js))
    st, js, _ = api.call("POST", "/v1/complaints", {"channel": "web", "title": "t", "body": "b"},
                         token=tok["auditor"])
    check(st == 403, "auditor submit -> %s %s" % (st, js))
    for path in ("/v1/cases", "/v1/cases/%s" % no, "/v1/stats", "/v1/console/summary"):
        st, js, _ = api.call("GET", path, token=tok["integrator"])
        check(st == 403, "integrator GET %s -> %s %s" % (path, st, js))

    # --- department isolation ---------------------------------------------------------------
    st, js, _ = api.call("GET", "/v1/cases/%s" % no, token=h_a)
    check(st == 200, "handler A reads its own case -> %s %s" % (st, js))
    for path in ("/v1/cases/%s" % no, "/v1/cases/%s/history" % no, "/v1/cases/%s/sla" % no,
                 "/v1/archive/%s" % no):
        st, js, _ = api.call("GET", path, token=h_b)
        check(st == 404, "handler B GET %s of department A -> %s %s" % (path, st, js))
    for body in ({"action": "accept"}, {"action": "return", "reason": "not ours"},
                 {"action": "note", "note": "x"}):
        st, js, _ = api.call("POST", "/v1/cases/%s/actions" % no, body, token=h_b)
        check(st == 404, "handler B %s on department A -> %s %s" % (body["action"], st, js))
    st, js, _ = api.call("GET", "/v1/cases?limit=200", token=h_b)
    listed = [x.get("case_no") for x in (js or {}).get("items", [])] if st == 200 else []
    check(st == 200 and no not in listed, "handler B list shows A's case: %s %s" % (st, listed))
    st, js, _ = api.call("GET", "/v1/cases?limit=200", token=h_a)
    listed_a = [x.get("case_no") for x in (js or {}).get("items", [])] if st == 200 else []
    check(no in listed_a, "handler A lists its own case: %s %s" % (st, listed_a))
    check(all(c["no"] not in listed_a for c in others),
          "handler A lists another department's case: %s" % listed_a)
    st, js, _ = api.call("GET", "/v1/console/summary", token=h_b)
    check(st == 200 and no not in json.dumps(js), "handler B console shows A's case: %s" % st)

    # --- injection strings in every free-text field -----------------------------------------
    inj = " | ".join(INJECT) + " run " + run  # unique: the same text again is a duplicate
    st, js, _ = api.call("POST", "/v1/complaints",
                         {"channel": "web", "title": INJECT[1] + INJECT[0], "body": inj,
                          "external_ref": INJECT[0] + run,
                          "location": {"address": INJECT[3] + INJECT[1]}},
                         token=tok["agent"])
    check(st == 201, "injection complaint -> %s %s" % (st, js))
    ic = ({"no": js.get("case_no"), "code": js.get("access_code"), "id": js.get("case_id")}
          if st == 201 else None)
    # a NUL is refused by field, never stored half
    st, js, _ = api.call("POST", "/v1/complaints",
                         {"channel": "web", "title": "nul\u0000here", "body": "b"},
                         token=tok["agent"])
    check(st in (400, 422) and "title" in json.dumps(js), "NUL in title -> %s %s" % (st, js))
    if ic:
        kc.wait_for(lambda: case(ic).get("status") == "assigned", 60, "injection case assigned")
        got = case(ic)
        check(got.get("title") == INJECT[1] + INJECT[0], "title verbatim: %r" % got.get("title"))
        check(got.get("body") == inj, "body verbatim: %r" % got.get("body"))
        check(got.get("external_ref") == INJECT[0] + run, "external_ref verbatim: %r"
              % got.get("external_ref"))
        check((got.get("location") or {}).get("address") == INJECT[3] + INJECT[1],
              "address verbatim: %r" % got.get("location"))
        for text in INJECT:
            for body in ({"action": "accept"}, {"action": "note", "note": text}):
                st, js, _ = api.call("POST", "/v1/cases/%s/actions" % ic["no"], body,
                                     token=tok["supervisor"])
                if body["action"] == "note":
                    check(st == 200, "note %r -> %s %s" % (text, st, js))
        st, hist, _ = api.call("GET", "/v1/cases/%s/history" % ic["no"], token=tok["supervisor"])
        dump = json.dumps(hist, ensure_ascii=False)
        for text in INJECT:
            check(json.dumps(text, ensure_ascii=False)[1:-1] in dump,
                  "note %r verbatim in history" % text)
        st, js, _ = api.call("POST", "/v1/cases/%s/actions" % ic["no"],
                             {"action": "resolve", "measures": "explanation", "reply": inj},
                             token=tok["supervisor"])
        check(st == 200, "resolve with injected reply -> %s %s" % (st, js))
        st, raw, _ = api.call("GET", "/v1/console/summary", token=tok["supervisor"])
        check(st == 200 and isinstance(raw, dict), "console summary valid JSON: %s" % st)
    rows = kc.psql("SELECT to_regclass('cases') IS NOT NULL, to_regclass('case_events') IS NOT "
                   "NULL, (SELECT count(*) FROM cases WHERE id IN (%s))"
                   % ",".join("'%s'" % c["id"] for c in cases))
    check(rows[0] == ["t", "t", str(N_CASES)], "tables intact after injection: %s" % rows)

    # --- wrong access code: nothing seen, then throttled -------------------------------------
    tc = cases[-1]
    for k in range(5):
        st, js, _ = api.call("GET", "/v1/cases/%s?access_code=WRONG%03d" % (tc["no"], k + 222))
        check(st == 404 and not {"status", "title", "body", "complainant"} & set(js or {}),
              "wrong code %d -> %s %s" % (k, st, js))
    st, js, h = api.call("GET", "/v1/cases/%s?access_code=WRONG999" % tc["no"])
    check(st == 429 and h.get("Retry-After"), "6th wrong code -> %s %s" % (st, h))
    st, js, _ = api.call("GET", "/v1/cases/%s?access_code=%s" % (tc["no"], tc["code"]))
    check(st == 429, "right code during the throttle -> %s" % st)

    # --- finish the life cycle of the PII cases (all but the throttled one) ------------------
    done = cases[:-1]
    for c in done:
        for body in ({"action": "accept"},
                     {"action": "resolve", "measures": "explanation", "reply": "已处理。"}):
            st, js, _ = api.call("POST", "/v1/cases/%s/actions" % c["no"], body,
                                 token=tok["supervisor"])
            check(st == 200, "%s %s -> %s %s" % (c["no"], body["action"], st, js))
    kc.wait_for(lambda: all(case(c).get("status") == "replied" for c in done), 60,
                "cases replied")
    for c in done:
        st, js, _ = api.call("POST", "/v1/cases/%s/feedback" % c["no"],
                             {"access_code": c["code"], "satisfaction": 4, "comment": INJECT[1]})
        check(st == 200, "%s feedback -> %s %s" % (c["no"], st, js))
    st, hist, _ = api.call("GET", "/v1/cases/%s/history" % done[0]["no"], token=tok["auditor"])
    check(st == 200 and INJECT[1] in json.dumps(hist, ensure_ascii=False),
          "feedback comment verbatim in history: %s" % st)
    ids = ",".join("'%s'" % c["id"] for c in done)
    kc.wait_for(lambda: int(kc.psql("SELECT count(*) FROM archive_records WHERE case_id IN "
                                    "(%s)" % ids)[0][0]) == len(done), 60, "cases archived")
    kc.log("life cycle done after %.1fs" % (time.time() - t0))

    # --- no personal data in logs, events or the public feed ---------------------------------
    def leaks(text):
        text = kc.UUID_RE.sub("-", text)
        found = []
        for p in pii:
            for k in ("name", "phone", "email", "id_number"):
                if p[k] in text:
                    found.append("%s %s" % (k, p[k][:3]))
        return found

    time.sleep(1)  # the last events reach the topics
    for name, _, _ in kc.SERVICES:
        with open(os.path.join(stack.logdir, name + ".log"), encoding="utf-8",
                  errors="replace") as f:
            text = f.read()
        check(not leaks(text), "%s log leaks %s" % (name, leaks(text)))
        check(not kc.has_phone(text), "%s log has a phone number" % name)
    n_events = 0
    for topic in TOPICS:
        events = kc.tail(topic, timeout_ms=3000)
        n_events += len(events)
        dump = json.dumps(events, ensure_ascii=False)
        check(not leaks(dump), "topic %s leaks %s" % (topic, leaks(dump)))
        check(not kc.has_phone(dump), "topic %s has a phone number" % topic)
        if topic == "kesu.public.v1":
            check(len(events) >= len(done) * 5, "public feed has %d events" % len(events))
    check(n_events > len(cases) * 8, "events scanned: %d" % n_events)
    kc.log("scanned %d events on %d topics and %d logs" % (n_events, len(TOPICS),
                                                           len(kc.SERVICES)))

    # --- leave nothing open: a later stack on the same database would otherwise fire this
    # run's SLA timers into its own feed (the throttled case is withdrawn, the injection case
    # closed by its complainant)
    st, js, _ = api.call("POST", "/v1/cases/%s/actions" % tc["no"],
                         {"action": "withdraw", "reason": "security test done"},
                         token=tok["supervisor"])
    check(st == 200, "withdraw throttled case -> %s %s" % (st, js))
    if ic:
        kc.wait_for(lambda: case(ic).get("status") == "replied", 60, "injection case replied")
        st, js, _ = api.call("POST", "/v1/cases/%s/feedback" % ic["no"],
                             {"access_code": ic["code"], "satisfaction": 3})
        check(st == 200, "injection case feedback -> %s %s" % (st, js))
    ends = {"closed", "withdrawn"}
    kc.wait_for(lambda: all(case(c).get("status") in ends for c in cases + ([ic] if ic else [])),
                30, "every case of the run closed or withdrawn")
    all_ids = ",".join("'%s'" % c["id"] for c in cases + ([ic] if ic else []))
    kc.wait_for(lambda: kc.psql("SELECT count(*) FROM sla_timers WHERE state = 'running' AND "
                                "case_id IN (%s)" % all_ids)[0][0] == "0", 30,
                "no SLA timer left running on this run's cases")

    codes = stack.stop()
    check(all(v == 0 for v in codes.values()), "clean exit codes: %s" % codes)
    stack.delete_topics()
    kc.finish(failures, "security: %d cases in %.1fs, %d checks failed"
              % (len(cases), time.time() - t0, len(failures)), limit=60)


if __name__ == "__main__":
    kc.run_main(main, STACK)

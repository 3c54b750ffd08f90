"""End to end: all six services as real processes against the real PostgreSQL
and Kafka. N complaints (real citizen messages, Chinese and English) are
submitted over HTTP and driven to closed; then every case's history, the
public feed (every event, in order, gap-free, no phone number or name), the
webhook acknowledgements (exactly one each) and the empty outbox are checked,
and `kesuctl verify` must find nothing (including the console's kept counts).
"""
import json
import os
import re
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scripts"))
import kesu_client as kc  # noqa: E402

N_ZH = int(os.environ.get("KESU_E2E_ZH", "16"))
N_EN = int(os.environ.get("KESU_E2E_EN", "4"))
HTTP_PORT = int(os.environ.get("KESU_E2E_HTTP_PORT", "18080"))
OPS_BASE = int(os.environ.get("KESU_E2E_OPS_BASE", "19100"))

failures = []
STACK = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        kc.log("FAIL: " + msg)


def main():
    since_ms = int(time.time() * 1000) - 1000
    sink = kc.Sink()
    stack = kc.Stack(http_port=HTTP_PORT, ops_base=OPS_BASE)
    STACK.append(stack)
    kc.log("logs in " + stack.logdir)
    stack.start()
    api = stack.api
    agent = kc.token("agent", label="e2e-agent")
    sup = kc.token("supervisor", label="e2e-supervisor")
    run = uuid.uuid4().hex[:8]

    msgs = kc.load_messages(N_ZH, N_EN)
    check(len(msgs) == N_ZH + N_EN, "loaded %d messages" % len(msgs))
    cases = []
    names = []
    t0 = time.time()
    for i, m in enumerate(msgs):
        name = "测试人%s%d" % (run[:4], i)
        phone = "139%08d" % (int(run[:6], 16) % 10**8 // 10 * 10 + i % 10)
        names.append(name)
        body = m["body"] + (" 请拨打%s联系我。" % phone if i % 2 == 0 else "")
        req = {"channel": "web" if i % 3 else "app", "title": m["title"], "body": body,
               "language": m["language"], "external_ref": "e2e-%s-%d" % (run, i),
               "complainant": {"name": name, "phone": phone,
                               "callback_url": sink.url("/c/%d" % i)}}
        st, js, hdr = api.call("POST", "/v1/complaints", req, token=agent,
                               headers={"Idempotency-Key": "e2e-%s-%d" % (run, i)})
        check(st == 201, "submit %d: status %s %s" % (i, st, js))
        if st != 201:
            continue
        check(js["status"] == "received" and js["version"] == 1, "submit %d body %s" % (i, js))
        # the same request again is the same case
        st2, js2, _ = api.call("POST", "/v1/complaints", req, token=agent,
                               headers={"Idempotency-Key": "e2e-%s-%d" % (run, i)})
        check(st2 == 200 and js2["case_no"] == js["case_no"],
              "idempotent replay %d: %s %s" % (i, st2, js2))
        cases.append({"no": js["case_no"], "id": js["case_id"], "code": js["access_code"],
                      "phone": phone, "name": name, "i": i})
    kc.log("submitted %d cases in %.1fs" % (len(cases), time.time() - t0))

    def status_of(c):
        st, js, _ = api.call("GET", "/v1/cases/%s" % c["no"], token=sup)
        return js.get("status") if st == 200 else None

    def all_in(wanted, subset=None):
        return all(status_of(c) in wanted for c in (subset or cases))

    kc.wait_for(lambda: all_in({"assigned"}), 90, "every case assigned")
    kc.log("all assigned after %.1fs" % (time.time() - t0))

    for c in cases:
        st, js, _ = api.call("GET", "/v1/cases/%s" % c["no"], token=sup)
        check(js.get("classification") and js["classification"].get("domain"),
              "%s classified: %s" % (c["no"], js.get("classification")))
        check(js.get("assignment") and js["assignment"].get("department"),
              "%s assigned: %s" % (c["no"], js.get("assignment")))
        check(c["phone"] not in js.get("body", ""), "%s body masked" % c["no"])
        # a resolve before accept is refused
        st, js, _ = api.call("POST", "/v1/cases/%s/actions" % c["no"],
                             {"action": "resolve", "measures": "explanation", "reply": "x"},
                             token=sup)
        check(st == 409, "%s resolve before accept -> %s %s" % (c["no"], st, js))
        st, js, _ = api.call("POST", "/v1/cases/%s/actions" % c["no"], {"action": "accept"},
                             token=sup)
        check(st == 200 and js.get("status") == "accepted", "%s accept: %s %s" % (c["no"], st, js))
        st, js, _ = api.call("POST", "/v1/cases/%s/actions" % c["no"],
                             {"action": "resolve", "measures": "explanation",
                              "reply": "已核实处理，感谢您的反映。Handled, thank you."}, token=sup)
        check(st == 200 and js.get("status") == "resolved",
              "%s resolve: %s %s" % (c["no"], st, js))

    kc.wait_for(lambda: all_in({"replied"}), 60, "every case replied")
    for c in cases:
        # a wrong access code is indistinguishable from an unknown case
        st, _, _ = api.call("POST", "/v1/cases/%s/feedback" % c["no"],
                            {"access_code": "WRONG000", "satisfaction": 5})
        check(st == 404, "%s feedback with wrong code -> %s" % (c["no"], st))
        st, js, _ = api.call("POST", "/v1/cases/%s/feedback" % c["no"],
                             {"access_code": c["code"], "satisfaction": 5, "comment": "满意"})
        check(st == 200 and js.get("status") == "closed",
              "%s feedback: %s %s" % (c["no"], st, js))
        st, js, _ = api.call("GET", "/v1/cases/%s?access_code=%s" % (c["no"], c["code"]))
        check(st == 200 and js.get("status") == "closed",
              "%s complainant view: %s %s" % (c["no"], st, js))

    def archived():
        ids = ",".join("'%s'" % c["id"] for c in cases)
        rows = kc.psql("SELECT count(*) FROM archive_records WHERE case_id IN (%s)" % ids)
        return int(rows[0][0]) == len(cases)

    kc.wait_for(archived, 60, "every case archived")
    kc.log("all closed and archived after %.1fs" % (time.time() - t0))

    # --- SLA: staff accepted and resolved within moments of the assignment, so the
    # sla-monitor may see CaseAssigned after both; every case still ends with an accept and
    # a resolve timer, stopped at the real accept/resolve times (what on-time is judged on)
    ids = ",".join("'%s'" % c["id"] for c in cases)

    def timers_stopped():
        rows = kc.psql("SELECT count(*) FROM sla_timers WHERE case_id IN (%s) AND kind IN "
                       "('accept', 'resolve') AND state = 'stopped'" % ids)
        return int(rows[0][0]) >= 2 * len(cases)

    kc.wait_for(timers_stopped, 30, "accept and resolve timers stopped")
    # within a second: the event's occurred_at and the row's now() differ by a few ms
    rows = kc.psql("SELECT c.id, t.kind, t.state, abs(extract(epoch FROM t.stopped_at - CASE "
                   "t.kind WHEN 'accept' THEN c.accepted_at ELSE c.resolved_at END)) < 1 "
                   "FROM cases c JOIN sla_timers t "
                   "ON t.case_id = c.id WHERE c.id IN (%s) AND t.kind IN ('accept', 'resolve')"
                   % ids)
    for c in cases:
        mine = sorted((r[1], r[2], r[3]) for r in rows if r[0] == c["id"])
        check(mine == [("accept", "stopped", "t"), ("resolve", "stopped", "t")],
              "%s accept/resolve timers stopped at accepted_at/resolved_at: %s" % (c["no"], mine))

    # --- history ------------------------------------------------------------------
    must = ["CaseReceived", "CaseClassified", "CaseAssigned", "CaseAccepted", "CaseResolved",
            "ReplySent", "FeedbackReceived", "CaseClosed", "CaseArchived"]
    histories = {}

    def history_complete():
        for c in cases:
            st, js, _ = api.call("GET", "/v1/cases/%s/history" % c["no"], token=sup)
            if st != 200:
                return False
            types = [e["event_type"] for e in js["events"]]
            if "CaseArchived" not in types:
                return False
            histories[c["id"]] = js["events"]
        return True

    kc.wait_for(history_complete, 30, "complete histories")
    for c in cases:
        ev = histories[c["id"]]
        types = [e["event_type"] for e in ev]
        check([e["seq"] for e in ev] == list(range(1, len(ev) + 1)),
              "%s history seq gap-free: %s" % (c["no"], [e["seq"] for e in ev]))
        main_line = [t for t in types if t in must]
        check(main_line == must, "%s main line %s" % (c["no"], main_line))
        check(types.count("NotificationSent") >= 2,
              "%s notifications in history: %s" % (c["no"], types))
        vers = [e["version"] for e in ev]
        check(vers == sorted(vers), "%s versions never go back: %s" % (c["no"], vers))
        for e in ev:
            blob = str(e.get("payload"))
            check(not kc.has_phone(blob), "%s history payload has a phone: %s"
                  % (c["no"], blob[:200]))

    # --- the public feed -------------------------------------------------------------
    def feed_complete():
        # notices may still be appended after CaseArchived (the "closed" notice):
        # re-read each history and wait until the feed has caught up with it
        history_complete()
        feed = kc.tail("kesu.public.v1", timeout_ms=3000)
        per = {}
        for e in feed:
            if e.get("case_id") in histories:
                per.setdefault(e["case_id"], []).append(e)
        if all(len(per.get(cid, [])) == len(h) for cid, h in histories.items()):
            return per
        return None

    per = kc.wait_for(feed_complete, 60, "public feed complete", interval=1)
    for c in cases:
        evs = sorted(per[c["id"]], key=lambda e: (e["_partition"], e["_offset"]))
        seqs = [e["case_seq"] for e in evs]
        check(seqs == list(range(1, len(histories[c["id"]]) + 1)),
              "%s public feed in order, gap-free, once: %s" % (c["no"], seqs))
        check([e["event_type"] for e in evs] == [h["event_type"] for h in histories[c["id"]]],
              "%s public feed types match history" % c["no"])
        check(len({e["_partition"] for e in evs}) == 1, "%s one partition" % c["no"])
        for e in evs:
            blob = str(e)
            check(not kc.has_phone(blob), "%s public event has a phone number: %s"
                  % (c["no"], kc.PHONE_RE.search(kc.UUID_RE.sub("-", blob))))
            check(c["name"] not in blob, "%s public event has the name" % c["no"])
            p = e.get("payload", {})
            check("body" not in p and "title" not in p and "reply" not in p,
                  "%s public event carries free text: %s" % (c["no"], list(p)))

    # --- webhooks: acknowledgement exactly once per case ---------------------------------
    bodies = sink.bodies()
    for c in cases:
        acks = [b for b in bodies if b.get("case_no") == c["no"]
                and b.get("event_type") == "CaseReceived"]
        check(len(acks) == 1, "%s acknowledgement webhooks: %d" % (c["no"], len(acks)))

    # --- nothing left behind ---------------------------------------------------------------
    def outbox_empty():
        rows = kc.psql("SELECT count(*) FROM outbox WHERE producer IN ('intake','classifier',"
                       "'dispatcher','sla-monitor','notifier','archiver')")
        return int(rows[0][0]) == 0

    kc.wait_for(outbox_empty, 30, "empty outbox")

    # --- kesuctl verify: history, inboxes, feed, and the console's kept counts -------------
    # (this test's database is its own, so the counts' whole-database check is its cases':
    # every one closed with a rating, counted by closing day in case_stats_daily)
    out = kc.kesuctl("verify", "--since", str(since_ms), "--wait", "60", "--json", check=False)
    try:
        summary = json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        summary = {}
    check(out.returncode == 0 and summary.get("discrepancies") == 0,
          "kesuctl verify exit %d: %s\n%s" % (out.returncode, out.stdout.strip(),
                                             out.stderr.strip()[-2000:]))
    kept = kc.psql("SELECT COALESCE(sum(closed), 0), COALESCE(sum(satisfied), 0) "
                   "FROM case_stats_daily")
    check(int(kept[0][0]) >= len(cases) and int(kept[0][1]) >= len(cases),
          "closing-day figures kept for the closed cases: %s" % kept)
    codes = stack.stop()
    check(all(v == 0 for v in codes.values()), "clean exit codes: %s" % codes)
    stack.delete_topics()
    sink.close()

    kc.finish(failures, "%d cases, %d checks failed" % (len(cases), len(failures)))


if __name__ == "__main__":
    kc.run_main(main, STACK)

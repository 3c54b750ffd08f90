"""The demo load: real citizen messages through the running system (scripts/up.sh).

Submits Chinese messages to a city government (TeddyCup 2020 C) and a few English
NYC 311 complaints, drives each case through accept -> resolve -> feedback to
closed, shows progress, and prints cases per status and per department.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kesu_client as kc  # noqa: E402

N_ZH = int(os.environ.get("KESU_DEMO_ZH", "40"))
N_EN = int(os.environ.get("KESU_DEMO_EN", "8"))
API = kc.Api(os.environ.get("KESU_API", "http://127.0.0.1:8080"))


def progress(label, done, total):
    width = 30
    filled = int(width * done / max(total, 1))
    sys.stdout.write("\r  %-10s [%s%s] %d/%d" % (label, "#" * filled, "." * (width - filled),
                                                 done, total))
    sys.stdout.flush()
    if done >= total:
        sys.stdout.write("\n")


def statuses(cases, token):
    out = {}
    for c in cases:
        st, js, _ = API.call("GET", "/v1/cases/%s" % c["no"], token=token)
        out[c["no"]] = js.get("status") if st == 200 else "?"
    return out


def wait_status(cases, token, wanted, label, timeout=120):
    deadline = time.time() + timeout
    while True:
        s = statuses(cases, token)
        done = sum(1 for v in s.values() if v in wanted)
        progress(label, done, len(cases))
        if done == len(cases):
            return
        if time.time() > deadline:
            sys.stdout.write("\n")
            raise SystemExit("demo: only %d of %d cases reached %s in %ds; see .run/logs/"
                             % (done, len(cases), "/".join(sorted(wanted)), timeout))
        time.sleep(0.5)


def main():
    agent = kc.token("agent", label="demo-agent")
    sup = kc.token("supervisor", label="demo-supervisor")
    msgs = kc.load_messages(N_ZH, N_EN)
    print("demo: %d real citizen messages (%d Chinese, %d English)" % (len(msgs), N_ZH, N_EN))
    run = str(int(time.time()))
    cases = []
    t0 = time.time()
    for i, m in enumerate(msgs):
        req = {"channel": ["web", "app", "phone", "letter"][i % 4] if i % 4 != 2 else "web",
               "title": m["title"], "body": m["body"], "language": m["language"],
               "external_ref": "demo-%s-%d" % (run, i)}
        if req["channel"] == "letter":  # a letter's own details (issue 3)
            req.update(received_date=time.strftime("%Y-%m-%d"), scan_ref="scan-%s-%d" % (run, i))
        st, js, _ = API.call("POST", "/v1/complaints", req, token=agent)
        if st not in (200, 201):
            raise SystemExit("demo: submit failed: %s %s" % (st, js))
        cases.append({"no": js["case_no"], "code": js["access_code"]})
        progress("submitted", i + 1, len(msgs))
    wait_status(cases, sup, {"assigned"}, "assigned")
    for i, c in enumerate(cases):
        API.call("POST", "/v1/cases/%s/actions" % c["no"], {"action": "accept"}, token=sup)
        API.call("POST", "/v1/cases/%s/actions" % c["no"],
                 {"action": "resolve", "measures": "explanation",
                  "reply": "您反映的问题已转交相关部门核实处理。Your case was handled."}, token=sup)
        progress("resolved", i + 1, len(cases))
    wait_status(cases, sup, {"replied"}, "replied")
    for i, c in enumerate(cases):
        sat = 2 if i % 10 == 9 else 5  # one in ten is unhappy: reopened (重办)
        API.call("POST", "/v1/cases/%s/feedback" % c["no"],
                 {"access_code": c["code"], "satisfaction": sat})
        progress("feedback", i + 1, len(cases))
    time.sleep(1)
    nos = ",".join("'%s'" % c["no"] for c in cases)
    print("\ndone in %.1fs\n" % (time.time() - t0))
    print("cases per status:")
    for status, n in kc.psql("SELECT status, count(*) FROM cases WHERE case_no IN (%s) "
                             "GROUP BY 1 ORDER BY 2 DESC" % nos):
        print("  %-12s %5s" % (status, n))
    print("\ncases per department:")
    for dept, name, n in kc.psql(
            "SELECT c.department, coalesce(d.name, ''), count(*) FROM cases c "
            "LEFT JOIN departments d ON d.code = c.department WHERE c.case_no IN (%s) "
            "GROUP BY 1, 2 ORDER BY 3 DESC" % nos):
        print("  %-26s %-22s %5s" % (dept, name, n))
    print("\nexample: GET /v1/cases/%s?access_code=%s" % (cases[0]["no"], cases[0]["code"]))


if __name__ == "__main__":
    main()

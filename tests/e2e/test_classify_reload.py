"""End to end: the classifier as a real process (with intake in front of it).

1. An emergency complaint (gas leak) comes out classified with urgency
   emergency, flag public_safety, a domain, request type, category and a
   confidence in GET /v1/cases/{no}.
2. SIGHUP with a broken alerts file: the process logs why, keeps the old
   rules (the next gas leak is still an emergency) and keeps running.
3. SIGHUP with a good alerts file that knows a new term: the log names the
   reload and a complaint with only that term is flagged.
4. SIGTERM: clean exit.
"""
import json
import os
import shutil
import signal
import sys
import tempfile
import urllib.request
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scripts"))
import kesu_client as kc  # noqa: E402

HTTP_PORT = int(os.environ.get("KESU_CLF_E2E_HTTP_PORT", "18457"))
OPS_BASE = int(os.environ.get("KESU_CLF_E2E_OPS_BASE", "19457"))
SRC = os.environ.get("KESU_SOURCE_DIR") or kc.ROOT

failures = []
STACK = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        kc.log("FAIL: " + msg)


def main():
    tmp = tempfile.mkdtemp(prefix="kesu-clf-reload-")
    alerts = os.path.join(tmp, "alerts.json")
    shutil.copy(os.path.join(SRC, "deploy", "config", "classifier", "alerts.json"), alerts)
    stack = kc.Stack(http_port=HTTP_PORT, ops_base=OPS_BASE,
                     extra={"classifier": ["--classifier.alerts", alerts]})
    STACK.append(stack)
    kc.log("logs in " + stack.logdir)
    stack.start(["intake", "classifier"])
    api = stack.api
    agent = kc.token("agent", label="e2e-clf-agent")
    sup = kc.token("supervisor", label="e2e-clf-sup")
    run = uuid.uuid4().hex[:8]

    def submit(title, body):
        st, js, _ = api.call("POST", "/v1/complaints",
                             {"channel": "web", "title": title, "body": body,
                              "external_ref": "clf-%s-%s" % (run, uuid.uuid4().hex[:6])},
                             token=agent)
        check(st == 201, "submit: %s %s" % (st, js))
        return js.get("case_no")

    def classification(no):
        def got():
            st, js, _ = api.call("GET", "/v1/cases/%s" % no, token=sup)
            c = js.get("classification") if st == 200 else None
            return c if c and c.get("domain") else None
        kc.wait_for(got, 60, "%s classified" % no)
        return got()

    # 1. the shipped rules
    c = classification(submit("小区燃气泄漏", "楼道里一股煤气味，燃气泄漏了，请马上派人来"))
    kc.log("gas leak: %s" % c)
    for k in ("domain", "request_type", "category", "urgency", "flags", "confidence"):
        check(k in c, "classification shows %s: %s" % (k, c))
    check(c.get("urgency") == "emergency", "gas leak is an emergency: %s" % c)
    check("public_safety" in (c.get("flags") or []), "gas leak flagged: %s" % c)

    def log_has(text):
        with open(os.path.join(stack.logdir, "classifier.log"), errors="replace") as f:
            return text in f.read()

    # 2. a broken file: kept the old rules, said why
    with open(alerts, "w") as f:
        f.write('{"signals": {"public_safety": ')
    stack.procs["classifier"].send_signal(signal.SIGHUP)
    kc.wait_for(lambda: log_has("reload failed, keeping"), 30, "reload failure logged")
    check(log_has("alerts.json:1:"), "the failure names file and line")
    check(stack.procs["classifier"].poll() is None, "still running after a bad reload")
    c = classification(submit("又闻到煤气味", "厨房闻到很浓的煤气味道，燃气泄漏"))
    check(c.get("urgency") == "emergency", "old rules still in use: %s" % c)

    # 3. a good file with a new term
    with open(os.path.join(SRC, "deploy", "config", "classifier", "alerts.json")) as f:
        rules = json.load(f)
    rules["signals"]["public_safety"]["zh"]["氨气外泄"] = 2
    with open(alerts + ".new", "w") as f:
        json.dump(rules, f, ensure_ascii=False)
    os.rename(alerts + ".new", alerts)
    stack.procs["classifier"].send_signal(signal.SIGHUP)
    kc.wait_for(lambda: log_has("reloaded:"), 30, "reload logged")
    c = classification(submit("冷库氨气外泄", "冷库氨气外泄，味道刺鼻"))
    check("public_safety" in (c.get("flags") or []), "new term used after reload: %s" % c)
    with urllib.request.urlopen(stack.ops_url("classifier", "/metrics"), timeout=5) as r:
        metrics = r.read().decode()
    check('kesu_classifier_reloads_total{result="ok"} 1' in metrics and
          'kesu_classifier_reloads_total{result="failed"} 1' in metrics,
          "reloads counted in /metrics")

    codes = stack.stop()
    check(all(v == 0 for v in codes.values()), "clean exit codes: %s" % codes)
    stack.delete_topics()
    shutil.rmtree(tmp, ignore_errors=True)
    kc.finish(failures, "%d checks failed" % len(failures), limit=len(failures))


if __name__ == "__main__":
    kc.run_main(main, STACK, services=("intake", "classifier"))

"""End to end: kesuctl submit, case show and case list against a real stack.

All six services run as real processes; kesuctl talks to intake's HTTP API
with a token (--api, --token), like an operator would. Asserted:
  - submit --title/--body prints the new case number (access code on
    stderr); the case is there through the API; missing --body is exit 2,
    no token a clear message, a bad channel the API's error with its field;
  - submit --file: an NDJSON file in chunks through the batch API, with a
    progress line per chunk, a refused line reported with its number in the
    file (blank lines skipped, numbering kept), exit 1 because of it; the
    same file again with the same --idempotency_key makes no new case;
  - case show: the case's head and its history as a timeline (received,
    classified, assigned, with elapsed times); --json is the API's documents;
    a handler of another department gets exit 4 (not found);
  - case list: the table, filters (--status, --channel), paging past 200
    rows through next_cursor, a bad filter named;
  - load: real citizen messages at full speed (--count) and at a rate
    (--rate/--duration), every case followed on the public feed until
    assigned and acknowledged; the JSON line has throughput and latencies;
    a missing data directory is named;
  - --help works with every one of these subcommands.
"""
import json
import os
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scripts"))
import kesu_client as kc  # noqa: E402

HTTP_PORT = int(os.environ.get("KESU_KESUCTL_E2E_HTTP_PORT", "18640"))
OPS_BASE = int(os.environ.get("KESU_KESUCTL_E2E_OPS_BASE", "19640"))
FILE_LINES = 450  # with --chunk 200: three batch requests

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        kc.log("FAIL: " + msg)


def ctl(*args, token=None, api=None, stdin=None):
    """kesuctl with --api/--token; returns the CompletedProcess (never raises)."""
    cmd = [os.path.join(kc.BIN, "kesuctl")] + list(args)
    if api:
        cmd += ["--api", api]
    if token:
        cmd += ["--token", token]
    env = dict(os.environ, KESU_PG=kc.PG, KESU_KAFKA_BOOTSTRAP_SERVERS=kc.KAFKA)
    env.pop("KESU_TOKEN", None)
    return subprocess.run(cmd, capture_output=True, text=True, env=env, input=stdin,
                          timeout=300, check=False)


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
    base = api.base
    agent = kc.token("agent", label="e2e-kesuctl-agent")
    sup = kc.token("supervisor", label="e2e-kesuctl-supervisor")
    other = kc.token("handler", department="e2e-nobody-%s" % uuid.uuid4().hex[:6],
                     label="e2e-kesuctl-other")
    tag = kc.unique_tag()

    # --- --help on every subcommand ------------------------------------------------
    for sub in (["submit"], ["case", "show"], ["case", "list"]):
        out = ctl(*(sub + ["--help"]))
        check(out.returncode == 0 and "submit" in out.stdout + out.stderr
              and "case show" in out.stdout + out.stderr,
              "kesuctl %s --help: %d %s" % (" ".join(sub), out.returncode, out.stderr[-300:]))

    # --- submit one ----------------------------------------------------------------------
    out = ctl("submit", "--title", "小区路灯不亮 %s" % tag, "--body",
              "朝阳路1号小区门口路灯坏了一周，晚上很危险。", "--district", "110105",
              "--external_ref", "e2e-ctl-%s" % tag, token=agent, api=base)
    no = out.stdout.strip()
    check(out.returncode == 0 and no.startswith("KS"), "submit: %d %r %s"
          % (out.returncode, out.stdout, out.stderr))
    check("access code is" in out.stderr, "submit tells the access code: %s" % out.stderr)
    st, js, _ = api.call("GET", "/v1/cases/%s" % no, token=sup)
    check(st == 200 and js.get("title") == "小区路灯不亮 %s" % tag
          and (js.get("location") or {}).get("district_code") == "110105",
          "the case is there: %s %s" % (st, js))
    again = ctl("submit", "--title", "小区路灯不亮 %s" % tag, "--body", "x", "--external_ref",
                "e2e-ctl-%s" % tag, token=agent, api=base)
    check(again.returncode == 0 and again.stdout.strip() == no
          and "already known" in again.stderr, "same external_ref: %s" % again.stderr)
    out = ctl("submit", "--title", "t", token=agent, api=base)
    check(out.returncode == 2 and "--body" in out.stderr, "missing --body: %s" % out.stderr)
    out = ctl("submit", "--title", "t", "--body", "b", api=base)
    check(out.returncode != 0 and "--token" in out.stderr, "no token: %s" % out.stderr)
    out = ctl("submit", "--title", "t", "--body", "b", "--channel", "pigeon", token=agent,
              api=base)
    check(out.returncode == 1 and "(channel)" in out.stderr and "422" in out.stderr,
          "bad channel named: %s" % out.stderr)
    out = ctl("submit", "--title", "t", "--body", "b", token="nope", api=base)
    check(out.returncode == 3 and "401" in out.stderr, "bad token: %d %s"
          % (out.returncode, out.stderr))

    # --- submit a file through the batch API ------------------------------------------------
    tmp = tempfile.mkdtemp(prefix="kesu-kesuctl-")
    path = os.path.join(tmp, "import.ndjson")
    bad_line = None
    with open(path, "w", encoding="utf-8") as f:
        n = 0
        for i in range(FILE_LINES):
            n += 1
            if i == 5:
                f.write("\n")  # a blank line: skipped, numbering kept
                n += 1
            if i == 300:
                bad_line = n
                f.write(json.dumps({"channel": "import", "external_ref": "e2e-ctl-%s-bad" % tag,
                                    "title": "", "body": "空标题"}) + "\n")
                continue
            f.write(json.dumps({"channel": "import", "external_ref": "e2e-ctl-%s-%d" % (tag, i),
                                "title": "批量导入 %s %d" % (tag, i),
                                "body": "历史热线系统导入的诉求 %d：噪音扰民。" % i},
                               ensure_ascii=False) + "\n")
    key = "e2e-ctl-file-%s" % tag
    out = ctl("submit", "--file", path, "--chunk", "200", "--idempotency_key", key,
              token=agent, api=base)
    kc.log("submit --file stdout: %s" % out.stdout.strip())
    check(out.returncode == 1, "a refused line makes exit 1: %d" % out.returncode)
    check(out.stdout.strip() == "%d lines: %d created, 0 already known, 1 refused"
          % (FILE_LINES, FILE_LINES - 1), "file summary: %r" % out.stdout)
    check("line %d: 422" % bad_line in out.stderr and "(title)" in out.stderr,
          "refused line named by its file line %d: %s" % (bad_line, out.stderr[-500:]))
    progress = [ln for ln in out.stderr.splitlines() if ln.startswith("submit: ")]
    check([p.split()[1] for p in progress] == ["200/%d" % FILE_LINES, "400/%d" % FILE_LINES,
                                                "%d/%d" % (FILE_LINES, FILE_LINES)],
          "one progress line per chunk: %s" % progress)
    out = ctl("submit", "--file", path, "--chunk", "200", "--idempotency_key", key,
              token=agent, api=base)
    check(out.stdout.strip() == "%d lines: 0 created, %d already known, 1 refused"
          % (FILE_LINES, FILE_LINES - 1), "same file, same key: nothing new: %r" % out.stdout)
    out = ctl("submit", "--file", os.path.join(tmp, "missing.ndjson"), token=agent, api=base)
    check(out.returncode == 1 and "cannot open" in out.stderr, "missing file: %s" % out.stderr)

    # --- case show -----------------------------------------------------------------------------
    def assigned():
        st, js, _ = api.call("GET", "/v1/cases/%s" % no, token=sup)
        return st == 200 and js.get("status") == "assigned"

    kc.wait_for(assigned, 90, "the single case assigned")
    out = ctl("case", "show", no, token=sup, api=base)
    kc.log("case show:\n" + out.stdout)
    text = out.stdout
    check(out.returncode == 0 and text.startswith("%s  assigned" % no), "case show head")
    check("History (China time)" in text, "timeline header")
    for ev in ("CaseReceived", "CaseClassified", "CaseAssigned"):
        check(ev in text, "timeline has %s" % ev)
    lines = [ln for ln in text.splitlines() if "Case" in ln and ln.strip()[:1].isdigit()]
    check(len(lines) >= 3 and lines[0].split()[0] == "1", "numbered events: %s" % lines)
    check(any("+" in ln.split("Case")[0] for ln in lines[1:]), "elapsed times shown")
    check("department" in text and "class" in text, "classification and department shown")
    out = ctl("case", "show", no, "--json", token=sup, api=base)
    doc = json.loads(out.stdout) if out.returncode == 0 else {}
    check(doc.get("case", {}).get("case_no") == no
          and [e["seq"] for e in doc.get("history", [])][:3] == [1, 2, 3],
          "case show --json: %s" % out.stdout[:300])
    out = ctl("case", "show", no, token=other, api=base)
    check(out.returncode == 4 and "404" in out.stderr,
          "another department's handler: not found: %d %s" % (out.returncode, out.stderr))
    out = ctl("case", "show", token=sup, api=base)
    check(out.returncode == 2, "case show without a number: exit 2")

    # --- case list ------------------------------------------------------------------------------
    # the file's cases may still be on their way through the stages: any early status counts
    out = ctl("case", "list", "--status", "assigned,classified,received", "--limit", "5",
              token=sup, api=base)
    rows = out.stdout.splitlines()
    check(out.returncode == 0 and rows[0].startswith("CASE") and rows[-1] == "5 cases (more: "
          "raise --limit)" and len(rows) == 7, "case list table: %s" % rows)
    out = ctl("case", "list", "--channel", "import", "--limit", "1000", "--json", token=sup,
              api=base)
    items = json.loads(out.stdout) if out.returncode == 0 else []
    ours = [c for c in items if ("批量导入 %s " % tag) in c["title"]]
    check(len(ours) == FILE_LINES - 1, "paged past 200 rows: %d of ours (of %d)"
          % (len(ours), len(items)))
    check(len({c["case_no"] for c in items}) == len(items), "no row twice across pages")
    out = ctl("case", "list", "--status", "nope", token=sup, api=base)
    check(out.returncode == 1 and "(status)" in out.stderr, "bad filter named: %s" % out.stderr)
    out = ctl("case", "list", "--channel", "import", "--limit", "3", token=other, api=base)
    check(out.returncode == 0 and out.stdout.strip().endswith("0 cases"),
          "a handler lists only its department: %s" % out.stdout)

    # --- load: real messages, followed on the public feed to their acknowledgement ---------
    before = int(kc.psql("SELECT count(*) FROM cases")[0][0])
    for args in (["--count", "60", "--connections", "4", "--districts", "3"],
                 ["--rate", "20", "--duration", "3", "--connections", "2"]):
        out = ctl("load", "--data_dir", kc.DATA, "--channels", "web,phone,letter", *args,
                  token=agent, api=base)
        try:
            res = json.loads(out.stdout)
        except ValueError:
            res = {}
        kc.log("load %s: %s" % (" ".join(args), out.stdout.strip()))
        want = 60 if args[0] == "--count" else 40
        check(out.returncode == 0 and res.get("failed") == 0
              and res.get("measured_cases", 0) >= want
              and res.get("complete_measured") == res.get("measured_cases"),
              "load %s: every case assigned and acknowledged: %s %s"
              % (args, out.stdout[-400:], out.stderr[-400:]))
        check(all(isinstance(res.get(k), (int, float)) and res[k] > 0
                  for k in ("e2e_cases_per_s", "intake_p99_ms", "assign_p99_ms", "ack_p99_ms")),
              "load reports throughput and latencies: %s" % res)
        check(res.get("intake_p50_ms", 0) <= res.get("intake_p99_ms", -1)
              and res.get("assign_p50_ms", 0) <= res.get("assign_p99_ms", -1),
              "p50 <= p99: %s" % res)
        if "--districts" in args:  # spread over 110101..110103, so duplicates are searched
            rows = kc.psql("SELECT COALESCE(district_code, '-'), count(*) FROM (SELECT "
                           "district_code FROM cases ORDER BY created_at OFFSET %d) c "
                           "GROUP BY 1 ORDER BY 1" % before)
            check([r[0] for r in rows] == ["110101", "110102", "110103"]
                  and all(int(r[1]) >= 20 for r in rows),
                  "load --districts 3: every case in one of three districts: %s" % rows)
    out = ctl("load", "--districts", "100", token=agent, api=base)
    check(out.returncode == 2 and "--districts" in out.stderr,
          "a bad --districts is named: %s" % out.stderr[-300:])
    out = ctl("load", "--count", "5", "--data_dir", "/nonexistent", token=agent, api=base)
    check(out.returncode != 0 and "/nonexistent" in out.stderr,
          "load without data names the path: %s" % out.stderr[-300:])


if __name__ == "__main__":
    kc.run_main(main)
    if failures:
        kc.log("%d failure(s)" % len(failures))
        sys.exit(1)
    kc.log("kesuctl e2e: ok")

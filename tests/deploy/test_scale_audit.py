"""The scale audit (scripts/scale_audit.py, decision 0030) must not rot: it reads the exact SQL
of every statement out of the preprocessed sources, and each statement its CASES run must
still exist under that name, with as many parameters as the case gives, including every
statement that runs periodically or on each console refresh.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("KESU_BIN_DIR") or os.path.join(ROOT, "build", "bin")
os.environ.setdefault("KESU_BUILD_DIR", os.path.dirname(BIN))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import scale_audit  # noqa: E402

failures = []

# decision 0030: the work that recurs, whose cost must follow the open rows
PERIODIC = ["st_pending", "st_due", "as_retention", "nt_due", "nt_unrecorded", "outbox_lock",
            "kc_inbox_purge_chunk", "ar_pending_stats", "ar_gaps", "console_counts",
            "console_sla", "console_departments", "console_emergencies", "console_hotspots",
            "intake_list", "api_archive_range", "open311_updates_public", "as_counts_fold", "as_judge_late"]


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL: " + msg)


def main():
    d = scale_audit.extract()
    check(len(d) >= 100, "statements found in the sources: %d" % len(d))
    raw = 0
    for path in scale_audit.glob.glob(os.path.join(ROOT, "services", "*", "*.c")) + \
            scale_audit.glob.glob(os.path.join(ROOT, "common", "*.c")):
        if "/kesuctl/" not in path:
            raw += len(re.findall(r"static const pg_stmt_t \w+ = \{", open(path).read()))
    check(len(d) == raw, "every pg_stmt_t read with its SQL: %d of %d" % (len(d), raw))
    for name, s in d.items():
        used = {int(x) for x in re.findall(r"\$(\d+)", s["sql"])}
        check(not used or max(used) <= s["n"],
              "%s (%s): $%d used, %d parameters declared" % (name, s["file"], max(used or {0}),
                                                             s["n"]))
    cased = {}
    for label, stmt, params, _ in scale_audit.CASES:
        check(stmt in d, "case %s: no statement %s in the sources (renamed?)" % (label, stmt))
        if stmt in d:
            check(len(params) == d[stmt]["n"], "case %s: %d parameters for %s, which takes %d"
                  % (label, len(params), stmt, d[stmt]["n"]))
        cased.setdefault(stmt, label)
    for stmt in PERIODIC:
        check(stmt in cased, "periodic statement %s has no case in scale_audit.CASES" % stmt)
    # statements measured as custom plans only: their handler must still force them
    o311 = open(os.path.join(ROOT, "services", "intake", "open311.c")).read()
    for stmt in scale_audit.CUSTOM_ONLY:
        check(stmt in d and d[stmt]["file"].startswith("services/intake/open311.c"),
              "custom-only statement %s is not open311.c's" % stmt)
    check("SET LOCAL plan_cache_mode = force_custom_plan" in o311,
          "open311.c no longer forces custom plans, but scale_audit.CUSTOM_ONLY measures them so")
    if failures:
        print("%d failure(s)" % len(failures))
        sys.exit(1)
    print("scale audit: %d statements, %d cases: ok" % (len(d), len(scale_audit.CASES)))


if __name__ == "__main__":
    main()

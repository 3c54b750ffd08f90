"""Docs that must not drift from the code: every Prometheus metric registered in
common/ or services/ is documented in docs/metrics.md, and every binary answers --help.
"""
import glob
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("KESU_BIN_DIR") or os.path.join(ROOT, "build", "bin")
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL: " + msg)


def main():
    names = set()
    for path in glob.glob(os.path.join(ROOT, "common", "*.c")) + \
            glob.glob(os.path.join(ROOT, "services", "*", "*.c")):
        with open(path, encoding="utf-8") as f:
            src = f.read()
        names.update(re.findall(r'metrics_(?:counter|gauge|histogram)\(\s*"([a-z_]+)"', src))
    with open(os.path.join(ROOT, "docs", "metrics.md"), encoding="utf-8") as f:
        doc = f.read()
    check(len(names) > 10, "found the metrics in the code (%d)" % len(names))
    for n in sorted(names):
        check("`%s" % n in doc, "metric %s documented in docs/metrics.md" % n)
    for b in ["kesu-intake", "kesu-classifier", "kesu-dispatcher", "kesu-sla-monitor",
              "kesu-notifier", "kesu-archiver", "kesuctl"]:
        out = subprocess.run([os.path.join(BIN, b), "--help"], capture_output=True, text=True,
                             check=False, timeout=20)
        check(out.returncode == 0 and len(out.stdout) > 200, "%s --help" % b)
    print("%d passed, %d failed" % (0 if failures else 1, len(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

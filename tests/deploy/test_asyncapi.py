"""docs/asyncapi.yaml is generated from the .proto files and up to date, names every
topic the code knows, and every event type is written on some stage topic."""
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL: " + msg)


def main():
    out = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts", "gen-asyncapi.py"),
                          "--check"], capture_output=True, text=True, check=False)
    check(out.returncode == 0, "asyncapi up to date: %s" % out.stdout.strip())
    with open(os.path.join(ROOT, "docs", "asyncapi.yaml")) as f:
        doc = yaml.safe_load(f)
    check(doc["asyncapi"].startswith("2."), "AsyncAPI 2 document")
    with open(os.path.join(ROOT, "common", "kafka.c")) as f:
        topics = set(re.findall(r'"(kesu\.[a-z]+\.v1)"', f.read()))
    check(len(topics) == 7, "topics found in common/kafka.c: %s" % topics)
    for t in topics:
        check(t in doc["channels"], "topic %s documented" % t)
    with open(os.path.join(ROOT, "proto", "kesu", "v1", "envelope.proto")) as f:
        events = re.findall(r"^\s+([A-Z][A-Za-z]+) [a-z_]+ = \d+;", f.read(), re.M)
    check(len(events) >= 20, "events found in envelope.proto")
    written = set()
    for name, ch in doc["channels"].items():
        if name in ("kesu.public.v1", "kesu.dlq.v1"):
            continue
        for ref in ch["subscribe"]["message"].get("oneOf", []):
            written.add(ref["$ref"].split("/")[-1])
    for e in events:
        if e != "CaseArchived":  # the archiver's own event, on the public feed only
            check(e in written, "event %s is written on a stage topic" % e)
        check(e in doc["components"]["messages"], "event %s has a message" % e)
    print("%d passed, %d failed" % (0 if failures else 1, len(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

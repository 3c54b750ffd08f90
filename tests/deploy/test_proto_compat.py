"""The schema-compatibility check itself: the tree is compatible with the released
descriptor set, and the checker catches a removed field, a renumbered field, a
changed type and a removed message, while an added field passes.
"""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location(
    "compat", os.path.join(ROOT, "scripts", "check-proto-compat.py"))
compat = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compat)
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL: " + msg)


def descriptor_of(proto_dir, out):
    files = sorted(os.path.join("kesu", "v1", f)
                   for f in os.listdir(os.path.join(proto_dir, "kesu", "v1")))
    subprocess.run(["protoc", "-I", proto_dir, "--include_imports",
                    "--descriptor_set_out=" + out] + files, check=True)
    return compat.load(out)


def mutated(edit):
    d = tempfile.mkdtemp()
    shutil.copytree(os.path.join(ROOT, "proto", "kesu"), os.path.join(d, "kesu"))
    p = os.path.join(d, "kesu", "v1", "events.proto")
    with open(p) as f:
        s = f.read()
    s2 = edit(s)
    assert s2 != s, "mutation did not apply"
    with open(p, "w") as f:
        f.write(s2)
    return descriptor_of(d, os.path.join(d, "x.binpb"))


def main():
    out = subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "scripts",
                                                          "check-proto-compat.py")],
                         capture_output=True, text=True, check=False)
    check(out.returncode == 0, "tree compatible with the release: %s" % out.stdout)
    released = compat.load(compat.RELEASED)

    errs = compat.compare(released, mutated(lambda s: s.replace(
        "  string reason = 2;\n}\n\nmessage ProgressNoted", "}\n\nmessage ProgressNoted")))
    check(any("CaseReturned.reason" in e and "removed" in e for e in errs),
          "removed field caught: %s" % errs)
    errs = compat.compare(released, mutated(lambda s: s.replace(
        "  string channel = 1;        // phone", "  string channel = 11;        // phone")))
    check(any("CaseReceived" in e for e in errs), "renumbered field caught: %s" % errs)
    errs = compat.compare(released, mutated(lambda s: s.replace(
        "  int32 satisfaction = 1;", "  string satisfaction = 1;")))
    check(any("changed type" in e for e in errs), "changed type caught: %s" % errs)
    errs = compat.compare(released, mutated(lambda s: re.sub(
        r"message Location \{.*?\n\}\n", "", s, flags=re.S).replace(
        "  Location location = 5;\n", "")))
    check(any("Location was removed" in e for e in errs), "removed message caught: %s" % errs)
    errs = compat.compare(released, mutated(lambda s: s.replace(
        "  string into_case_no = 1;\n", "  string into_case_no = 1;\n  string extra = 2;\n")))
    check(errs == [], "added field allowed: %s" % errs)
    errs = compat.compare(released, mutated(lambda s: s.replace(
        "message CaseMerged {\n  string into_case_no = 1;\n}",
        "message CaseMerged {\n  reserved 1;\n  reserved \"into_case_no\";\n}")))
    check(errs == [], "reserved retirement allowed: %s" % errs)
    print("%d passed, %d failed" % (0 if failures else 1, len(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

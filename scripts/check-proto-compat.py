#!/usr/bin/python3
"""Schema compatibility check for the kesu.v1 contract.

Compares the .proto files of the tree with the last released descriptor set
(proto/released/kesu-v1.binpb): within v1 fields may be added, never removed,
renumbered, renamed or given another type or label, and messages never removed.
A field may be retired only by marking its number (and name) reserved.

  scripts/check-proto-compat.py            check (exit 1 on a break, naming it)
  scripts/check-proto-compat.py --release  write the current contract as the new baseline
"""
import os
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASED = os.path.join(ROOT, "proto", "released", "kesu-v1.binpb")


def current_set(out_path):
    protos = sorted(os.path.join("kesu", "v1", f)
                    for f in os.listdir(os.path.join(ROOT, "proto", "kesu", "v1"))
                    if f.endswith(".proto"))
    subprocess.run(["protoc", "-I", os.path.join(ROOT, "proto"), "--include_imports",
                    "--descriptor_set_out=" + out_path] + protos, check=True)


def load(path):
    fds = descriptor_pb2.FileDescriptorSet()
    with open(path, "rb") as f:
        fds.ParseFromString(f.read())
    return fds


def messages(fds):
    out = {}

    def walk(prefix, msgs):
        for m in msgs:
            name = prefix + "." + m.name
            out[name] = m
            walk(name, m.nested_type)

    for fd in fds.file:
        walk(fd.package, fd.message_type)
    return out


def compare(old, new):
    errors = []
    old_m, new_m = messages(old), messages(new)
    for name, om in old_m.items():
        nm = new_m.get(name)
        if nm is None:
            errors.append("message %s was removed" % name)
            continue
        reserved = {r.start for r in nm.reserved_range} | {
            n for r in nm.reserved_range for n in range(r.start, r.end)}
        reserved_names = set(nm.reserved_name)
        by_num = {f.number: f for f in nm.field}
        for of in om.field:
            nf = by_num.get(of.number)
            if nf is None:
                if of.number in reserved and of.name in reserved_names:
                    continue
                errors.append("%s.%s (field %d) was removed or renumbered; mark it reserved "
                              "instead" % (name, of.name, of.number))
                continue
            if nf.name != of.name:
                errors.append("%s field %d was renamed %s -> %s" % (name, of.number, of.name,
                                                                    nf.name))
            if nf.type != of.type or nf.type_name != of.type_name:
                errors.append("%s.%s (field %d) changed type" % (name, of.name, of.number))
            if nf.label != of.label:
                errors.append("%s.%s (field %d) changed label" % (name, of.name, of.number))
            if of.HasField("oneof_index") != nf.HasField("oneof_index"):
                errors.append("%s.%s (field %d) moved in or out of a oneof" % (name, of.name,
                                                                                of.number))
    return errors


def main():
    with tempfile.TemporaryDirectory() as d:
        cur = os.path.join(d, "current.binpb")
        current_set(cur)
        if "--release" in sys.argv:
            os.makedirs(os.path.dirname(RELEASED), exist_ok=True)
            with open(cur, "rb") as src, open(RELEASED, "wb") as dst:
                dst.write(src.read())
            print("released contract written to %s" % RELEASED)
            return 0
        errors = compare(load(RELEASED), load(cur))
    if errors:
        print("kesu.v1 contract broken against proto/released/kesu-v1.binpb:")
        for e in errors:
            print("  " + e)
        return 1
    print("kesu.v1 contract compatible with the released descriptor set")
    return 0


if __name__ == "__main__":
    sys.exit(main())

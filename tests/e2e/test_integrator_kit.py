"""The integrator kit: a live system's kesu.public.v1 read with kcat and decoded
with `protoc --decode` using only the shipped .proto files, and read again by the
example Node.js consumer (examples/node-consumer, kafkajs + protobufjs from npm).
Both must see every event of every case, in case_seq order, identical to the
case history.
"""
import json
import os
import re
import struct
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scripts"))
import kesu_client as kc  # noqa: E402

failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        kc.log("FAIL: " + msg)


def drive(stack, n):
    api = stack.api
    agent = kc.token("agent", label="kit-agent")
    sup = kc.token("supervisor", label="kit-sup")
    cases = []
    for i, m in enumerate(kc.load_messages(n - 1, 1)):
        st, js, _ = api.call("POST", "/v1/complaints",
                             {"channel": "web", "title": m["title"], "body": m["body"],
                              "language": m["language"]}, token=agent)
        check(st == 201, "submit: %s %s" % (st, js))
        cases.append(js)
    ids = {c["case_id"] for c in cases}

    def status(c):
        return api.call("GET", "/v1/cases/%s" % c["case_no"], token=sup)[1].get("status")

    kc.wait_for(lambda: all(status(c) == "assigned" for c in cases), 60, "assigned")
    for c in cases:
        api.call("POST", "/v1/cases/%s/actions" % c["case_no"], {"action": "accept"}, token=sup)
        api.call("POST", "/v1/cases/%s/actions" % c["case_no"],
                 {"action": "resolve", "measures": "explanation", "reply": "done"}, token=sup)
    kc.wait_for(lambda: all(status(c) == "replied" for c in cases), 60, "replied")
    for c in cases:
        api.call("POST", "/v1/cases/%s/feedback" % c["case_no"],
                 {"access_code": c["access_code"], "satisfaction": 4})
    hist = {}

    def settled():
        for c in cases:
            ev = api.call("GET", "/v1/cases/%s/history" % c["case_no"], token=sup)[1]["events"]
            hist[c["case_id"]] = [(e["seq"], e["event_type"]) for e in ev]
        if not all(any(t == "CaseArchived" for _, t in h) for h in hist.values()):
            return False
        feed = kc.tail("kesu.public.v1", timeout_ms=2000)
        got = {}
        for e in feed:
            if e["case_id"] in ids:
                got.setdefault(e["case_id"], []).append(e)
        return all(len(got.get(cid, [])) == len(h) for cid, h in hist.items())

    kc.wait_for(settled, 90, "public feed complete", interval=1)
    return ids, hist


def kcat_read(topic):
    """kcat with each value framed by its 4-byte length (%R), then protoc --decode."""
    out = subprocess.run(["kcat", "-C", "-b", kc.KAFKA, "-t", topic, "-o", "beginning", "-e",
                          "-q", "-f", "%R%s"], capture_output=True, check=False, timeout=60)
    check(out.returncode == 0, "kcat: %s" % out.stderr.decode(errors="replace"))
    data, pos, events = out.stdout, 0, []
    proto_dir = os.path.join(kc.ROOT, "proto")
    while pos + 4 <= len(data):
        (n,) = struct.unpack(">i", data[pos:pos + 4])
        value = data[pos + 4:pos + 4 + n]
        pos += 4 + n
        dec = subprocess.run(["protoc", "-I", proto_dir, "--decode=kesu.v1.Envelope",
                              "kesu/v1/envelope.proto"], input=value, capture_output=True,
                             check=False)
        check(dec.returncode == 0, "protoc --decode: %s" % dec.stderr.decode()[:200])
        text = dec.stdout.decode()
        fields = dict(re.findall(r'^(event_type|case_id|case_seq): "?([^"\n]+)"?$', text, re.M))
        events.append(fields)
    check(pos == len(data), "kcat framing consumed the whole output")
    return events


def node_read(topic):
    d = os.path.join(kc.ROOT, "examples", "node-consumer")
    if not os.path.isdir(os.path.join(d, "node_modules", "kafkajs")):
        inst = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=d,
                              capture_output=True, text=True, check=False, timeout=600)
        check(inst.returncode == 0, "npm ci: %s" % inst.stderr[-500:])
    out = subprocess.run(["node", "consumer.js", "--brokers", kc.KAFKA, "--topic", topic,
                          "--from-beginning", "--idle-ms", "4000"], cwd=d, capture_output=True,
                         text=True, check=False, timeout=120)
    check(out.returncode == 0, "node consumer: %s" % out.stderr[-500:])
    check("expected case_seq" not in out.stderr, "node consumer saw a gap: %s" % out.stderr)
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def main():
    stack = kc.Stack(http_port=18180, ops_base=19200)
    try:
        stack.start()
        ids, hist = drive(stack, 4)
        topic = stack.prefix + "kesu.public.v1"

        k = [e for e in kcat_read(topic) if e.get("case_id") in ids]
        for cid, h in hist.items():
            mine = [(int(e["case_seq"]), e["event_type"]) for e in k if e["case_id"] == cid]
            check(mine == h, "kcat+protoc: %s feed %s != history %s" % (cid, mine, h))

        n = [e for e in node_read(topic) if e.get("case_id") in ids]
        for cid, h in hist.items():
            mine = sorted((e["case_seq"], e["event_type"]) for e in n if e["case_id"] == cid)
            check(mine == h, "node consumer: %s feed %s != history %s" % (cid, mine, h))
        check(all(e.get("payload") and e.get(e["payload"]) is not None for e in n),
              "node consumer decoded every payload (oneof set)")
        kc.log("kcat read %d events, node read %d events of %d cases" % (len(k), len(n),
                                                                         len(ids)))
    finally:
        stack.stop()
        stack.delete_topics()
    kc.log("%d checks failed" % len(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    kc.run_main(main)

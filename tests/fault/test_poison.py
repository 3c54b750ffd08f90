"""Fault 5: poison messages, the DLQ, and replay.

Under steady load, messages that can never be applied are put on the stage
topics (written as outbox rows of the topic's own producer, so the service's
relay publishes them like any other message): random bytes, an envelope of
an unknown event type, an envelope naming no case, and a valid event of a
case in a status where it is an impossible transition. Each must land in
kesu.dlq.v1 with a reason while the load keeps flowing. Then replay: an
event DLQ'd because its case did not exist yet is replayed (twice) after the
case appears, and is applied exactly once.
"""
import json
import os
import struct
import time
import uuid

import faultlib as fl
from faultlib import kc

RATE = int(os.environ.get("KESU_FAULT_RATE", "20"))
HTTP_PORT = 28082
OPS_BASE = 29120


def varint(n):
    out = b""
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def field(num, value):
    """protobuf wire encoding of one field: int -> varint, bytes/str -> length-delimited."""
    if isinstance(value, int):
        return varint(num << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint((num << 3) | 2) + varint(len(value)) + value


def envelope(event_type, case_id, payload_field, payload=b"", seq=1, version=1, event_id=None,
             case_no="KS00000000-0000000", producer="intake"):
    event_id = event_id or str(uuid.uuid4())
    b = (field(1, event_id) + field(2, event_type) + field(3, case_id) + field(4, case_no) +
         field(5, version) + field(6, int(time.time() * 1000)) + field(7, producer) +
         field(8, "fault-poison") + field(9, 1) + field(10, seq))
    if payload_field:
        b += field(payload_field, payload)
    return event_id, b


def inject(producer, topic, key, payload, headers):
    fl.psql("INSERT INTO outbox (producer, topic, msg_key, payload, headers) VALUES "
            "('%s', '%s', '%s', decode('%s', 'hex'), '%s')"
            % (producer, os.environ["KESU_TOPICS_PREFIX"] + topic, key, payload.hex(),
               json.dumps(headers)))


def dlq_list():
    out = kc.kesuctl("dlq", "list", "--json")
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def main(stacks):
    stack = kc.Stack(http_port=HTTP_PORT, ops_base=OPS_BASE)
    stacks.append(stack)
    kc.log("logs in " + stack.logdir)
    stack.start()
    since = fl.pg_now_ms()
    agent = kc.token("agent", label="fault-poison")
    sup = kc.token("supervisor", label="fault-poison-sup")
    load = fl.Load(stack.api, agent, RATE)
    load.start()
    time.sleep(3)

    # one real case to abuse: wait until it is assigned
    victim = next(iter(load.acked.items()))
    kc.wait_for(lambda: fl.psql("SELECT status FROM cases WHERE id = '%s'" % victim[1]["id"])
                [0][0] == "assigned", 60, "victim assigned")
    poison = {}
    # 1. random bytes
    for i in range(5):
        key = str(uuid.uuid4())
        inject("intake", "kesu.intake.v1", key, os.urandom(40 + i * 13), {})
        poison["random-%d" % i] = key
    # 2. an unknown event type (no payload, a type no .proto names)
    eid, b = envelope("CaseTeleported", str(uuid.uuid4()), 99, b"")
    key = str(uuid.uuid4())
    inject("intake", "kesu.intake.v1", key, b, {"event_type": "CaseTeleported", "event_id": eid})
    poison["unknown-type"] = key
    # 3. a valid CaseReceived of a case that does not exist (yet): replayed below
    ghost_id, ghost_event = str(uuid.uuid4()), str(uuid.uuid4())
    ghost_no = "KS20990101-%07d" % (int(ghost_id[:6], 16) % 10**7)
    _, ghost_bytes = envelope("CaseReceived", ghost_id, 20, field(1, "web"), event_id=ghost_event,
                              case_no=ghost_no)
    inject("intake", "kesu.intake.v1", ghost_id, ghost_bytes,
           {"event_type": "CaseReceived", "event_id": ghost_event})
    poison["unknown-case"] = ghost_id
    # 4. an impossible transition: CaseClassified of the already assigned victim, at no place
    #    in its history (seq 0). The dispatcher sees the case has moved on and skips it
    #    (a stale event is harmless, docs/architecture.md); the archiver cannot place it
    #    in the feed and refuses it into the DLQ; nobody moves the case.
    eid, b = envelope("CaseClassified", victim[1]["id"], 21, field(1, "consultation"), seq=0,
                      version=1, case_no=victim[0], producer="classifier")
    inject("classifier", "kesu.classifier.v1", victim[1]["id"], b,
           {"event_type": "CaseClassified", "event_id": eid})
    poison["impossible-transition"] = victim[1]["id"]

    def landed():
        entries = dlq_list()
        keys = {e["key"] for e in entries}
        return entries if all(k in keys for k in poison.values()) else None

    entries = kc.wait_for(landed, 60, "poison messages in the DLQ", interval=1)
    reasons = {}
    for e in entries:
        h = e["headers"]
        fl.check(h.get("dlq_error") and h.get("dlq_service") and h.get("dlq_source_topic")
                 and h.get("dlq_source_offset"), "DLQ entry %s has its headers: %s"
                 % (e["id"], h))
        reasons.setdefault(e["key"], []).append((h.get("dlq_consumer"), h.get("dlq_error")))
    kc.log("DLQ: %d entries; reasons: %s" % (len(entries), json.dumps(reasons)[:1500]))
    time.sleep(3)  # the slower consumers' entries
    entries = dlq_list()
    for i in range(5):
        groups = {c for c, _ in reasons.get(poison["random-%d" % i], [])}
        fl.check(len(groups) >= 1, "random bytes %d in the DLQ: %s" % (i, groups))
    fl.check(poison["unknown-type"] in reasons, "unknown event type in the DLQ")
    fl.check(poison["unknown-case"] in reasons and any(
        c == "kesu-classifier" for c, _ in reasons[poison["unknown-case"]]),
        "unknown case in the DLQ (classifier)")
    impossible = reasons.get(poison["impossible-transition"], [])
    fl.check(any(c == "kesu-archiver" for c, _ in impossible),
             "impossible transition refused into the DLQ by the archiver: %s" % impossible)
    st = fl.psql("SELECT status, version FROM cases WHERE id = '%s'" % victim[1]["id"])[0]
    fl.check(st[0] == "assigned", "the victim case was not moved by the poison: %s" % st)

    # replay: the case now exists (as intake would have written it), the event applies once
    fl.psql("INSERT INTO cases (id, case_no, access_code_hash, channel, title, body, trace_id, "
            "event_seq) VALUES ('%s', '%s', sha256('x'), 'web', 'ghost', 'ghost case', 't', 1);"
            "INSERT INTO case_events (case_id, seq, event_id, event_type, version, status, "
            "producer, occurred_at, summary) VALUES ('%s', 1, '%s', 'CaseReceived', 1, "
            "'received', 'intake', now(), '{}')" % (ghost_id, ghost_no, ghost_id, ghost_event))
    ids = [e["id"] for e in entries if e["key"] == ghost_id]
    dry = kc.kesuctl("dlq", "replay", "--id", ",".join(ids), "--dry-run")
    fl.check("would replay" in dry.stderr, "dry run shows what it would do: %s" % dry.stderr)
    for attempt in range(2):
        out = kc.kesuctl("dlq", "replay", "--id", ",".join(ids))
        fl.check('"replayed":%d' % len(ids) in out.stdout, "replay %d: %s %s"
                 % (attempt, out.stdout, out.stderr))
        time.sleep(3)

    def ghost_classified():
        rows = fl.psql("SELECT count(*) FROM case_events WHERE case_id = '%s' AND "
                       "event_type = 'CaseClassified'" % ghost_id)
        return int(rows[0][0]) >= 1

    kc.wait_for(ghost_classified, 60, "replayed event applied")
    time.sleep(5)
    n = int(fl.psql("SELECT count(*) FROM case_events WHERE case_id = '%s' AND "
                    "event_type = 'CaseClassified'" % ghost_id)[0][0])
    fl.check(n == 1, "replayed twice, classified %d times" % n)
    inbox = int(fl.psql("SELECT count(*) FROM inbox WHERE consumer = 'kesu-classifier' AND "
                        "event_id = '%s'" % ghost_event)[0][0])
    fl.check(inbox == 1, "classifier inbox has the replayed event once: %d" % inbox)

    load.stop()
    fl.finish(stack, load, "poison", {"poison_messages": len(poison), "dlq_entries": len(entries),
                                      "replays": 2 * len(ids)}, since)

    # kesuctl verify can fail: break one thing in each of four areas and it must say so (the
    # kept count is a row of a department of its own, taken out again: counts are checked over
    # the whole database, and the fault tests after this one share it)
    cid = victim[1]["id"]
    prefix = os.environ["KESU_TOPICS_PREFIX"]
    fl.psql("DELETE FROM inbox WHERE consumer = 'kesu-classifier' AND event_id = (SELECT event_id "
            "FROM case_events WHERE case_id = '%s' AND seq = 1);"
            "UPDATE cases SET event_seq = event_seq + 1 WHERE id = '%s';"
            "INSERT INTO outbox (producer, topic, msg_key, payload) VALUES ('fault-test', "
            "'%skesu.intake.v1', 'k', '\\x00');"
            "INSERT INTO case_status_counts (department, status, writer, n) "
            "VALUES ('fault-test', 'closed', 0, 1)" % (cid, cid, prefix))
    e = dict(os.environ, KESU_PG=kc.PG, KESU_KAFKA_BOOTSTRAP_SERVERS=kc.KAFKA)
    out = fl.subprocess.run([os.path.join(kc.BIN, "kesuctl"), "verify", "--since", str(since),
                             "--json"], capture_output=True, text=True, env=e, check=False)
    fl.psql("DELETE FROM outbox WHERE producer = 'fault-test';"
            "DELETE FROM case_status_counts WHERE department = 'fault-test'")
    summary = fl.json.loads(out.stdout.strip().splitlines()[-1])
    kc.log("verify after tampering (exit %d): %s\n%s" % (out.returncode, out.stdout.strip(),
                                                          out.stderr.strip()))
    fl.check(out.returncode == 1, "verify exits 1 on discrepancies: %d" % out.returncode)
    for area in ("inbox", "history", "outbox", "counts"):
        fl.check(summary["by_area"][area] >= 1, "verify reports the %s discrepancy" % area)
    fl.check(victim[0] in out.stderr, "verify names the case: %s" % out.stderr)


if __name__ == "__main__":
    fl.run(main)

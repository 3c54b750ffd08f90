"""Fault 2: the Kafka broker stopped for OUTAGE_S seconds under load.

A private single-node KRaft broker (scripts/infra.sh kafka-up with its own
KESU_RUN and ports) carries this run, so the shared broker is never touched.
While it is down intake keeps answering 201 (the case and its outbox row
commit in PostgreSQL), the outbox grows; after the broker is back the relays
drain it and every consumer catches up: invariants and `kesuctl verify` hold.
"""
import os
import time

import faultlib as fl
from faultlib import kc

RATE = int(os.environ.get("KESU_FAULT_RATE", "10"))
OUTAGE_S = int(os.environ.get("KESU_FAULT_OUTAGE_S", "60"))
BROKER_PORT = 59192
HTTP_PORT = 28083
OPS_BASE = 29130


def outbox_rows():
    return int(fl.psql("SELECT count(*) FROM outbox WHERE left(topic, length('%s')) = '%s'"
                       % (os.environ["KESU_TOPICS_PREFIX"], os.environ["KESU_TOPICS_PREFIX"]))
               [0][0])


def main(stacks):
    broker = fl.Private("kafka", BROKER_PORT)
    try:
        broker.up()
        kc.KAFKA = broker.address
        os.environ["KESU_KAFKA_BOOTSTRAP_SERVERS"] = broker.address
        stack = kc.Stack(http_port=HTTP_PORT, ops_base=OPS_BASE)
        stacks.append(stack)
        kc.log("logs in " + stack.logdir)
        stack.start()
        since = fl.pg_now_ms()
        load = fl.Load(stack.api, kc.token("agent", label="fault-broker"), RATE)
        load.start()
        time.sleep(5)
        before = dict(load.status)
        took = broker.down()
        kc.log("broker stopped (%.1fs)" % took)
        peak = 0
        t_end = time.time() + OUTAGE_S
        while time.time() < t_end:
            peak = max(peak, outbox_rows())
            time.sleep(2)
        during = {k: v - before.get(k, 0) for k, v in load.status.items()}
        kc.log("during the outage: HTTP %s, outbox peak %d rows" % (during, peak))
        fl.check(set(during) == {201} and during[201] >= RATE * OUTAGE_S * 0.8,
                 "intake kept answering 201 while the broker was down: %s" % during)
        fl.check(peak >= RATE * OUTAGE_S * 0.5, "the outbox grew while the broker was down: %d"
                 % peak)
        broker.up()
        kc.log("broker back")
        time.sleep(5)
        load.stop()
        fl.finish(stack, load, "broker_outage", {"broker_down_s": OUTAGE_S}, since,
                  outbox_peak_rows=peak)
        stack.stop()
        stacks.remove(stack)
        stack.delete_topics()
    finally:
        broker.destroy()


if __name__ == "__main__":
    fl.run(main)

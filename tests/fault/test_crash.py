"""Fault 1: crashes under steady load.

Every service in turn is killed with SIGKILL and restarted, ROUNDS times,
while complaints arrive at RATE/s. Then, in a build with
-DKESU_FAULT_INJECTION=ON, each consumer service is restarted with
KESU_FAULT_CRASH_AFTER_COMMIT=N: it dies right after its Nth committed batch
and before the offsets are stored, so Kafka redelivers a batch whose effects
are already in PostgreSQL; the inbox must make that a no-op. At the end:
every acknowledged case present and assigned, each stage's event once, one
acknowledgement per case, the public feed gap-free, `kesuctl verify` clean.
"""
import os
import time

import faultlib as fl
from faultlib import kc

RATE = int(os.environ.get("KESU_FAULT_RATE", "20"))
ROUNDS = int(os.environ.get("KESU_FAULT_ROUNDS", "2"))
HTTP_PORT = 28081
OPS_BASE = 29110
CONSUMERS = ["classifier", "dispatcher", "sla-monitor", "notifier", "archiver"]


def main(stacks):
    stack = kc.Stack(http_port=HTTP_PORT, ops_base=OPS_BASE)
    stacks.append(stack)
    kc.log("logs in " + stack.logdir)
    stack.start()
    since = fl.pg_now_ms()
    load = fl.Load(stack.api, kc.token("agent", label="fault-crash"), RATE)
    load.start()
    time.sleep(3)
    kills = 0
    for rnd in range(ROUNDS):
        for name, _, _ in kc.SERVICES:
            fl.kill9(stack, name)
            kills += 1
            time.sleep(0.5)
            fl.restart(stack, name)
            time.sleep(1.5)
        kc.log("round %d: %d kills, %d acknowledged" % (rnd + 1, kills, len(load.acked)))

    commit_crashes = 0
    if os.environ.get("KESU_FAULT_INJECTION") == "1":
        for name in CONSUMERS:
            # kill it where it hurts: after the 3rd commit, before the offset store
            fl.kill9(stack, name)
            fl.restart(stack, name, env={"KESU_FAULT_CRASH_AFTER_COMMIT": "3"}, wait=False)
            p = stack.procs[name]
            try:
                rc = p.wait(timeout=60)
            except Exception:  # noqa: BLE001 - it did not crash: report and go on
                rc = None
            fl.check(rc == 137, "%s with KESU_FAULT_CRASH_AFTER_COMMIT=3 exited %s" % (name, rc))
            if rc == 137:
                commit_crashes += 1
                del stack.procs[name]
            else:
                fl.kill9(stack, name)
            fl.restart(stack, name)
        kc.log("%d commit-then-crash faults" % commit_crashes)
    else:
        fl.check(False, "this build has no fault-injection switch: configure with "
                        "-DKESU_FAULT_INJECTION=ON (the fault label needs it)")
    time.sleep(2)
    load.stop()
    kc.log("load stopped: %d acknowledged, statuses %s" % (len(load.acked), load.status))
    fl.finish(stack, load, "crash", {"kill9": kills, "commit_then_crash": commit_crashes},
              since)


if __name__ == "__main__":
    fl.run(main)

"""Fault 4: scale-out and rebalance under load.

Two instances of every consumer service share each consumer group; every
few seconds one of the second instances is stopped (SIGTERM) or started,
so partitions move back and forth while complaints arrive. A batch taken
before a revoke is dropped and redelivered, the inbox makes the redelivery
a no-op: no gap, no double effect, `kesuctl verify` clean.
"""
import os
import signal
import subprocess
import time

import faultlib as fl
from faultlib import kc

RATE = int(os.environ.get("KESU_FAULT_RATE", "20"))
CYCLES = int(os.environ.get("KESU_FAULT_CYCLES", "12"))
HTTP_PORT = 28085
OPS_BASE = 29150
CONSUMERS = [(n, b, o) for n, b, o in kc.SERVICES if n != "intake"]


def start_twin(stack, name, binary, off):
    logf = open(os.path.join(stack.logdir, name + "-2.log"), "ab")
    p = subprocess.Popen([os.path.join(kc.BIN, binary), "--ops.listen",
                          "127.0.0.1:%d" % (stack.ops_base + 10 + off)],
                         stdout=logf, stderr=logf, env=stack.env, stdin=subprocess.DEVNULL)
    logf.close()
    return p


def main(stacks):
    stack = kc.Stack(http_port=HTTP_PORT, ops_base=OPS_BASE)
    stacks.append(stack)
    kc.log("logs in " + stack.logdir)
    stack.start()
    twins = {n: start_twin(stack, n, b, o) for n, b, o in CONSUMERS}
    since = fl.pg_now_ms()
    load = fl.Load(stack.api, kc.token("agent", label="fault-rebalance"), RATE)
    load.start()
    moves = 0
    try:
        time.sleep(3)
        for i in range(CYCLES):
            name, binary, off = CONSUMERS[i % len(CONSUMERS)]
            p = twins[name]
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                rc = p.wait(timeout=60)
                fl.check(rc == 0, "%s twin exited %d on SIGTERM" % (name, rc))
            twins[name] = start_twin(stack, name, binary, off)
            moves += 2
            time.sleep(3)
        load.stop()
        fl.finish(stack, load, "rebalance", {"instances_stopped_or_started": moves}, since)
    finally:
        for p in twins.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=60)


if __name__ == "__main__":
    fl.run(main)

"""Fault 3: PostgreSQL stopped for OUTAGE_S seconds under load.

A private PostgreSQL cluster (scripts/infra.sh pg-up with its own KESU_RUN
and port; initdb as the postgres user) holds this run, so the shared one
stays up. While it is down: intake answers 503 database_unavailable with
Retry-After, consumers pause (their offsets stay where they were) and
/readyz turns false. When it is back everything resumes by itself; the load
generator's retries (same Idempotency-Key) are acknowledged once each and
the invariants and `kesuctl verify` hold.
"""
import os
import time

import faultlib as fl
from faultlib import kc

RATE = int(os.environ.get("KESU_FAULT_RATE", "10"))
OUTAGE_S = int(os.environ.get("KESU_FAULT_PG_OUTAGE_S", "20"))
PG_PORT = 55532
HTTP_PORT = 28084
OPS_BASE = 29140


def main(stacks):
    pg = fl.Private("pg", PG_PORT)
    try:
        pg.up()
        kc.PG = pg.address
        os.environ["KESU_PG"] = pg.address
        kc.kesuctl("migrate", "--pg", pg.address)
        stack = kc.Stack(http_port=HTTP_PORT, ops_base=OPS_BASE)
        stacks.append(stack)
        kc.log("logs in " + stack.logdir)
        stack.start()
        since = fl.pg_now_ms()
        load = fl.Load(stack.api, kc.token("agent", label="fault-pg"), RATE)
        load.start()
        time.sleep(5)
        pg.down()
        kc.log("PostgreSQL stopped")
        not_ready = set()
        t_end = time.time() + OUTAGE_S
        while time.time() < t_end:
            for name, _, _ in kc.SERVICES:
                if not fl.ready(stack, name):
                    not_ready.add(name)
            time.sleep(1)
        n503 = load.status.get(503, 0)
        kc.log("during the outage: HTTP %s, not ready: %s" % (load.status, sorted(not_ready)))
        fl.check(n503 > 0, "intake answered 503 while PostgreSQL was down: %s" % load.status)
        fl.check(all(ra and ra.isdigit() and int(ra) > 0 for ra in load.retry_after),
                 "every 503 has a Retry-After: %s" % sorted(set(map(str, load.retry_after))))
        codes = {(e or {}).get("error", {}).get("code") for e in load.errors_503}
        fl.check(codes == {"database_unavailable"}, "503 says database_unavailable: %s" % codes)
        fl.check({"intake", "classifier", "dispatcher", "archiver"} <= not_ready,
                 "readiness turned false: %s" % sorted(not_ready))
        pg.up()
        kc.log("PostgreSQL back")
        kc.wait_for(lambda: all(fl.ready(stack, n) for n, _, _ in kc.SERVICES), 60,
                    "every service ready again")
        time.sleep(5)
        load.stop()
        fl.finish(stack, load, "pg_outage", {"pg_down_s": OUTAGE_S}, since,
                  http_503=n503, not_ready=sorted(not_ready))
        stack.stop()
        stacks.remove(stack)
        stack.delete_topics()
    finally:
        pg.destroy()


if __name__ == "__main__":
    fl.run(main)

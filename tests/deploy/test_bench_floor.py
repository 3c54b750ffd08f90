"""scripts/bench_floor.py (the design's floor, docs/performance.md) still runs on the real
schema: a few small batches through every stage's rows, and its own checks (every case
assigned, the outbox empty) hold; its line carries the figures the docs quote."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("KESU_BIN_DIR") or os.path.join(ROOT, "build", "bin")


def main():
    env = dict(os.environ, KESU_FLOOR_BATCH="5", KESU_FLOOR_BATCHES="4", KESU_BIN_DIR=BIN)
    out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "bench_floor.py")],
                         capture_output=True, text=True, env=env, timeout=100)
    if out.returncode != 0:
        print(out.stdout, out.stderr)
        sys.exit("FAIL: bench_floor.py exited %d" % out.returncode)
    line = json.loads(out.stdout.strip().splitlines()[-1])
    ok = line["cases"] == 5 * 4 * 2 and line["pg_cpu_ms_per_case"] > 0 and \
        line["wal_kb_per_case"] > 1 and line["cases_per_s"] > 0
    print(line)
    help_out = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "bench_floor.py"),
                               "--help"], capture_output=True, text=True, timeout=20)
    ok = ok and help_out.returncode == 0 and "KESU_FLOOR_BATCH" in help_out.stdout
    subprocess.run(["psql", os.environ.get("KESU_PG", ""), "-XAtqc",
                    "DROP DATABASE IF EXISTS kesu_floor WITH (FORCE)"], check=False)
    sys.exit(0 if ok else "FAIL: unexpected figures or --help")


if __name__ == "__main__":
    main()

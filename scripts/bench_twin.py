"""Two builds side by side at the same moment (docs/performance.md).

This host's speed moves by a third from one minute to the next, so two runs made one after
the other can differ more than two versions of the code do. This runs both versions at once:
two stacks (six services each, own topics, own fresh database kesu_twin_a / kesu_twin_b on
KESU_PG's server), a warm-up on each, then the same fixed rate on both concurrently with
`kesuctl load`, and prints one JSON line per build with its latencies. Each stack sees the
same host at the same time, and twice the load of one.

Run: python3 scripts/bench_twin.py A_BIN_DIR B_BIN_DIR   (e.g. a worktree's build-release/bin
and this tree's). Settings: KESU_TWIN_RATE (cases/s on each, 50), KESU_TWIN_SECONDS (90),
KESU_TWIN_WARMUP (500), KESU_TWIN_DISTRICTS (0; N: `kesuctl load --districts N`, which an older
build's kesuctl does not know — copy this tree's kesuctl into its bin).
"""
import json
import os
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kesu_client as kc  # noqa: E402

RATE = os.environ.get("KESU_TWIN_RATE", "50")
SECONDS = os.environ.get("KESU_TWIN_SECONDS", "90")
WARM = os.environ.get("KESU_TWIN_WARMUP", "500")
DISTRICTS = os.environ.get("KESU_TWIN_DISTRICTS", "0")
KEYS = ["intake_p50_ms", "intake_p99_ms", "assign_p50_ms", "assign_p99_ms", "ack_p99_ms",
        "failed"]


def server_conn(dbname):
    return " ".join(p for p in kc.PG.split() if not p.startswith("dbname=")) + \
        " dbname=" + dbname


def load(bindir, stack, tok, *args):
    cmd = [os.path.join(bindir, "kesuctl"), "load", "--api", stack.api.base, "--token", tok,
           "--connections", "64", "--channels", "web,app,phone,letter,walk_in",
           "--data_dir", kc.DATA] + list(args)
    if DISTRICTS != "0":  # as bench.py: the duplicate search runs (both kesuctl need --districts)
        cmd += ["--districts", DISTRICTS]
    env = dict(os.environ, KESU_KAFKA_BOOTSTRAP_SERVERS=kc.KAFKA,
               KESU_TOPICS_PREFIX=stack.prefix, KESU_PG=stack.env["KESU_PG"])
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise SystemExit("twin: kesuctl load gave no figures: %s" % out.stderr[-800:])


def main():
    if len(sys.argv) != 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(sys.argv) == 2 else 2
    builds = [("a", sys.argv[1], 18500, 9400), ("b", sys.argv[2], 18600, 9500)]
    base = server_conn("postgres")
    stacks = {}
    try:
        for name, bindir, port, ops in builds:
            db = server_conn("kesu_twin_" + name)
            print("twin: %s = %s, fresh database kesu_twin_%s" % (name, bindir, name),
                  file=sys.stderr)
            for sql in ("DROP DATABASE IF EXISTS kesu_twin_%s WITH (FORCE)" % name,
                        "CREATE DATABASE kesu_twin_%s" % name):
                subprocess.run(["psql", base, "-XAtqc", sql], check=True, capture_output=True)
            subprocess.run([os.path.join(bindir, "kesuctl"), "migrate", "--pg", db],
                           check=True, capture_output=True)
            kc.PG, kc.BIN = db, bindir
            os.environ.pop("KESU_TOPICS_PREFIX", None)  # each stack its own topics
            stack = kc.Stack(http_port=port, ops_base=ops, env={"KESU_PG": db})
            stacks[name] = (bindir, stack, None)
            stack.start()
            stacks[name] = (bindir, stack, kc.token("agent", label="twin"))
        for name, (bindir, stack, tok) in stacks.items():
            print("twin: warm-up of %s (%s cases)" % (name, WARM), file=sys.stderr)
            load(bindir, stack, tok, "--count", WARM)
        print("twin: %s cases/s on each for %s s, at once" % (RATE, SECONDS), file=sys.stderr)
        res = {}

        def run(name):
            bindir, stack, tok = stacks[name]
            res[name] = load(bindir, stack, tok, "--rate", RATE, "--duration", SECONDS)

        threads = [threading.Thread(target=run, args=(n,)) for n in stacks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for name, bindir, _, _ in builds:
            line = {"build": name, "bin": bindir, "rate": float(RATE)}
            line.update({k: res.get(name, {}).get(k) for k in KEYS})
            print(json.dumps(line))
    finally:
        for name, (bindir, stack, tok) in stacks.items():
            stack.stop()
            os.environ["KESU_TOPICS_PREFIX"] = stack.prefix  # what delete_topics reads
            kc.BIN = bindir
            stack.delete_topics()
    return 0


if __name__ == "__main__":
    sys.exit(main())

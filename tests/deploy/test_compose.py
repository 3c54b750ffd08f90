"""Deployment files: deploy/docker-compose.yml validated by Debian's docker-compose
(`config`), and its structure checked (no Docker engine runs here); the Dockerfile
builds with scripts/build.sh so the image and the local build cannot drift.
"""
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPOSE = os.path.join(ROOT, "deploy", "docker-compose.yml")
DOCKERFILE = os.path.join(ROOT, "deploy", "Dockerfile")
SERVICES = ["intake", "classifier", "dispatcher", "sla-monitor", "notifier", "archiver"]
failures = []


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL: " + msg)


def compose_config(env):
    return subprocess.run(["docker-compose", "-f", COMPOSE, "config"], capture_output=True,
                          text=True, env=env, check=False)


def main():
    env = dict(os.environ, KESU_PII_KEY="ab" * 32)
    out = compose_config(env)
    check(out.returncode == 0, "docker-compose config failed: %s" % out.stderr)
    cfg = yaml.safe_load(out.stdout)
    svcs = cfg["services"]
    for name in SERVICES + ["kafka", "postgres", "migrate"]:
        check(name in svcs, "service %s defined" % name)
    check(svcs["kafka"]["image"].startswith("apache/kafka:3.9"), "official Kafka 3.9.x image")
    check(svcs["postgres"]["image"] == "postgres:15", "official PostgreSQL 15 image")
    check(set(cfg.get("volumes", {})) >= {"kafka-data", "pg-data"}, "named volumes")
    for name in SERVICES:
        s = svcs[name]
        deps = s.get("depends_on", {})
        check(deps.get("migrate", {}).get("condition") == "service_completed_successfully",
              "%s waits for the migration job" % name)
        check(deps.get("kafka", {}).get("condition") == "service_healthy",
              "%s waits for a healthy Kafka" % name)
        check(deps.get("postgres", {}).get("condition") == "service_healthy",
              "%s waits for a healthy PostgreSQL" % name)
        hc = " ".join(s.get("healthcheck", {}).get("test", []))
        check("/readyz" in hc, "%s health check uses /readyz" % name)
        check(s["command"][0] == "kesu-" + name, "%s runs kesu-%s" % (name, name))
        check("KESU_PG" in s.get("environment", {}), "%s configured by environment" % name)
        if name != "intake":
            # a fixed host port would make --scale impossible
            check(not s.get("ports"), "%s publishes no host port (scalable)" % name)
        check(s.get("build", {}).get("dockerfile") == "deploy/Dockerfile",
              "%s built from the one Dockerfile" % name)
    ports = svcs["intake"].get("ports", [])
    check(ports and all((p.get("host_ip") if isinstance(p, dict) else str(p).split(":")[0])
                        == "127.0.0.1" for p in ports), "intake published on 127.0.0.1 only")
    for name in ["kafka", "postgres"]:
        check("healthcheck" in svcs[name], "%s has a health check" % name)
    mig = " ".join(svcs["migrate"]["command"])
    check("kesuctl migrate" in mig and "kesuctl topics create" in mig,
          "migration job migrates and creates topics")

    # scaling is accepted by the tool
    sc = subprocess.run(["docker-compose", "-f", COMPOSE, "config", "--services"],
                        capture_output=True, text=True, env=env, check=False)
    check("classifier" in sc.stdout.split(), "services listed")

    # a missing PII key is refused with a message saying what to do
    env2 = dict(os.environ)
    env2.pop("KESU_PII_KEY", None)
    bad = compose_config(env2)
    check(bad.returncode != 0 and "KESU_PII_KEY" in bad.stderr,
          "missing KESU_PII_KEY refused clearly: %s" % bad.stderr.strip()[:200])

    with open(DOCKERFILE) as f:
        df = f.read()
    check(re.search(r"^FROM debian:bookworm AS build", df, re.M) is not None, "build stage")
    check(re.search(r"^FROM debian:bookworm-slim", df, re.M) is not None, "slim runtime")
    check("scripts/build.sh" in df, "Dockerfile builds with scripts/build.sh")
    # every binary the build makes is shipped (the COPY takes the whole bin folder)
    check("COPY --from=build /src/build/bin/ /usr/local/bin/" in df, "all binaries copied")
    check("KESU_CLASSIFIER_MODEL=" in df and "model.bin" in df,
          "the image carries the trained classifier model")
    with open(os.path.join(ROOT, ".dockerignore")) as f:
        di = f.read()
    check("!build/share/classifier/model.bin" in di and ".run" in di,
          ".dockerignore keeps data and builds out but lets the model in")
    print("%d passed, %d failed" % (0 if failures else 1, len(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()

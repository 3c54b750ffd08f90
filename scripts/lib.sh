# shellcheck shell=bash
# Shared shell helpers for Kesu's scripts. Source it:  . "$(dirname "$0")/lib.sh"
# It sets no shell options of its own; callers use `set -euo pipefail`.

if [[ -z "${KESU_LIB_LOADED:-}" ]]; then
KESU_LIB_LOADED=1

# --- locations -------------------------------------------------------------
KESU_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
KESU_RUN="${KESU_RUN:-$KESU_ROOT/.run}"
KESU_BUILD_DIR="${KESU_BUILD_DIR:-$KESU_ROOT/build}"
KESU_CACHE="${KESU_CACHE:-${HOME:-/root}/.cache/kesu}"

# --- PostgreSQL --------------------------------------------------------------
KESU_PG_PORT="${KESU_PG_PORT:-55432}"
KESU_PG="${KESU_PG:-host=127.0.0.1 port=$KESU_PG_PORT dbname=kesu user=postgres}"
KESU_PG_BIN="${KESU_PG_BIN:-/usr/lib/postgresql/15/bin}"

# --- Kafka -------------------------------------------------------------------
KESU_BROKER_VERSION="3.9.1"
KESU_BROKER_PORT="${KESU_BROKER_PORT:-59092}"
KESU_BROKER_CONTROLLER_PORT="${KESU_BROKER_CONTROLLER_PORT:-59093}"
KESU_KAFKA="${KESU_KAFKA:-127.0.0.1:$KESU_BROKER_PORT}"
KESU_BROKER_LIBS="${KESU_BROKER_LIBS:-$KESU_CACHE/kafka-$KESU_BROKER_VERSION/libs}"
KESU_PARTITIONS="${KESU_PARTITIONS:-6}"
# Every topic of the pipeline (DESIGN.md); infra.sh creates them all.
# shellcheck disable=SC2034  # used by the scripts that source this file
KESU_TOPICS=(
  kesu.intake.v1
  kesu.classifier.v1
  kesu.dispatcher.v1
  kesu.sla.v1
  kesu.notifier.v1
  kesu.public.v1
  kesu.dlq.v1
)

# The six services: name, binary, ops port (scripts/up.sh starts them in this order).
# shellcheck disable=SC2034
KESU_SERVICES=(
  "intake kesu-intake 9101"
  "classifier kesu-classifier 9102"
  "dispatcher kesu-dispatcher 9103"
  "sla-monitor kesu-sla-monitor 9104"
  "notifier kesu-notifier 9105"
  "archiver kesu-archiver 9106"
)

# Java 17 (Debian's) even when another JDK is the default `java`.
if [[ -z "${KESU_JAVA:-}" ]]; then
  _kesu_j17="/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture 2>/dev/null || echo amd64)/bin/java"
  if [[ -x "$_kesu_j17" ]]; then KESU_JAVA="$_kesu_j17"; else KESU_JAVA="java"; fi
  unset _kesu_j17
fi

# --- Debian packages the build, the tests and the local infra need ----------
KESU_PACKAGES=(
  build-essential cmake pkg-config
  librdkafka-dev libprotobuf-c-dev protobuf-c-compiler libjansson-dev libevent-dev
  libpq-dev libcmocka-dev libssl-dev libcurl4-openssl-dev uuid-dev
  postgresql-15 postgresql-client-15
  openjdk-17-jre-headless maven
  curl jq python3 python3-yaml python3-protobuf
  kcat protobuf-compiler docker-compose wrk nodejs
  chromium chromium-driver fonts-wqy-microhei
  clang libclang-rt-14-dev
)

export KESU_ROOT KESU_RUN KESU_BUILD_DIR KESU_CACHE KESU_PG KESU_PG_PORT KESU_PG_BIN \
       KESU_KAFKA KESU_BROKER_PORT KESU_BROKER_CONTROLLER_PORT KESU_BROKER_LIBS \
       KESU_BROKER_VERSION KESU_PARTITIONS KESU_JAVA

# --- output ------------------------------------------------------------------
log_step() { printf '==> %s\n' "$*"; }
log_info() { printf '    %s\n' "$*"; }
log_warn() { printf 'warning: %s\n' "$*" >&2; }
die()      { printf 'error: %s\n' "$*" >&2; exit 1; }

# wait_http URL TIMEOUT_SECONDS: poll until URL answers HTTP 200; 1 on timeout.
wait_http() {
  local url="$1" timeout="${2:-30}" deadline code
  deadline=$(( $(date +%s) + timeout ))
  while :; do
    code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$url" 2>/dev/null || true)"
    [[ "$code" == 200 ]] && return 0
    if (( $(date +%s) >= deadline )); then
      printf 'error: %s did not answer 200 within %ss (last: %s)\n' "$url" "$timeout" "${code:-none}" >&2
      return 1
    fi
    sleep 0.2
  done
}

# wait_tcp HOST PORT TIMEOUT_SECONDS: poll until a TCP connect succeeds.
wait_tcp() {
  local host="$1" port="$2" timeout="${3:-30}" deadline
  deadline=$(( $(date +%s) + timeout ))
  until tcp_open "$host" "$port"; do
    (( $(date +%s) >= deadline )) && return 1
    sleep 0.2
  done
}

# tcp_open HOST PORT: 0 if something accepts connections there.
tcp_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# kesu_missing_packages: prints the packages of KESU_PACKAGES (or of the
# arguments) that are not installed.
kesu_missing_packages() {
  local p st
  (( $# )) || set -- "${KESU_PACKAGES[@]}"
  for p in "$@"; do
    st="$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)"
    [[ "$st" == ii* ]] || printf '%s\n' "$p"
  done
}

# kesu_install_packages [PKG...]: installs the missing ones (default: all of
# KESU_PACKAGES) quietly; apt-get update only when something is missing.
# shellcheck disable=SC2120  # arguments are optional
kesu_install_packages() {
  local missing log
  mapfile -t missing < <(kesu_missing_packages "$@")
  if (( ${#missing[@]} == 0 )); then
    log_step "Debian packages: all ${#KESU_PACKAGES[@]} present"
    return 0
  fi
  log_step "Debian packages: installing ${#missing[@]} missing: ${missing[*]}"
  (( EUID == 0 )) || die "installing packages needs root (missing: ${missing[*]})"
  mkdir -p "$KESU_CACHE"
  log="$KESU_CACHE/apt.log"
  : >"$log"
  # Debian's postgresql-common would create and start a "main" cluster on
  # port 5432; Kesu runs its own cluster in .run/pg, so ask it not to.
  if ! dpkg-query -W -f='${db:Status-Abbrev}' postgresql-common 2>/dev/null | grep -q '^ii'; then
    mkdir -p /etc/postgresql-common
    [[ -e /etc/postgresql-common/createcluster.conf ]] ||
      printf 'create_main_cluster = false\n' >/etc/postgresql-common/createcluster.conf
  fi
  mkdir -p /usr/share/man/man1   # openjdk's postinst needs it on slim images
  if ! { DEBIAN_FRONTEND=noninteractive apt-get update -q &&
         DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
           -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
           "${missing[@]}"; } >>"$log" 2>&1 </dev/null; then
    tail -n 30 "$log" >&2
    die "apt-get failed (full log: $log)"
  fi
  log_info "installed (log: $log)"
}

# kesu_kafka_tool CLASS ARGS...: runs a Kafka command-line tool from the jar
# cache, e.g. kesu_kafka_tool org.apache.kafka.tools.TopicCommand --list ...
kesu_kafka_tool() {
  local cls="$1"; shift
  local l4j="$KESU_RUN/kafka/tools-log4j.properties"
  [[ -f "$l4j" ]] || l4j="$(dirname "$KESU_BROKER_LIBS")/tools-log4j.properties"
  "$KESU_JAVA" -Xms32m -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xshare:auto \
    -Djava.awt.headless=true -Dlog4j.configuration="file:$l4j" \
    -cp "$KESU_BROKER_LIBS/*" "$cls" "$@"
}

# kesu_topics ARGS...: org.apache.kafka.tools.TopicCommand against KESU_KAFKA.
kesu_topics() {
  kesu_kafka_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$KESU_KAFKA" "$@"
}

# kesu_psql ARGS...: psql (PostgreSQL 15 client) against KESU_PG.
kesu_psql() {
  local psql="$KESU_PG_BIN/psql"
  [[ -x "$psql" ]] || psql=psql
  "$psql" "$KESU_PG" -X -v ON_ERROR_STOP=1 "$@"
}

fi

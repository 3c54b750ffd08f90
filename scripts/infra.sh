#!/usr/bin/env bash
# Local infrastructure for Kesu without Docker (DESIGN.md section 9):
# PostgreSQL 15 in .run/pg and a single-node Kafka (KRaft) broker in .run/kafka,
# both on 127.0.0.1 only.
#
#   scripts/infra.sh up             install what is missing, start both, topics, migrations
#   scripts/infra.sh down [--purge] stop both (--purge also deletes their data)
#   scripts/infra.sh status         exit 0 if both run, 3 otherwise
#   scripts/infra.sh kafka-up|kafka-down|pg-up|pg-down
#                                   one of the two alone; with KESU_RUN and the ports set
#                                   elsewhere this is a private instance (the fault tests
#                                   stop theirs, never the shared one)
#
# Environment: KESU_PG_PORT (55432), KESU_BROKER_PORT (59092),
# KESU_BROKER_CONTROLLER_PORT (59093), KESU_PARTITIONS (6), KESU_CACHE
# (~/.cache/kesu), KESU_BROKER_LIBS (jar folder), KESU_BUILD_DIR (build).
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

PG_LINK="$KESU_RUN/pg"
KAFKA_DIR="$KESU_RUN/kafka"
KAFKA_PID_FILE="$KAFKA_DIR/kafka.pid"
KAFKA_LOG="$KAFKA_DIR/kafka.log"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KESUCTL="$KESU_BUILD_DIR/bin/kesuctl"

# ---------------------------------------------------------------- PostgreSQL
# PostgreSQL refuses to run as root, so its files belong to the `postgres`
# user. If that user cannot reach .run (e.g. the clone sits under a 0700 home)
# or the socket path would be too long, the data lives in /var/lib/kesu and
# .run/pg is a symbolic link to it.
pg_home() {
  if [[ -L "$PG_LINK" ]]; then readlink -f "$PG_LINK"; else printf '%s\n' "$PG_LINK"; fi
}
PG_HOME="$(pg_home)"
PG_DATA="$PG_HOME/data"
PG_LOGFILE="$PG_HOME/server.log"

pg_as() { (cd / && runuser -u postgres -- "$@"); }

pg_running() {
  [[ -f "$PG_DATA/PG_VERSION" ]] || return 1
  id -u postgres >/dev/null 2>&1 || return 1
  pg_as "$KESU_PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1
}

pg_ready() { "$KESU_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$KESU_PG_PORT" -t 2; }

pg_pid() { head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null || true; }
pg_port() { sed -n 4p "$PG_DATA/postmaster.pid" 2>/dev/null || true; }

ensure_postgres_user() {
  id -u postgres >/dev/null 2>&1 && return 0
  log_info "creating system user postgres"
  useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
}

pg_place_home() {
  [[ -e "$PG_LINK" || -L "$PG_LINK" ]] && return 0
  mkdir -p "$KESU_RUN"
  mkdir -p "$PG_LINK"
  chown postgres:postgres "$PG_LINK"
  chmod 0700 "$PG_LINK"
  local sock="$PG_LINK/.s.PGSQL.$KESU_PG_PORT"
  if ! pg_as test -w "$PG_LINK" || (( ${#sock} > 100 )); then
    local alt
    alt="/var/lib/kesu/pg-$(printf '%s' "$KESU_ROOT" | cksum | cut -d' ' -f1)"
    log_info "postgres cannot use $PG_LINK directly; data goes to $alt (linked)"
    rmdir "$PG_LINK"
    mkdir -p "$alt"
    chown postgres:postgres "$alt"
    chmod 0700 "$alt"
    ln -s "$alt" "$PG_LINK"
  fi
  PG_HOME="$(pg_home)"; PG_DATA="$PG_HOME/data"; PG_LOGFILE="$PG_HOME/server.log"
}

pg_write_config() {
  # Rewritten on every start so a changed port or setting takes effect.
  cat >"$PG_DATA/kesu.conf" <<EOF
# Written by scripts/infra.sh on every start; edits here are overwritten.
listen_addresses = '127.0.0.1'
port = $KESU_PG_PORT
unix_socket_directories = '$PG_HOME'
max_connections = 200
shared_buffers = 256MB
effective_cache_size = 1GB
work_mem = 8MB
maintenance_work_mem = 128MB
max_wal_size = 1GB
checkpoint_timeout = 5min
fsync = on
synchronous_commit = on
full_page_writes = on
max_worker_processes = 4
max_parallel_workers = 2
max_parallel_workers_per_gather = 1
timezone = 'UTC'
log_timezone = 'UTC'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d %a '
log_min_duration_statement = 1000
log_lock_waits = on
# Stages' batches can deadlock on case rows; find it in 100 ms, not 1 s (decision 0019).
deadlock_timeout = 100ms
log_autovacuum_min_duration = 1000
# Vacuum and analyze often: queue tables (outbox) and a fresh database's statistics.
autovacuum_naptime = 10s
# Statement statistics for docs/performance.md (cheap; query: pg_stat_statements view).
shared_preload_libraries = 'pg_stat_statements'
pg_stat_statements.track = all
EOF
  cat >"$PG_DATA/pg_hba.conf" <<'EOF'
# Written by scripts/infra.sh. Local development cluster: trust, loopback only.
# TYPE  DATABASE  USER  ADDRESS        METHOD
local   all       all                  trust
host    all       all   127.0.0.1/32   trust
EOF
  grep -q "^include_if_exists = 'kesu.conf'" "$PG_DATA/postgresql.conf" ||
    printf "\ninclude_if_exists = 'kesu.conf'\n" >>"$PG_DATA/postgresql.conf"
  chown postgres:postgres "$PG_DATA/kesu.conf" "$PG_DATA/pg_hba.conf" "$PG_DATA/postgresql.conf"
}

pg_up() {
  log_step "PostgreSQL 15 on 127.0.0.1:$KESU_PG_PORT (data: $PG_DATA)"
  [[ -x "$KESU_PG_BIN/initdb" ]] || die "no $KESU_PG_BIN/initdb (is postgresql-15 installed?)"
  ensure_postgres_user
  if pg_running; then
    local i
    [[ "$(pg_port)" == "$KESU_PG_PORT" ]] ||
      die "PostgreSQL in $PG_DATA runs on port $(pg_port), not $KESU_PG_PORT; run 'infra.sh down' first"
    for ((i = 0; i < 150; i++)); do pg_ready && break; sleep 0.2; done
    pg_ready || die "PostgreSQL in $PG_DATA runs (pid $(pg_pid)) but does not answer on port $KESU_PG_PORT; see $PG_LOGFILE"
    log_info "already running (pid $(pg_pid))"
  else
    if tcp_open 127.0.0.1 "$KESU_PG_PORT"; then
      die "port $KESU_PG_PORT is taken by another process (not the cluster in $PG_DATA); stop it or set KESU_PG_PORT"
    fi
    pg_place_home
    if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
      log_info "initdb (superuser postgres, trust on 127.0.0.1)"
      rm -rf "$PG_DATA"
      if ! pg_as "$KESU_PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale=C.UTF-8 \
             --auth-local=trust --auth-host=trust >"$PG_HOME/initdb.log" 2>&1; then
        cat "$PG_HOME/initdb.log" >&2
        die "initdb failed"
      fi
    fi
    pg_write_config
    log_info "starting (log: $PG_LOGFILE)"
    local try from
    # up to ~75 s: a closed connection keeps its port in TIME_WAIT for 60 s
    for try in $(seq 1 38); do
      from=0
      [[ -f "$PG_LOGFILE" ]] && from="$(stat -c %s "$PG_LOGFILE")"
      pg_as "$KESU_PG_BIN/pg_ctl" start -D "$PG_DATA" -l "$PG_LOGFILE" -w -t 60 >/dev/null && break
      # the port is inside the kernel's ephemeral range: an outgoing connection
      # of any program can hold it (and, once closed, keep it in TIME_WAIT for
      # up to 60 s); that passes
      if (( try < 38 )) && tail -c +"$((from + 1))" "$PG_LOGFILE" 2>/dev/null |
           grep -q 'Address already in use'; then
        (( try == 1 )) &&
          log_info "port $KESU_PG_PORT is held by another (outgoing) socket; trying again every 2 s"
        sleep 2
        continue
      fi
      tail -n 20 "$PG_LOGFILE" >&2 || true
      die "PostgreSQL did not start; see $PG_LOGFILE"
    done
    pg_ready || die "PostgreSQL started but does not answer on 127.0.0.1:$KESU_PG_PORT; see $PG_LOGFILE"
    log_info "started (pid $(pg_pid))"
  fi
  local psql="$KESU_PG_BIN/psql" admin="host=127.0.0.1 port=$KESU_PG_PORT dbname=postgres user=postgres"
  if [[ "$("$psql" "$admin" -XtAc "select 1 from pg_database where datname = 'kesu'")" != 1 ]]; then
    "$psql" "$admin" -Xq -v ON_ERROR_STOP=1 -c "create database kesu owner postgres" ||
      die "could not create database kesu"
    log_info "created database kesu"
  fi
}

pg_down() {
  if pg_running; then
    log_step "stopping PostgreSQL (pid $(pg_pid))"
    pg_as "$KESU_PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w -t 60 >/dev/null ||
      pg_as "$KESU_PG_BIN/pg_ctl" stop -D "$PG_DATA" -m immediate -w -t 30 >/dev/null ||
      die "could not stop PostgreSQL in $PG_DATA"
  else
    log_step "PostgreSQL not running"
  fi
}

# ---------------------------------------------------------------------- Kafka
kafka_pid() {
  local pid
  pid="$(cat "$KAFKA_PID_FILE" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  # Only our broker: the PID must still be a kafka.Kafka run from this tree.
  local cmdline
  cmdline="$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" || return 1
  [[ "$cmdline" == *" -Dkesu.root=$KESU_ROOT "*" kafka.Kafka "* ]] || return 1
  printf '%s\n' "$pid"
}

kafka_jars() {
  local marker="$KESU_BROKER_LIBS/.kesu-complete"
  mkdir -p "$(dirname "$KESU_BROKER_LIBS")"
  [[ -f "$(dirname "$KESU_BROKER_LIBS")/tools-log4j.properties" ]] ||
    write_tools_log4j "$(dirname "$KESU_BROKER_LIBS")/tools-log4j.properties"
  if [[ -f "$marker" ]]; then
    log_step "Kafka $KESU_BROKER_VERSION jars: cached in $KESU_BROKER_LIBS"
    return 0
  fi
  log_step "Kafka $KESU_BROKER_VERSION jars: fetching with Maven into $KESU_BROKER_LIBS (once)"
  command -v mvn >/dev/null || die "mvn not found (install maven)"
  local tmp="$KESU_BROKER_LIBS.tmp.$$" mlog="$KESU_CACHE/mvn-kafka.log"
  mkdir -p "$KESU_CACHE" "$(dirname "$KESU_BROKER_LIBS")"
  rm -rf "$tmp"
  local cmd=(mvn -q -B -f "$KESU_ROOT/deploy/kafka/pom.xml" dependency:copy-dependencies
             "-DoutputDirectory=$tmp" -DincludeScope=runtime)
  log_info "${cmd[*]}"
  if ! "${cmd[@]}" >"$mlog" 2>&1 </dev/null; then
    tail -n 30 "$mlog" >&2
    rm -rf "$tmp"
    die "Maven could not fetch the Kafka jars (log: $mlog)"
  fi
  ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "Maven ran but no kafka_2.13 jar in $tmp"
  rm -rf "$KESU_BROKER_LIBS"
  mv "$tmp" "$KESU_BROKER_LIBS"
  date -u +%FT%TZ >"$marker"
  log_info "$(find "$KESU_BROKER_LIBS" -name '*.jar' | wc -l) jars"
}

kafka_write_config() {
  mkdir -p "$KAFKA_DIR/data"
  cat >"$KAFKA_PROPS" <<EOF
# Written by scripts/infra.sh on every start; edits here are overwritten.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KESU_BROKER_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KESU_BROKER_PORT,CONTROLLER://127.0.0.1:$KESU_BROKER_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KESU_BROKER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$KAFKA_DIR/data/logs
metadata.log.dir=$KAFKA_DIR/data/metadata
num.partitions=6
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=12
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.hours=168
log.segment.bytes=268435456
log.retention.check.interval.ms=300000
EOF
  cat >"$KAFKA_DIR/log4j.properties" <<EOF
# Written by scripts/infra.sh.
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$KAFKA_LOG
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.controller=INFO
log4j.logger.org.apache.kafka.clients=WARN
log4j.logger.org.apache.kafka.common.utils.AppInfoParser=WARN
EOF
  write_tools_log4j "$KAFKA_DIR/tools-log4j.properties"
}

# Kafka's command-line tools (TopicCommand, StorageTool) log warnings to stderr.
write_tools_log4j() {
  cat >"$1" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
}

kafka_format() {
  [[ -f "$KAFKA_DIR/data/metadata/meta.properties" ]] && return 0
  local id
  if [[ -s "$KAFKA_DIR/cluster.id" ]]; then
    id="$(cat "$KAFKA_DIR/cluster.id")"
  else
    id="$(kesu_kafka_tool kafka.tools.StorageTool random-uuid)" || die "StorageTool random-uuid failed"
    printf '%s\n' "$id" >"$KAFKA_DIR/cluster.id"
  fi
  log_info "formatting storage (cluster id $id)"
  local out
  if ! out="$(kesu_kafka_tool kafka.tools.StorageTool format -t "$id" -c "$KAFKA_PROPS" --ignore-formatted 2>&1)"; then
    printf '%s\n' "$out" >&2
    die "kafka.tools.StorageTool format failed"
  fi
}

kafka_up() {
  log_step "Kafka $KESU_BROKER_VERSION (KRaft) on $KESU_KAFKA, controller 127.0.0.1:$KESU_BROKER_CONTROLLER_PORT"
  local pid
  if pid="$(kafka_pid)"; then
    wait_tcp 127.0.0.1 "$KESU_BROKER_PORT" 60 ||
      die "Kafka runs (pid $pid) but port $KESU_BROKER_PORT does not accept connections; see $KAFKA_LOG"
    log_info "already running (pid $pid)"
    return 0
  fi
  # a stale pid file goes; one whose process still lives (another tree's broker
  # sharing this .run through KESU_RUN) stays, and the port check below says so
  local old
  old="$(cat "$KAFKA_PID_FILE" 2>/dev/null || true)"
  [[ "$old" =~ ^[0-9]+$ ]] && kill -0 "$old" 2>/dev/null || rm -f "$KAFKA_PID_FILE"
  local port
  for port in "$KESU_BROKER_PORT" "$KESU_BROKER_CONTROLLER_PORT"; do
    tcp_open 127.0.0.1 "$port" &&
      die "port $port is taken by another process (not the broker of $KAFKA_DIR); stop it or set KESU_BROKER_PORT/KESU_BROKER_CONTROLLER_PORT"
  done
  command -v "$KESU_JAVA" >/dev/null || die "java not found (install openjdk-17-jre-headless)"
  kafka_write_config
  kafka_format

  local cmd=("$KESU_JAVA" -Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20
             -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true
             "-Dkesu.root=$KESU_ROOT"
             "-Dlog4j.configuration=file:$KAFKA_DIR/log4j.properties"
             "-Dkafka.logs.dir=$KAFKA_DIR"
             -cp "$KESU_BROKER_LIBS/*" kafka.Kafka "$KAFKA_PROPS")
  local from=0 try deadline ready=""
  log_info "starting (log: $KAFKA_LOG)"
  local out_from
  for try in $(seq 1 38); do # up to ~75 s, as for PostgreSQL
    from=0 out_from=0
    [[ -f "$KAFKA_LOG" ]] && from="$(stat -c %s "$KAFKA_LOG")"
    [[ -f "$KAFKA_DIR/kafka.out" ]] && out_from="$(stat -c %s "$KAFKA_DIR/kafka.out")"
    # setsid: own session, so the broker outlives this shell and its terminal.
    (cd "$KAFKA_DIR" && exec setsid nohup "${cmd[@]}" >>"$KAFKA_DIR/kafka.out" 2>&1 </dev/null) &
    pid=$!
    printf '%s\n' "$pid" >"$KAFKA_PID_FILE"

    deadline=$(( $(date +%s) + 60 ))
    while (( $(date +%s) < deadline )); do
      if ! kill -0 "$pid" 2>/dev/null; then break; fi
      if tcp_open 127.0.0.1 "$KESU_BROKER_PORT" &&
         tail -c +"$((from + 1))" "$KAFKA_LOG" 2>/dev/null | grep -q 'Kafka Server started'; then
        ready=1; break
      fi
      sleep 0.3
    done
    [[ -n "$ready" ]] && break
    # as for PostgreSQL: a port in the ephemeral range may be held for a moment
    if (( try < 38 )) && ! kill -0 "$pid" 2>/dev/null &&
       { tail -c +"$((from + 1))" "$KAFKA_LOG"; tail -c +"$((out_from + 1))" "$KAFKA_DIR/kafka.out"; } \
         2>/dev/null | grep -q 'Address already in use'; then
      (( try == 1 )) && log_info "a broker port is held by another (outgoing) socket; trying again every 2 s"
      sleep 2
      continue
    fi
    break
  done
  if [[ -z "$ready" ]]; then
    {
      echo "--- last lines of $KAFKA_LOG:"; tail -n 25 "$KAFKA_LOG" 2>/dev/null || true
      echo "--- $KAFKA_DIR/kafka.out:"; tail -n 10 "$KAFKA_DIR/kafka.out" 2>/dev/null || true
      echo "--- command: (cd $(printf %q "$KAFKA_DIR") && $(printf "%q " "${cmd[@]}"))"
    } >&2
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      die "Kafka did not get ready within 60 s; stopped it (pid $pid); see $KAFKA_LOG"
    fi
    rm -f "$KAFKA_PID_FILE"
    die "Kafka exited during start-up; see $KAFKA_LOG"
  fi
  log_info "started (pid $pid)"
}

kafka_down() {
  local pid
  if ! pid="$(kafka_pid)"; then
    rm -f "$KAFKA_PID_FILE"
    log_step "Kafka not running"
    return 0
  fi
  log_step "stopping Kafka (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log_warn "Kafka (pid $pid) still running after 30 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$KAFKA_PID_FILE"
}

# --------------------------------------------------------------------- topics
topics_up() {
  log_step "topics (${#KESU_TOPICS[@]}, $KESU_PARTITIONS partitions each, replication 1)"
  if [[ -x "$KESUCTL" ]] &&
     "$KESUCTL" topics create --kafka.bootstrap.servers "$KESU_KAFKA" --partitions "$KESU_PARTITIONS" </dev/null; then
    log_info "ensured with $KESUCTL"
    return 0
  fi
  [[ -x "$KESUCTL" ]] && log_info "kesuctl topics create failed or unsupported; falling back to TopicCommand"
  local existing missing=() t
  existing="$(kesu_topics --list 2>&1)" || { printf '%s\n' "$existing" >&2; die "TopicCommand --list failed against $KESU_KAFKA"; }
  for t in "${KESU_TOPICS[@]}"; do
    grep -qxF "$t" <<<"$existing" || missing+=("$t")
  done
  if (( ${#missing[@]} == 0 )); then
    log_info "all present"
    return 0
  fi
  log_info "creating: ${missing[*]}"
  local pids=() outs=() i rc=0
  for t in "${missing[@]}"; do
    outs+=("$KAFKA_DIR/topic-$t.out")
    kesu_topics --create --if-not-exists --topic "$t" --partitions "$KESU_PARTITIONS" \
      --replication-factor 1 >"$KAFKA_DIR/topic-$t.out" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
      rc=1; cat "${outs[$i]}" >&2
    fi
    rm -f "${outs[$i]}"
  done
  (( rc == 0 )) || die "creating topics failed"
}

# ----------------------------------------------------------------- migrations
migrations_up() {
  if [[ -x "$KESUCTL" ]]; then
    log_step "migrations: $KESUCTL migrate"
    "$KESUCTL" migrate --pg "$KESU_PG" </dev/null || die "kesuctl migrate failed"
  else
    log_step "migrations: $KESUCTL not built yet; they are applied once it is (scripts/up.sh builds first)"
  fi
}

# ------------------------------------------------------------------ commands
cmd_up() {
  local t0=$SECONDS
  kesu_install_packages
  kafka_jars
  pg_up
  kafka_up
  topics_up
  migrations_up
  log_step "infra up in $((SECONDS - t0)) s"
  log_info "PostgreSQL: $KESU_PG"
  log_info "Kafka:      $KESU_KAFKA"
}

cmd_down() {
  local purge=""
  case "${1:-}" in
    "") ;;
    --purge) purge=1 ;;
    *) die "usage: infra.sh down [--purge]" ;;
  esac
  kafka_down
  pg_down
  if [[ -n "$purge" ]]; then
    log_step "purging $KAFKA_DIR and $PG_LINK"
    rm -rf "$KAFKA_DIR"
    if [[ -L "$PG_LINK" ]]; then rm -rf "$PG_HOME"; rm -f "$PG_LINK"; else rm -rf "$PG_LINK"; fi
  fi
}

cmd_status() {
  local ok=0 pid
  if pg_running; then
    if [[ "$(pg_port)" != "$KESU_PG_PORT" ]]; then
      echo "PostgreSQL: running on port $(pg_port), not $KESU_PG_PORT (pid $(pg_pid))"; ok=3
    elif pg_ready; then
      echo "PostgreSQL: running (pid $(pg_pid), 127.0.0.1:$KESU_PG_PORT, data $PG_DATA)"
    else
      echo "PostgreSQL: started but not answering (pid $(pg_pid), 127.0.0.1:$KESU_PG_PORT)"; ok=3
    fi
  else
    echo "PostgreSQL: stopped (127.0.0.1:$KESU_PG_PORT)"; ok=3
  fi
  if pid="$(kafka_pid)"; then
    if tcp_open 127.0.0.1 "$KESU_BROKER_PORT"; then
      echo "Kafka:      running (pid $pid, $KESU_KAFKA)"
    else
      echo "Kafka:      started but not listening (pid $pid, $KESU_KAFKA)"; ok=3
    fi
  else
    echo "Kafka:      stopped ($KESU_KAFKA)"; ok=3
  fi
  return "$ok"
}

case "${1:-}" in
  up)     shift; cmd_up "$@" ;;
  down)   shift; cmd_down "$@" ;;
  status) shift; cmd_status ;;
  kafka-up)   kafka_jars; kafka_up ;;
  kafka-down) kafka_down ;;
  pg-up)      ensure_postgres_user; pg_up ;;
  pg-down)    pg_down ;;
  *)      echo "usage: $(basename "$0") up | down [--purge] | status | kafka-up | kafka-down | pg-up | pg-down" >&2; exit 2 ;;
esac

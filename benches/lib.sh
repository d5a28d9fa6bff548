# Shared by the benchmarks that talk to a registry (sourced, not run):
# a Docker registry 2.8 (distribution) on 127.0.0.1, started and stopped
# by its PID, its access log, and the timing helpers.
#
#   source benches/lib.sh
#   need docker-registry curl python3       # stops with a message if one is missing
#   need_crane; release_nixoci              # sets CRANE, and NIXOCI unless given
#   bench_workdir push                      # $WORK, removed (and the registry stopped) at exit
#   registry_start                          # empty storage; sets REG (127.0.0.1:PORT) and REG_PID
#   registry_writes 'bench/x' FROM_LINE     # PUT/POST/PATCH/DELETE requests on bench/x since line FROM_LINE
#   registry_stop

# Stop with a message when a tool is missing.
need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "needs $tool: run bash .ci/install-deps" >&2; exit 1; }
  done
}

# $NIXOCI: the binary to measure; unless given, this tree's release
# build, built now.
release_nixoci() {
  if [ -z "${NIXOCI:-}" ]; then
    cargo build --release --quiet
    NIXOCI=${CARGO_TARGET_DIR:-$PWD/target}/release/nixoci
  fi
}

# $CRANE: crane (default .tools/bin/crane, from .ci/install-deps), or stop
# with a message.
need_crane() {
  CRANE=${CRANE:-$PWD/.tools/bin/crane}
  [ -x "$CRANE" ] || { echo "needs crane at $CRANE: run bash .ci/install-deps" >&2; exit 1; }
}

REG_PID=
WORK=
# A new scratch directory as $WORK; at exit the registry is stopped and the
# directory removed.
bench_workdir() { # NAME
  WORK=$(mktemp -d "/tmp/nixoci-bench-$1.XXXXXX")
  trap bench_cleanup EXIT
}
bench_cleanup() {
  registry_stop
  [ -n "$WORK" ] && rm -rf "$WORK"
}

# A registry with empty storage under $WORK/data, on a free port of
# 127.0.0.1: REG=127.0.0.1:PORT. Its access log (one line per request, in
# the combined log format) goes to $WORK/reg.log, from the start. A
# registry already started by this script is stopped first.
registry_start() {
  registry_stop
  rm -rf "$WORK/data"
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  REG=127.0.0.1:$port
  cat >"$WORK/reg.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: $WORK/data}}
http: {addr: $REG}
YML
  docker-registry serve "$WORK/reg.yml" >"$WORK/reg.log" 2>&1 &
  REG_PID=$!
  local tries=0
  until curl -sf "http://$REG/v2/" >/dev/null; do
    kill -0 "$REG_PID" 2>/dev/null || { echo "the registry did not start:" >&2; cat "$WORK/reg.log" >&2; exit 1; }
    tries=$((tries + 1))
    [ "$tries" -lt 200 ] || { echo "the registry did not answer on $REG in 10 s" >&2; exit 1; }
    sleep 0.05
  done
}

# Stop the registry this script started (by its PID), if any.
registry_stop() {
  if [ -n "$REG_PID" ]; then
    kill "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
    REG_PID=
  fi
}

# The number of lines of the access log so far, after a pause: the
# registry writes a request's line once it has answered it.
registry_log_mark() {
  sleep 0.3
  wc -l <"$WORK/reg.log"
}

# Write requests (PUT, POST, PATCH, DELETE) on repository REPO in the
# access log after line FROM.
registry_writes() { # REPO FROM
  sleep 0.3
  tail -n "+$(($2 + 1))" "$WORK/reg.log" | grep -cE "\"(PUT|POST|PATCH|DELETE) /v2/$1/" || true
}

# All requests on repository REPO (and the /v2/ ping) after line FROM.
registry_requests() { # REPO FROM
  sleep 0.3
  tail -n "+$(($2 + 1))" "$WORK/reg.log" | grep -cE "\"[A-Z]+ /v2/($1/|\s)" || true
}

now() { date +%s.%N; }

# Run "$@" (output discarded; a failure stops the bench): its wall-clock
# seconds, then a space, then its peak resident memory in MB (GNU time's
# %M, the largest resident set of the command, in KiB).
timed() {
  local t0 t1 kib
  t0=$(now)
  /usr/bin/time -f %M -o "$WORK/mem" "$@" >/dev/null 2>"$WORK/err" || {
    echo "failed: $*" >&2
    cat "$WORK/err" >&2
    exit 1
  }
  t1=$(now)
  kib=$(tail -n 1 "$WORK/mem")
  python3 -c "print(f'{$t1-$t0:.3f} {$kib/1024:.0f}')"
}

median() { python3 -c 'import statistics,sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.3f}")' "$@"; }

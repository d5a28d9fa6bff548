#!/usr/bin/env bash
# Layering benchmark: how much an update re-pushes, and how long the
# rebuild and push take, for each way of splitting a closure into layers,
# with Nix 2.8 (offline) and a local registry, in one invocation.
#
#   bash benches/layering.sh            # a 300-path closure of ~500 MB
#   bash benches/layering.sh --small    # the same graph at ~50 MB
#   bash benches/layering.sh --size-mb N --runs N
#   bash benches/layering.sh --max-layers 12   # the budget of popularity and stable
#   bash benches/layering.sh --nixoci FILE     # another build (a baseline), not this tree's
#
# The closure (benches/layering.nix) is synthetic and deterministic: 299
# libraries in a DAG and an app, built with busybox. The strategies:
#   one         the closure in one layer (ociLayerTar: what ociImage does
#               without maxLayers)
#   popularity  ociLayers { maxLayers = 100; strategy = "popularity"; }
#   stable      ociLayers { maxLayers = 100; } (the default strategy)
#               (100, or what --max-layers gives)
#   ideal       a layer per store path, no limit. ociLayers refuses more
#               than 127 layers, so this one is built outside Nix by the
#               same step (`nixoci layers` from plans with a layer per
#               path, 127 at most each, then `nixoci build`): a real image
#               of 300 layers,
#               which the registry stores (a runtime would refuse it).
# For each: the layer count and the build time of the image (its closure
# built beforehand; wall time of `nix-build`), then for each scenario
#   (a) app  a new version of the top-level app only
#   (b) lib  a new version of one mid-level library (its dependants change
#            with it)
#   (c) dep  the app gains one (new, small) dependency
# the layer blobs of B that A lacks, the bytes a push of B over A sends
# (`nixoci diff A B --json`, checked against the registry's access log of
# the real `nixoci push`: each uploaded blob's size and the manifest), and
# the wall time of the rebuild (`nix-build` of B's image, its closure built
# beforehand) plus `nixoci push` of B into the repository holding A.
# Then, beyond those three: for every store path of the closure, the update
# where it and its dependants get new hashes, planned by each strategy; the
# bytes it would push over the ideal's, from each path's compressed size
# (mean, median, 90th percentile, worst).
# Last, outside Nix and at the same thread count: writing all layers of
# each plan (`nixoci layers`) over writing the closure as one layer
# (`nixoci layer`), median of RUNS runs after one untimed run.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=500
RUNS=3
MAX_LAYERS=100
NIXOCI=
while [ $# -gt 0 ]; do
  case "$1" in
    --small) SIZE_MB=50 ;;
    --size-mb) SIZE_MB=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --max-layers) MAX_LAYERS=$2; shift ;;
    --nixoci) NIXOCI=$(realpath "$2"); shift ;;
    *) echo "usage: bash benches/layering.sh [--small] [--size-mb N] [--runs N] [--max-layers N] [--nixoci FILE]" >&2; exit 2 ;;
  esac
  shift
done
for tool in nix-build nix nix-store docker-registry curl python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool: run bash .ci/install-deps" >&2; exit 1; }
done
[ -x /bin/busybox ] || { echo "needs busybox-static: run bash .ci/install-deps" >&2; exit 1; }
if [ -z "$NIXOCI" ]; then
  cargo build --release --quiet
  NIXOCI=${CARGO_TARGET_DIR:-$PWD/target}/release/nixoci
fi
[ -x "$NIXOCI" ] || { echo "no nixoci binary at $NIXOCI" >&2; exit 1; }
HELPER=$PWD/benches/layering.py
export NIX_CONFIG=$'experimental-features = nix-command flakes
substituters =
sandbox = true
build-users-group =
extra-sandbox-paths = /lib64 /lib/x86_64-linux-gnu=/usr/lib/x86_64-linux-gnu
flake-registry = /dev/null'
W=$(mktemp -d /tmp/nixoci-bench-layering.XXXXXX)
REG_PID=
cleanup() {
  if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; wait "$REG_PID" 2>/dev/null || true; fi
  rm -rf "$W"
}
trap cleanup EXIT
mkdir "$W/bb"
cp /bin/busybox "$W/bb/busybox"
# A fresh name for this run's image derivations: every image is built here,
# none comes from an earlier run (the closure itself is built once, ever).
SALT=-$(date +%s)-$$
NPROC=$(nproc)
RES=$W/results
: > "$RES"
put() { echo "$*" >> "$RES"; }

now() { date +%s.%N; }
nixb() { # VARIANT ATTR [extra args] -> the store path built
  nix-build benches/layering.nix --arg tool "$NIXOCI" --arg busybox "$W/bb" \
    --argstr variant "$1" --arg sizeMB "$SIZE_MB" --arg maxLayers "$MAX_LAYERS" --argstr salt "$SALT" -A "$2" \
    --no-out-link -j "$NPROC" "${@:3}" 2>"$W/nix.log" || { cat "$W/nix.log" >&2; exit 1; }
}

nix-store --init
echo "building the closures (once; not timed)..." >&2
declare -A APP
for v in base app lib dep; do
  APP[$v]=$(nixb "$v" app)
  nix path-info --json --recursive "${APP[$v]}" > "$W/graph-$v.json"
done
python3 "$HELPER" closure "$W" >> "$RES"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$W/reg.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: false}}
storage: {filesystem: {rootdirectory: $W/data}}
http: {addr: 127.0.0.1:$PORT}
YML
docker-registry serve "$W/reg.yml" >"$W/reg.log" 2>&1 &
REG_PID=$!
until curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null; do sleep 0.05; done

# push LAYOUT REPO:TAG CACHE: nixoci push, with its own cache of where
# blobs are (so that it mounts nothing from another repository).
push() { XDG_CACHE_HOME="$3" "$NIXOCI" push "$1:latest" "127.0.0.1:$PORT/$2" -q; }

# The ideal, outside Nix: a layer per store path of variant V's closure.
# A plan holds at most 127 layers, so the plan is cut in parts of at most
# 127 paths, a `nixoci layers` step each, and the image takes them all.
ideal_layers() { # V DIR: the parts' layers, in DIR/0, DIR/1, ...
  rm -rf "$W/ideal-plan-$1-"* "$W/ideal-spec-$1-"*
  python3 "$HELPER" ideal-plan "$W/graph-$1.json" "$W/ideal-plan-$1"
  local i=0
  while [ -f "$W/ideal-plan-$1-$i.json" ]; do
    printf '{"plan":"%s"}' "$W/ideal-plan-$1-$i.json" > "$W/ideal-spec-$1-$i.json"
    i=$((i + 1))
  done
  write_ideal "$1" "$2"
}
write_ideal() { # V DIR: the layers of the parts planned by ideal_layers
  rm -rf "$2"
  mkdir -p "$2"
  local i=0
  while [ -f "$W/ideal-spec-$1-$i.json" ]; do
    "$NIXOCI" layers "$W/ideal-spec-$1-$i.json" -o "$2/$i" -q
    i=$((i + 1))
  done
}
ideal() { # V OUT
  ideal_layers "$1" "$W/ideal-layers-$1"
  rm -rf "$2"
  local dirs
  dirs=$(cd "$W/ideal-layers-$1" && ls | sort -n | sed "s|^|\"$W/ideal-layers-$1/|; s|\$|\"|" | paste -sd,)
  printf '{"layers":[%s],"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/true"]}}' "$dirs" > "$W/ideal-image-$1.json"
  "$NIXOCI" build "$W/ideal-image-$1.json" -o "$2" -q
}
build_image() { # STRATEGY VARIANT -> prints the layout path
  if [ "$1" = ideal ]; then
    ideal "$2" "$W/ideal-$2"
    echo "$W/ideal-$2"
  else
    nixb "$2" "$1"
  fi
}

for s in one popularity stable ideal; do
  echo "strategy $s..." >&2
  t0=$(now)
  A=$(build_image "$s" base)
  t1=$(now)
  put "$s build $(python3 -c "print($t1 - $t0)") layers $(python3 "$HELPER" layers "$A")"
  for v in app lib dep; do
    repo=bench/$s-$v
    cache=$W/cache-$s-$v
    push "$A" "$repo:a" "$cache"
    start=$(wc -l < "$W/reg.log")
    t0=$(now)
    B=$(build_image "$s" "$v")
    push "$B" "$repo:b" "$cache"
    t1=$(now)
    tail -n +"$((start + 1))" "$W/reg.log" > "$W/log-$s-$v"
    "$NIXOCI" diff "$A" "$B" --json > "$W/diff-$s-$v.json"
    put "$s $v time $(python3 -c "print($t1 - $t0)") $(python3 "$HELPER" pushed "$W/diff-$s-$v.json" "$W/log-$s-$v" "$B")"
  done
  [ "$s" = ideal ] || rm -rf "$W/ideal-"*
done

# Beyond the three scenarios: every single-path update of the base closure
# (the path and its dependants get new hashes), planned by both strategies.
echo "every single-path update, planned..." >&2
python3 "$HELPER" sweep "$NIXOCI" "$W/graph-base.json" "$W/ideal-layers-base" "$W" "$MAX_LAYERS" >> "$RES"

# Writing all layers against writing the closure as one layer, outside
# Nix, same thread count (the default: every core), same base closure.
echo "layers against one layer, outside Nix..." >&2
median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }
measure() { # OUT_DIR COMMAND... -> median seconds over RUNS runs after one untimed run
  local out=$1 ts=(); shift
  rm -rf "$out"; "$@" >/dev/null
  for _ in $(seq "$RUNS"); do
    rm -rf "$out"; sync
    local t0; t0=$(now); "$@" >/dev/null; ts+=("$(python3 -c "print($(now) - $t0)")")
  done
  rm -rf "$out"
  median "${ts[@]}"
}
python3 "$HELPER" one-spec "$W/graph-base.json" > "$W/one.json"
put "cli one $(measure "$W/o" "$NIXOCI" layer "$W/one.json" -o "$W/o" -q)"
for s in popularity stable; do
  printf '{"graph":{"file":"%s"},"maxLayers":%s,"strategy":"%s"}' "$W/graph-base.json" "$MAX_LAYERS" "$s" > "$W/$s.json"
  put "cli $s $(measure "$W/o" "$NIXOCI" layers "$W/$s.json" -o "$W/o" -q)"
done
ideal_layers base "$W/o"
put "cli ideal $(measure "$W/o" write_ideal base "$W/o")"

python3 "$HELPER" table "$RES" "$NPROC" "$RUNS" "$MAX_LAYERS"

#!/usr/bin/env bash
# Push benchmark: nixoci push against skopeo copy of the same layout to a
# local Docker registry (distribution), in one run, same machine.
#
#   bash benches/push.sh            # 3 layers of 70 MB (210 MB), 3 runs each
#   SIZE_MB=20 RUNS=1 bash benches/push.sh   # quick
#
# It prints, side by side: the first push into an empty registry, and a
# re-push of the unchanged image; times are medians over RUNS, with ratios.
# Two layouts: gzip layers, and uncompressed layers with skopeo's blob-info
# cache emptied before each run (skopeo compresses such layers for a
# registry, and without its cache must do so again to learn the digests).
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-70}
RUNS=${RUNS:-3}
for tool in docker-registry skopeo python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool: run bash .ci/install-deps" >&2; exit 1; }
done
cargo build --release --quiet
NIXOCI=$PWD/target/release/nixoci
WORK=$(mktemp -d /tmp/nixoci-bench-push.XXXXXX)
REG_PID=
cleanup() { [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_registry() {
  [ -n "$REG_PID" ] && { kill "$REG_PID"; wait "$REG_PID" 2>/dev/null || true; }
  rm -rf "$WORK/data"
  cat > "$WORK/reg.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/data}}
http: {addr: 127.0.0.1:$PORT}
YML
  docker-registry serve "$WORK/reg.yml" >"$WORK/reg.log" 2>&1 &
  REG_PID=$!
  until curl -sf "http://127.0.0.1:$PORT/v2/" >/dev/null; do sleep 0.05; done
}
now() { date +%s.%N; }
# seconds taken by "$@", output discarded
timed() { local t0; t0=$(now); "$@" >/dev/null 2>&1; python3 -c "print(f'{$(now)-$t0:.3f}')"; }
median() { python3 -c 'import statistics,sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.3f}")' "$@"; }

# An image of three layers of incompressible data, SIZE_MB each.
make_image() { # COMPRESSION OUT
  python3 - "$WORK" "$SIZE_MB" "$1" <<'PY'
import json, os, random, sys
work, mb, compression = sys.argv[1], int(sys.argv[2]), sys.argv[3]
layers = []
for i in range(3):
    d = os.path.join(work, "in", f"layer{i}")
    if not os.path.exists(d):
        os.makedirs(d)
        rnd = random.Random(i)
        with open(os.path.join(d, "data"), "wb") as f:
            for _ in range(mb):
                f.write(rnd.randbytes(1 << 20))
    layers.append({"files": [{"source": d, "destination": f"/layer{i}"}], "compression": compression})
json.dump({"layers": layers, "architecture": "amd64", "tags": ["latest"]}, open(os.path.join(work, "image.json"), "w"))
PY
  "$NIXOCI" build "$WORK/image.json" -o "$2" -q
}

# Each tool gets its own caches; both are emptied for every first push so
# that nothing is mounted from an earlier run. KEEP_SKOPEO_CACHE=0 empties
# skopeo's blob-info cache before each re-push too (a fresh CI runner).
nixoci_push() { XDG_CACHE_HOME="$WORK/cache-nixoci" "$NIXOCI" push "$LAYOUT:latest" "127.0.0.1:$PORT/bench/nixoci:latest" -q; }
skopeo_copy() { HOME="$WORK/home-skopeo" skopeo copy --dest-tls-verify=false "oci:$LAYOUT:latest" "docker://127.0.0.1:$PORT/bench/skopeo:latest"; }

scenario() { # TITLE COMPRESSION KEEP_SKOPEO_CACHE
  LAYOUT=$WORK/layout-$2
  make_image "$2" "$LAYOUT"
  local first_n=() first_s=() again_n=() again_s=()
  for _ in $(seq "$RUNS"); do
    start_registry; rm -rf "$WORK/cache-nixoci"; first_n+=("$(timed nixoci_push)")
    start_registry; rm -rf "$WORK/home-skopeo"; first_s+=("$(timed skopeo_copy)")
  done
  # Re-push: the image is there (pushed once by each tool).
  start_registry; nixoci_push; skopeo_copy
  for _ in $(seq "$RUNS"); do
    again_n+=("$(timed nixoci_push)")
    [ "$3" = 1 ] || rm -rf "$WORK/home-skopeo"
    again_s+=("$(timed skopeo_copy)")
  done
  python3 - "$1" "$(du -sm "$LAYOUT" | cut -f1)" "$RUNS" \
    "$(median "${first_n[@]}")" "$(median "${first_s[@]}")" "$(median "${again_n[@]}")" "$(median "${again_s[@]}")" <<'PY'
import sys
title, total, runs = sys.argv[1:4]
fn, fs, an, as_ = map(float, sys.argv[4:])
print(f"\n{title}: 3 layers, {total} MB, local registry, median of {runs} runs")
print(f"{'':24}{'nixoci push':>14}{'skopeo copy':>14}{'skopeo / nixoci':>18}")
print(f"{'first push':24}{fn:>13.3f}s{fs:>13.3f}s{fs/fn:>17.2f}x")
print(f"{'re-push (unchanged)':24}{an:>13.3f}s{as_:>13.3f}s{as_/an:>17.2f}x")
PY
}

scenario "gzip layers (what nixoci and Nix build)" gzip 1
scenario "uncompressed layers, fresh skopeo cache (a new CI runner)" none 0

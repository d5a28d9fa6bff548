#!/usr/bin/env bash
# Pull benchmark: nixoci pull with --jobs 1 and --jobs 4 from a local
# Docker registry (distribution), beside skopeo copy of the same image into
# an OCI layout, in one run, same machine.
#
#   bash benches/pull.sh                       # 6 layers of 50 MB (300 MB), 3 runs each
#   SIZE_MB=20 RUNS=1 bash benches/pull.sh     # quick
#   OLD=/path/to/old/nixoci bash benches/pull.sh   # also an older build, for before/after
#
# Times are medians over RUNS of wall-clock seconds; each pull writes a new
# layout (removed between runs). Ratios are against skopeo copy, and
# --jobs 1 against --jobs 4 of the same binary.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-50}
LAYERS=${LAYERS:-6}
RUNS=${RUNS:-3}
for tool in docker-registry skopeo python3 curl; do
  command -v "$tool" >/dev/null || { echo "needs $tool: run bash .ci/install-deps" >&2; exit 1; }
done
cargo build --release --quiet
NIXOCI=${CARGO_TARGET_DIR:-$PWD/target}/release/nixoci
WORK=$(mktemp -d /tmp/nixoci-bench-pull.XXXXXX)
REG_PID=
cleanup() { [ -n "$REG_PID" ] && kill "$REG_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
REG=127.0.0.1:$PORT
cat > "$WORK/reg.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $WORK/data}}
http: {addr: $REG}
YML
docker-registry serve "$WORK/reg.yml" >"$WORK/reg.log" 2>&1 &
REG_PID=$!
until curl -sf "http://$REG/v2/" >/dev/null; do sleep 0.05; done

now() { date +%s.%N; }
# seconds taken by "$@", output discarded; a failure stops the bench
timed() {
  local t0; t0=$(now)
  "$@" >/dev/null 2>"$WORK/err" || { echo "failed: $*" >&2; cat "$WORK/err" >&2; exit 1; }
  python3 -c "print(f'{$(now)-$t0:.3f}')"
}
median() { python3 -c 'import statistics,sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.3f}")' "$@"; }

# LAYERS layers of SIZE_MB of incompressible data each, uncompressed (the
# pull neither compresses nor decompresses: it receives, hashes, writes).
python3 - "$WORK" "$SIZE_MB" "$LAYERS" <<'PY'
import json, os, random, sys
work, mb, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
layers = []
for i in range(n):
    p = os.path.join(work, "in", f"layer{i}")
    os.makedirs(os.path.dirname(p), exist_ok=True)
    rnd = random.Random(i)
    with open(p, "wb") as f:
        for _ in range(mb):
            f.write(rnd.randbytes(1 << 20))
    layers.append({"files": [{"source": p, "destination": f"/layer{i}"}], "compression": "none"})
json.dump({"layers": layers, "architecture": "amd64", "tags": ["latest"]}, open(os.path.join(work, "image.json"), "w"))
PY
"$NIXOCI" build "$WORK/image.json" -o "$WORK/layout" -q
XDG_CACHE_HOME="$WORK/cache" "$NIXOCI" push "$WORK/layout:latest" "$REG/bench/pull:latest" -q
rm -rf "$WORK/in"
TOTAL=$(du -sm "$WORK/layout" | cut -f1)

pull() { # BINARY JOBS
  rm -rf "$WORK/out"
  XDG_CACHE_HOME="$WORK/cache" "$1" pull --jobs "$2" -q "$REG/bench/pull:latest" "$WORK/out"
}
skopeo_copy() {
  rm -rf "$WORK/out"
  HOME="$WORK/home-skopeo" skopeo copy --src-tls-verify=false "docker://$REG/bench/pull:latest" "oci:$WORK/out:latest"
}

declare -A T
row_names=()
measure() { # NAME COMMAND...
  local name=$1; shift
  local times=()
  for _ in $(seq "$RUNS"); do times+=("$(timed "$@")"); done
  T[$name]=$(median "${times[@]}")
  row_names+=("$name")
}
measure "skopeo copy" skopeo_copy
if [ -n "${OLD:-}" ]; then
  measure "old nixoci --jobs 1" pull "$OLD" 1
  measure "old nixoci --jobs 4" pull "$OLD" 4
fi
measure "nixoci --jobs 1" pull "$NIXOCI" 1
measure "nixoci --jobs 4" pull "$NIXOCI" 4

args=()
for n in "${row_names[@]}"; do args+=("$n" "${T[$n]}"); done
python3 - "$LAYERS" "$TOTAL" "$RUNS" "${args[@]}" <<'PY'
import sys
layers, total, runs = sys.argv[1:4]
rows = list(zip(sys.argv[4::2], map(float, sys.argv[5::2])))
t = dict(rows)
base = t["skopeo copy"]
print(f"\npull of {layers} layers, {total} MB, local registry, median of {runs} runs")
print(f"{'':24}{'time':>10}{'MB/s':>10}{'/ skopeo':>10}{'jobs 1 / jobs 4':>18}")
for name, s in rows:
    ratio = ""
    if name.endswith("--jobs 4"):
        ratio = f"{t[name.replace('--jobs 4', '--jobs 1')] / s:.2f}x"
    print(f"{name:24}{s:>9.3f}s{int(total) / s:>10.0f}{s / base:>9.2f}x{ratio:>18}")
PY

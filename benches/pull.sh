#!/usr/bin/env bash
# Pull benchmark: nixoci pull with --jobs 1 and --jobs 4 from a local
# Docker registry (distribution), beside crane pull --format oci and skopeo
# copy of the same image into an OCI layout, in one run, same machine.
# (benches/push.sh compares push, re-push and pull with crane and skopeo on
# gzip layers; this one varies --jobs.)
#
#   bash benches/pull.sh                       # 6 layers of 50 MB (300 MB), 3 runs each
#   SIZE_MB=20 RUNS=1 bash benches/pull.sh     # quick
#   OLD=/path/to/old/nixoci bash benches/pull.sh   # also an older build, for before/after
#
# Times are medians over RUNS of wall-clock seconds, peak memory the median
# of GNU time's maximum resident set; each pull writes a new
# layout (removed between runs). Ratios are against skopeo copy, and
# --jobs 1 against --jobs 4 of the same binary.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
SIZE_MB=${SIZE_MB:-50}
LAYERS=${LAYERS:-6}
RUNS=${RUNS:-3}
need docker-registry skopeo python3 curl /usr/bin/time
need_crane
NIXOCI=  # this tree's build, always
release_nixoci
bench_workdir pull
registry_start

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

# Each sets CMD, the command of one pull into the new layout $WORK/out.
pull() { # BINARY JOBS
  CMD=(env "XDG_CACHE_HOME=$WORK/cache" "$1" pull --jobs "$2" -q "$REG/bench/pull:latest" "$WORK/out")
}
crane_pull() {
  CMD=(env "HOME=$WORK/home-crane" "DOCKER_CONFIG=$WORK/home-crane" "$CRANE" pull --format oci "$REG/bench/pull:latest" "$WORK/out" --insecure)
}
skopeo_copy() {
  CMD=(env "HOME=$WORK/home-skopeo" skopeo copy --src-tls-verify=false "docker://$REG/bench/pull:latest" "oci:$WORK/out:latest")
}

declare -A T M
row_names=()
measure() { # NAME FUNCTION ARGS...
  local name=$1; shift
  local times=() mbs=() out
  "$@"
  for _ in $(seq "$RUNS"); do
    rm -rf "$WORK/out"
    out=$(timed "${CMD[@]}")
    times+=("${out% *}")
    mbs+=("${out#* }")
  done
  T[$name]=$(median "${times[@]}")
  M[$name]=$(median "${mbs[@]}")
  row_names+=("$name")
}
measure "skopeo copy" skopeo_copy
measure "crane pull" crane_pull
if [ -n "${OLD:-}" ]; then
  measure "old nixoci --jobs 1" pull "$OLD" 1
  measure "old nixoci --jobs 4" pull "$OLD" 4
fi
measure "nixoci --jobs 1" pull "$NIXOCI" 1
measure "nixoci --jobs 4" pull "$NIXOCI" 4

args=()
for n in "${row_names[@]}"; do args+=("$n" "${T[$n]}" "${M[$n]}"); done
python3 - "$LAYERS" "$TOTAL" "$RUNS" "${args[@]}" <<'PY'
import sys
layers, total, runs = sys.argv[1:4]
rows = list(zip(sys.argv[4::3], map(float, sys.argv[5::3]), sys.argv[6::3]))
t = {name: s for name, s, _ in rows}
base = t["skopeo copy"]
print(f"\npull of {layers} layers, {total} MB, local registry, median of {runs} runs")
print(f"{'':24}{'time':>10}{'MB/s':>10}{'peak MB':>10}{'/ skopeo':>10}{'jobs 1 / jobs 4':>18}")
for name, s, mb in rows:
    ratio = ""
    if name.endswith("--jobs 4"):
        ratio = f"{t[name.replace('--jobs 4', '--jobs 1')] / s:.2f}x"
    print(f"{name:24}{s:>9.3f}s{int(total) / s:>10.0f}{float(mb):>10.0f}{s / base:>9.2f}x{ratio:>18}")
PY

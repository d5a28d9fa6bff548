#!/usr/bin/env bash
# Durable commits benchmark: what syncing every output to the disk costs
# (docs/reference/safety.md), each command timed in one
# invocation without syncing (NIXOCI_SYNC=0, what nixoci did before issue
# 22) and with it (the default), alternately, on the same inputs:
#
#   - build of an image of 3 layers of SIZE_MB each (gzip), and of 200
#     small layers (a blob, and its sync, per layer);
#   - pull of the 3-layer image from a local registry (distribution);
#   - unpack of a layer of FILES small files (a sync per file);
#   - push of the image (only the blob-location cache is written).
#
#   bash benches/durable.sh                  # SIZE_MB=50 FILES=5000 RUNS=3
#   SIZE_MB=10 FILES=1000 RUNS=1 bash benches/durable.sh   # quick
#
# Times are medians over RUNS of wall-clock seconds, each after a `sync`.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-50}
FILES=${FILES:-5000}
RUNS=${RUNS:-3}
source benches/lib.sh
need docker-registry python3 curl
cargo build --release --quiet
NIXOCI=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/nixoci
bench_workdir durable
registry_start

python3 - "$WORK" "$SIZE_MB" "$FILES" <<'PY'
import json, os, random, sys
work, mb, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
big = []
for i in range(3):
    d = os.path.join(work, "in", f"big{i}")
    os.makedirs(d)
    rnd = random.Random(i)
    with open(os.path.join(d, "data"), "wb") as f:
        for _ in range(mb):
            f.write(rnd.randbytes(1 << 20))
    big.append({"files": [{"source": d, "destination": f"/big{i}"}]})
json.dump({"layers": big, "architecture": "amd64", "tags": ["latest"]}, open(os.path.join(work, "big.json"), "w"))
small = []
for i in range(200):
    p = os.path.join(work, "in", "small", str(i))
    os.makedirs(os.path.dirname(p), exist_ok=True)
    open(p, "w").write(f"layer {i}\n")
    small.append({"files": [{"source": p, "destination": f"/s/{i}"}]})
json.dump({"layers": small, "architecture": "amd64", "tags": ["latest"]}, open(os.path.join(work, "small.json"), "w"))
tree = os.path.join(work, "in", "tree")
for i in range(files):
    d = os.path.join(tree, f"d{i // 100}")
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, f"f{i}"), "w").write(f"file {i}\n" * (1 + i % 50))
json.dump({"layers": [{"files": [{"source": tree, "destination": "/tree"}]}], "architecture": "amd64", "tags": ["latest"]}, open(os.path.join(work, "tree.json"), "w"))
PY
NIXOCI_SYNC=0 "$NIXOCI" build "$WORK/big.json" -o "$WORK/big" -q
NIXOCI_SYNC=0 "$NIXOCI" build "$WORK/tree.json" -o "$WORK/tree" -q
NIXOCI_SYNC=0 "$NIXOCI" push "$WORK/big:latest" "$REG/bench/big:latest" -q

now() { date +%s.%N; }
median() { python3 -c 'import statistics,sys; print(f"{statistics.median(float(x) for x in sys.argv[1:]):.3f}")' "$@"; }
# seconds taken by "$@" with NIXOCI_SYNC=$SYNC, after a sync, output discarded
timed() { local t0; sync; t0=$(now); NIXOCI_SYNC=$SYNC "$@" >/dev/null; python3 -c "print(f'{$(now)-$t0:.3f}')"; }

out=$WORK/out
cmds=(
  "build, 3 layers of ${SIZE_MB} MB|$NIXOCI build $WORK/big.json -o $out -q --force"
  "build, 200 small layers|$NIXOCI build $WORK/small.json -o $out -q --force"
  "pull, 3 layers of ${SIZE_MB} MB|$NIXOCI pull $REG/bench/big:latest $out -q --force"
  "unpack, ${FILES} files|$NIXOCI unpack $WORK/tree $out -q --force"
  "push (unchanged image)|$NIXOCI push $WORK/big:latest $REG/bench/big:latest -q"
)
export XDG_CACHE_HOME=$WORK/cache
printf '\n%-32s%14s%14s%10s   (median of %s runs)\n' "" "no sync" "sync" "ratio" "$RUNS"
for entry in "${cmds[@]}"; do
  title=${entry%%|*}
  read -r -a cmd <<<"${entry#*|}"
  SYNC=0 timed "${cmd[@]}" >/dev/null # warm-up
  off=() on=()
  for _ in $(seq "$RUNS"); do
    off+=("$(SYNC=0 timed "${cmd[@]}")")
    on+=("$(SYNC=1 timed "${cmd[@]}")")
  done
  a=$(median "${off[@]}") b=$(median "${on[@]}")
  printf '%-32s%13ss%13ss%9sx\n' "$title" "$a" "$b" "$(python3 -c "print(f'{$b/$a:.2f}')")"
done

#!/usr/bin/env bash
# Load benchmark: time and peak RSS of nixoci on the big cases of the
# hardening issue, each beside a baseline run in the same invocation:
#
#   - push of an image of 120 layers (1 MiB each)   vs skopeo copy
#   - push of an index of 4 platforms                vs skopeo copy --all
#   - 8 pushes at once of images sharing a layer     vs the 8 one after another
#   - unpack of a layer of 200,000 entries           vs GNU tar -x of the same tar
#
#   bash benches/load.sh
#   ENTRIES_DIRS=100 bash benches/load.sh   # 50,000 entries: quicker
#
# Times are wall-clock seconds of one run (the unpack: the median of three;
# these are long, I/O-bound runs);
# peak RSS is /usr/bin/time's maximum resident set size (for the 8 pushes:
# the largest of the 8 processes).
set -euo pipefail
cd "$(dirname "$0")/.."
DIRS=${ENTRIES_DIRS:-400}
source benches/lib.sh
need docker-registry skopeo python3 curl zstd /usr/bin/time
NIXOCI=  # this tree's build, always
release_nixoci
bench_workdir load
# A new registry, empty, on a new port (benches/lib.sh).
start_registry() { registry_start; }
# "SECONDS KB" of one command, its output discarded.
measure() {
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; cat "$WORK/time" >&2; exit 1; }
  tail -1 "$WORK/time"
}
row() { # NAME "S KB" "S KB" (nixoci, baseline)
  python3 - "$@" <<'PY'
import sys
name, a, b = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
ta, ma, tb, mb = float(a[0]), int(a[1]) / 1024, float(b[0]), int(b[1]) / 1024
print(f"| {name} | {ta:.2f} s | {ma:.1f} MB | {tb:.2f} s | {mb:.1f} MB | {ta / tb:.2f}x |")
PY
}

python3 - "$WORK" "$DIRS" <<'PY'
import json, os, random, sys
work, dirs = sys.argv[1], int(sys.argv[2])
# 120 layers of 1 MiB of noise each.
layers = []
for i in range(120):
    p = os.path.join(work, "many-in", f"{i}")
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(random.Random(i).randbytes(1 << 20))
    layers.append({"files": [{"source": p, "destination": f"/l/{i}"}], "compression": "none"})
json.dump({"layers": layers, "architecture": "amd64", "tags": ["latest"]}, open(f"{work}/many.json", "w"))
# 8 images sharing a 20 MiB layer, each with a 5 MiB layer of its own.
shared = os.path.join(work, "shared")
with open(shared, "wb") as f:
    f.write(random.Random(1000).randbytes(20 << 20))
for i in range(8):
    own = os.path.join(work, f"own{i}")
    with open(own, "wb") as f:
        f.write(random.Random(2000 + i).randbytes(5 << 20))
    json.dump({"layers": [
        {"files": [{"source": shared, "destination": "/shared"}], "compression": "none"},
        {"files": [{"source": own, "destination": "/own"}], "compression": "none"}],
        "architecture": "amd64", "tags": ["latest"]}, open(f"{work}/img{i}.json", "w"))
# 4 platforms, a 4 MiB layer each.
for arch in ["amd64", "arm64", "ppc64le", "s390x"]:
    p = os.path.join(work, f"plat-{arch}")
    with open(p, "wb") as f:
        f.write(random.Random(arch).randbytes(4 << 20))
    json.dump({"layers": [{"files": [{"source": p, "destination": "/data"}], "compression": "none"}],
               "architecture": arch}, open(f"{work}/{arch}.json", "w"))
json.dump({"manifests": ["amd64", "arm64", "ppc64le", "s390x"], "tags": ["multi"]}, open(f"{work}/index.json", "w"))
# DIRS directories of 450 files and 49 symlinks, plus the directory: 500 entries each.
for d in range(dirs):
    p = os.path.join(work, "tree", f"d{d:03}")
    os.makedirs(p)
    for i in range(450):
        with open(os.path.join(p, f"f{i:03}"), "w") as f:
            f.write(f"{d}/{i}\n")
    for i in range(49):
        os.symlink(f"f{i:03}", os.path.join(p, f"l{i:03}"))
json.dump({"layers": [{"files": [{"source": os.path.join(work, "tree"), "destination": "/tree"}], "compression": "zstd"}],
           "architecture": "amd64", "tags": ["latest"]}, open(f"{work}/tree.json", "w"))
PY
"$NIXOCI" build "$WORK/many.json" -o "$WORK/many" -q
for i in $(seq 0 7); do "$NIXOCI" build "$WORK/img$i.json" -o "$WORK/img$i" -q; done
for arch in amd64 arm64 ppc64le s390x; do "$NIXOCI" manifest "$WORK/$arch.json" -o "$WORK/$arch" -q; done
"$NIXOCI" layout "$WORK/index.json" -o "$WORK/multi" -q
"$NIXOCI" build "$WORK/tree.json" -o "$WORK/tree-layout" -q
ENTRIES=$((DIRS * 500 + 1))

echo "| case | nixoci | peak RSS | baseline | peak RSS | ratio |"
echo "|---|---|---|---|---|---|"
export XDG_CACHE_HOME=$WORK/cache HOME=$WORK/home
start_registry
a=$(measure "$NIXOCI" push "$WORK/many" "$REG/many/nixoci:v1" -q)
start_registry
b=$(measure skopeo copy --dest-tls-verify=false "oci:$WORK/many:latest" "docker://$REG/many/skopeo:v1")
row "push, 120 layers of 1 MiB (vs skopeo copy)" "$a" "$b"

start_registry
a=$(measure "$NIXOCI" push "$WORK/multi" "$REG/multi/nixoci:v1" -q)
start_registry
b=$(measure skopeo copy --all --dest-tls-verify=false "oci:$WORK/multi:multi" "docker://$REG/multi/skopeo:v1")
row "push, index of 4 platforms (vs skopeo copy --all)" "$a" "$b"

# 8 at once, against the same 8 one after another.
at_once() {
  local pids=() i
  for i in $(seq 0 7); do
    /usr/bin/time -f "%M" -o "$WORK/rss$i" "$NIXOCI" push "$WORK/img$i" "$REG/par$i/app:v1" -q >/dev/null 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}
in_turn() {
  local i
  for i in $(seq 0 7); do
    /usr/bin/time -f "%M" -o "$WORK/rss$i" "$NIXOCI" push "$WORK/img$i" "$REG/seq$i/app:v1" -q >/dev/null 2>&1
  done
}
max_rss() { cat "$WORK"/rss? | sort -n | tail -1; }
start_registry; rm -rf "$WORK/cache"
t0=$(date +%s.%N); at_once; t1=$(date +%s.%N); a="$(python3 -c "print(f'{$t1-$t0:.2f}')") $(max_rss)"
start_registry; rm -rf "$WORK/cache"
t0=$(date +%s.%N); in_turn; t1=$(date +%s.%N); b="$(python3 -c "print(f'{$t1-$t0:.2f}')") $(max_rss)"
row "8 pushes at once, a shared 20 MiB layer (vs the 8 in turn)" "$a" "$b"

layer=$(python3 -c "import json,sys; m=json.load(open(sys.argv[1]+'/blobs/sha256/'+json.load(open(sys.argv[1]+'/index.json'))['manifests'][0]['digest'][7:])); print(m['layers'][0]['digest'][7:])" "$WORK/tree-layout")
zstd -dcq "$WORK/tree-layout/blobs/sha256/$layer" > "$WORK/tree.tar"
# Three of each, taking turns, each into a new directory, nothing removed
# in between (removing 200,000 files keeps this disk busy for a while, and
# whoever ran next paid for it); the medians.
un=() tx=()
for i in 1 2 3; do
  sync; un+=("$(measure "$NIXOCI" unpack "$WORK/tree-layout" "$WORK/rootfs$i")")
  mkdir "$WORK/tar-x$i"; sync; tx+=("$(measure tar -xf "$WORK/tree.tar" -C "$WORK/tar-x$i")")
done
med() { python3 -c 'import statistics,sys; v=[l.split() for l in sys.argv[1:]]; print(f"{statistics.median(float(x[0]) for x in v):.2f} {int(statistics.median(int(x[1]) for x in v))}")' "$@"; }
row "unpack, $ENTRIES entries, median of 3 (vs tar -xf of the decompressed layer)" "$(med "${un[@]}")" "$(med "${tx[@]}")"

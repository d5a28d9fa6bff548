#!/usr/bin/env bash
# Registry benchmark: nixoci beside crane and skopeo, in one run, on the
# same layouts and the same local Docker registry 2.8 (distribution):
#
#   bash benches/push.sh                          # 3 x 70 MB layers, and 120 layers of 100 KB; 3 runs each
#   SIZE_MB=20 SMALL_LAYERS=30 RUNS=1 bash benches/push.sh   # quick
#   CRANE=/path/to/crane bash benches/push.sh     # default: .tools/bin/crane (.ci/install-deps)
#   NIXOCI=/path/to/nixoci bash benches/push.sh   # another build; default: this tree's, built --release
#
# For each of two images of gzip layers (what nixoci and Nix build):
# - the first push: each run into a registry started empty (so nothing is
#   skipped or mounted), with empty caches;
# - a re-push of the unchanged image (each tool into the repository it
#   pushed the image to), with the write requests (PUT, POST, PATCH,
#   DELETE) the registry's access log shows for it;
# - a pull into a new OCI layout (an empty directory each run); nixoci
#   and skopeo sync each blob to the disk before naming it, crane does
#   not: nixoci with NIXOCI_SYNC=0 is measured too.
# Times are medians over RUNS of wall-clock seconds, peak memory the
# median of GNU time's maximum resident set. Ratios are nixoci's time (or
# memory) over the other tool's: below 1, nixoci took less.
#
#   nixoci  push LAYOUT:latest REF -q          pull REF DIR -q
#   crane   push LAYOUT REF --insecure         pull --format oci REF DIR --insecure
#   skopeo  copy --dest-tls-verify=false oci:LAYOUT:latest docker://REF, and back into oci:DIR:latest
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/lib.sh
SIZE_MB=${SIZE_MB:-70}
SMALL_LAYERS=${SMALL_LAYERS:-120}
SMALL_KB=${SMALL_KB:-100}
RUNS=${RUNS:-3}
need docker-registry skopeo python3 curl /usr/bin/time
need_crane
release_nixoci
bench_workdir push
TOOLS=(nixoci crane skopeo)

# An image of COUNT layers of KB KiB of incompressible data each, gzip.
make_image() { # OUT COUNT KB
  rm -rf "$WORK/in"
  python3 - "$WORK" "$2" "$3" <<'PY'
import json, os, random, sys
work, count, kb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
layers = []
for i in range(count):
    d = os.path.join(work, "in", f"layer{i}")
    os.makedirs(d)
    rnd = random.Random(i)
    with open(os.path.join(d, "data"), "wb") as f:
        for _ in range(kb // 1024):
            f.write(rnd.randbytes(1 << 20))
        f.write(rnd.randbytes((kb % 1024) << 10))
    layers.append({"files": [{"source": d, "destination": f"/layer{i}"}], "compression": "gzip"})
json.dump({"layers": layers, "architecture": "amd64", "tags": ["latest"]}, open(os.path.join(work, "image.json"), "w"))
PY
  "$NIXOCI" build "$WORK/image.json" -o "$1" -q
  rm -rf "$WORK/in"
}

# The command of TOOL pushing LAYOUT to REF, in CMD, with caches and
# credentials under CACHE (skopeo, run as root, keeps its blob-info cache
# in /var/lib/containers/cache whatever HOME is: it is keyed by registry,
# and every first push goes to a registry on a new port).
push_cmd() { # TOOL LAYOUT REF CACHE
  case $1 in
    nixoci) CMD=(env "XDG_CACHE_HOME=$4" "$NIXOCI" push "$2:latest" "$3" -q) ;;
    crane) CMD=(env "HOME=$4" "DOCKER_CONFIG=$4" "$CRANE" push "$2" "$3" --insecure) ;;
    skopeo) CMD=(env "HOME=$4" skopeo copy -q --dest-tls-verify=false "oci:$2:latest" "docker://$3") ;;
  esac
}
# The command of TOOL pulling REF into a new layout DIR, in CMD.
pull_cmd() { # TOOL REF DIR CACHE
  case $1 in
    nixoci) CMD=(env "XDG_CACHE_HOME=$4" "$NIXOCI" pull -q "$2" "$3") ;;
    nixoci-nosync) CMD=(env "XDG_CACHE_HOME=$4" NIXOCI_SYNC=0 "$NIXOCI" pull -q "$2" "$3") ;;
    crane) CMD=(env "HOME=$4" "DOCKER_CONFIG=$4" "$CRANE" pull --format oci "$2" "$3" --insecure) ;;
    skopeo) CMD=(env "HOME=$4" skopeo copy -q --src-tls-verify=false "docker://$2" "oci:$3:latest") ;;
  esac
}

# One line per run: IMAGE MEASURE TOOL SECONDS MB; and per re-push:
# IMAGE writes TOOL WRITES REQUESTS.
RESULTS=$WORK/results
: >"$RESULTS"
sample() { # IMAGE MEASURE TOOL (the command in CMD)
  local out
  out=$(timed "${CMD[@]}")
  echo "$1 $2 $3 $out" >>"$RESULTS"
}

scenario() { # IMAGE LAYOUT
  local image=$1 layout=$2 tool run from
  # First push: a new registry for each push, tools taking turns.
  for run in $(seq "$RUNS"); do
    for tool in "${TOOLS[@]}"; do
      registry_start
      rm -rf "$WORK/cache"
      push_cmd "$tool" "$layout" "$REG/bench/$tool:latest" "$WORK/cache"
      sample "$image" first "$tool"
    done
  done
  # Re-push and pull: one registry, each tool's image in its own repository.
  registry_start
  for tool in "${TOOLS[@]}"; do
    push_cmd "$tool" "$layout" "$REG/bench/$tool:latest" "$WORK/cache-$tool"
    "${CMD[@]}" >/dev/null 2>&1
  done
  for tool in "${TOOLS[@]}"; do
    from=$(registry_log_mark)
    push_cmd "$tool" "$layout" "$REG/bench/$tool:latest" "$WORK/cache-$tool"
    for run in $(seq "$RUNS"); do sample "$image" again "$tool"; done
    echo "$image writes $tool $(registry_writes "bench/$tool" "$from") $(registry_requests "bench/$tool" "$from")" >>"$RESULTS"
  done
  for run in $(seq "$RUNS"); do
    for tool in "${TOOLS[@]}" nixoci-nosync; do
      rm -rf "$WORK/out" "$WORK/cache-pull"
      pull_cmd "$tool" "$REG/bench/nixoci:latest" "$WORK/out" "$WORK/cache-pull"
      sample "$image" pull "$tool"
    done
  done
  rm -rf "$WORK/out"
}

BIG=$WORK/layout-big
SMALL=$WORK/layout-small
make_image "$BIG" 3 $((SIZE_MB * 1024))
make_image "$SMALL" "$SMALL_LAYERS" "$SMALL_KB"
scenario big "$BIG"
scenario small "$SMALL"
registry_stop

python3 - "$RESULTS" "$RUNS" "$(du -sm "$BIG" | cut -f1)" "$SIZE_MB" \
  "$(du -sm "$SMALL" | cut -f1)" "$SMALL_LAYERS" "$SMALL_KB" <<'PY'
import statistics, sys
path, runs, big_mb, size_mb, small_mb, small_layers, small_kb = sys.argv[1:]
runs = int(runs)
samples, writes = {}, {}
for l in open(path):
    img, what, tool, a, b = l.split()
    if what == "writes":
        writes[(img, tool)] = (int(a) // runs, int(b) // runs)
    else:
        samples.setdefault((img, what, tool), []).append((float(a), float(b)))
def med(img, what, tool, i):
    return statistics.median(s[i] for s in samples[(img, what, tool)])
tools = ["nixoci", "crane", "skopeo"]
print(f"\nmedian of {runs} runs; ratios: nixoci's over the other's (below 1, nixoci took less)\n")
print("| | nixoci | crane | skopeo | nixoci / crane | nixoci / skopeo |")
print("|---|---|---|---|---|---|")
def row(label, vals, cell):
    ratios = [f"{vals[0] / v:.2f}" if v else "" for v in vals[1:]]
    print(f"| {label} | " + " | ".join([cell(v) for v in vals] + ratios) + " |")
for img, title in (("big", f"3 layers of {size_mb} MB ({big_mb} MB)"),
                   ("small", f"{small_layers} layers of {small_kb} KB ({small_mb} MB)")):
    for what, label in (("first", f"{title}: first push"),
                        ("again", "&nbsp; re-push (unchanged)"),
                        ("pull", "&nbsp; pull to a new layout")):
        row(label, [med(img, what, t, 0) for t in tools], lambda v: f"{v:.3f} s")
        row("&nbsp; &nbsp; peak memory", [med(img, what, t, 1) for t in tools], lambda v: f"{v:.0f} MB")
        if what == "pull":
            row("&nbsp; &nbsp; nixoci with NIXOCI_SYNC=0 (no fsync, as crane)",
                [med(img, what, t, 0) for t in ["nixoci-nosync"] + tools[1:]], lambda v: f"{v:.3f} s")
        if what == "again":
            print("| &nbsp; &nbsp; write requests (all requests) per re-push | "
                  + " | ".join(f"{writes[(img, t)][0]} ({writes[(img, t)][1]})" for t in tools) + " | | |")
PY

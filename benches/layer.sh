#!/usr/bin/env bash
# Layer benchmark: `nixoci layer` (gzip, zstd, none) against the shell
# pipeline Nix users write by hand, on a deterministic corpus that looks like
# a Nix closure, in one invocation on this machine.
#
#   bash benches/layer.sh                # ~500 MB corpus, 3 runs each
#   bash benches/layer.sh --small        # ~50 MB, for a quick look
#   bash benches/layer.sh --runs 5       # more runs
#
# Every command runs once untimed, then RUNS times, each after a `sync`;
# the table shows the median wall time and the largest peak RSS. Prints
# wall time, MB/s (of the tar), peak RSS, output size, and ratios: pipeline
# / nixoci, nixoci gzip size / pigz size, nixoci's total time over its time
# compressing alone (a layer of the pre-made tar file: reading, hashing and
# compressing, with no tree to walk), peak RSS with 1 GiB and with 2 GiB
# added to the layer, and a gzip level sweep. The pipelines get as many
# threads as nixoci (nproc).
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=10
RUNS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --small) SCALE=1 ;;
    --runs) RUNS=$2; shift ;;
    *) echo "usage: bash benches/layer.sh [--small] [--runs N]" >&2; exit 2 ;;
  esac
  shift
done
for tool in tar pigz zstd sha256sum python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install pigz zstd time)" >&2; exit 1; }
done
cargo build --release --quiet
NIXOCI=$PWD/target/release/nixoci
W=$(mktemp -d /tmp/nixoci-bench-layer.XXXXXX)
trap 'rm -rf "$W"' EXIT

python3 - "$W/corpus" "$SCALE" <<'PY'
import os, random, sys
root, scale = sys.argv[1], int(sys.argv[2])
rnd = random.Random(42)
words = [bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz_/.") for _ in range(rnd.randint(2, 12))) for _ in range(4000)]
text = b" ".join(rnd.choice(words) + (b"\n" if rnd.random() < 0.1 else b"") for _ in range(400_000))
def store(name): return os.path.join(root, "nix/store", f"{rnd.getrandbits(128):032x}-{name}")
# Many small text-like files (scripts, headers, docs): ~14 MB per scale unit.
for p in range(20 * scale):
    pkg = store(f"pkg{p}")
    for f in range(100):
        d = os.path.join(pkg, ["share/doc", "include", "lib/python3", "etc"][f % 4], f"d{f % 7}")
        os.makedirs(d, exist_ok=True)
        n = rnd.randint(500, 14000)
        o = rnd.randint(0, len(text) - n)
        with open(os.path.join(d, f"f{f}.txt"), "wb") as fh:
            fh.write(text[o:o + n])
    os.makedirs(os.path.join(pkg, "bin"), exist_ok=True)
    for s in range(10):
        os.symlink(f"../share/doc/d{s % 7}/f{s}.txt" if False else "../etc", os.path.join(pkg, "bin", f"link{s}"))
    # Hard links inside the package (outside any real store, so kept).
    first = os.path.join(pkg, "etc", "d0", "f3.txt")
    if os.path.exists(first):
        os.link(first, os.path.join(pkg, "etc", "hardlink"))
# Some large binaries: ~35 MB per scale unit, shaped like machine code so
# that gzip and zstd find what they find in real ELF files (calibrated
# against /usr/lib on Debian: pigz -6 keeps ~37% of ELF bytes and ~40% of
# these): functions of instruction-like tokens with addresses from a small
# set, string tables, zero padding and a little incompressible data.
opcodes = [rnd.randbytes(2) for _ in range(60)]
vocab = [rnd.choice(opcodes) + rnd.randbytes(rnd.randint(0, 5)) for _ in range(3000)]
def skewed(n, s):
    return min(n - 1, int(rnd.paretovariate(s)) - 1)
def binary(size):
    addrs = [rnd.randbytes(4) for _ in range(400)]
    funcs = []
    for _ in range(1500):
        toks = []
        for _ in range(rnd.randint(30, 500)):
            toks.append(vocab[skewed(len(vocab), 0.9)])
            r = rnd.random()
            if r < 0.2:
                toks.append(addrs[skewed(len(addrs), 0.8)])
            elif r < 0.23:
                toks.append(rnd.randbytes(4))
        funcs.append(b"".join(toks))
    out, n = [], 0
    while n < size:
        r = rnd.random()
        if r < 0.80:
            piece = funcs[rnd.randrange(len(funcs))]
        elif r < 0.90:
            piece = b"\0".join(rnd.choice(words) for _ in range(200))
        elif r < 0.97:
            piece = bytes(rnd.randint(16, 4096))
        else:
            piece = rnd.randbytes(rnd.randint(512, 16384))
        out.append(piece)
        n += len(piece)
    return b"".join(out)[:size]
for b in range(scale):
    pkg = store(f"big{b}")
    os.makedirs(os.path.join(pkg, "lib"), exist_ok=True)
    with open(os.path.join(pkg, "lib", f"libbig{b}.so"), "wb") as fh:
        fh.write(binary(35 << 20))
PY
CORPUS_MB=$(du -sb --apparent-size "$W/corpus" | awk '{printf "%.0f", $1 / 1e6}')
# The pipelines get as many threads as nixoci uses by default.
NPROC=$(nproc)
FILES=$(find "$W/corpus" -type f | wc -l)
echo "corpus: $CORPUS_MB MB, $FILES files (with symlinks and hard links)"

printf '{"files":[{"source":"%s/corpus","destination":"/"}],"compression":"%%s"}' "$W" > "$W/spec.tmpl"
measure() { # COMMAND... -> "median_seconds max_rss_kb" over RUNS runs
  : > "$W/times"
  # One untimed warm-up run first (the page cache here is small, so the
  # first run of a command often reads from disk), unless RUNS is 1.
  [ "$RUNS" -gt 1 ] && { rm -rf "${CLEAN:-/nonexistent}"; "$@" >/dev/null 2>&1; }
  for _ in $(seq "$RUNS"); do
    rm -rf "${CLEAN:-/nonexistent}"
    sync
    /usr/bin/time -f "%e %M" -o "$W/time" "$@" >/dev/null 2>&1
    cat "$W/time" >> "$W/times"
  done
  sort -n "$W/times" | awk '{t[NR]=$1; if ($2>r) r=$2} END {print t[int((NR+1)/2)], r}'
}
declare -A T R S
layer_size() { # OUTPUT_DIR -> the layer's compressed size
  python3 -c "import json, sys; print(json.load(open(sys.argv[1] + '/layer.json'))['size'])" "$1"
}
run_nixoci() { # COMPRESSION
  printf "$(cat "$W/spec.tmpl")" "$1" > "$W/spec-$1.json"
  read -r T[$1] R[$1] < <(CLEAN=$W/out-$1 measure "$NIXOCI" layer "$W/spec-$1.json" -o "$W/out-$1" -q)
  S[$1]=$(layer_size "$W/out-$1")
}
run_nixoci gzip; run_nixoci zstd; run_nixoci none

pipeline() { # COMPRESSOR...
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@1 --hard-dereference -cf "$W/layer.tar" -C "$W/corpus" .
  sha256sum "$W/layer.tar"
  "$@" -c "$W/layer.tar" > "$W/layer.tar.z"
  sha256sum "$W/layer.tar.z"
}
export -f pipeline
export W
read -r T[pigz] R[pigz] < <(measure bash -c "pipeline pigz -nT -p$NPROC")
S[pigz]=$(stat -c %s "$W/layer.tar.z")
read -r T[zstdcli] R[zstdcli] < <(measure bash -c "pipeline zstd -3 -T$NPROC -q")
S[zstdcli]=$(stat -c %s "$W/layer.tar.z")

# Compressing alone: a layer whose only entry is the pre-made tar.
for c in gzip zstd; do
  printf '{"files":[{"source":"%s/layer.tar","destination":"/layer.tar"}],"compression":"%s"}' "$W" "$c" > "$W/alone-$c.json"
  read -r T[alone-$c] R[alone-$c] < <(CLEAN=$W/alone-$c measure "$NIXOCI" layer "$W/alone-$c.json" -o "$W/alone-$c" -q)
done
rm -f "$W/layer.tar" "$W/layer.tar.z"

# The level: gzip 1, 4, 6 (default) and 9, one run each.
for l in 1 4 6 9; do
  printf '{"files":[{"source":"%s/corpus","destination":"/"}],"compression":"gzip","level":%s}' "$W" "$l" > "$W/spec-l$l.json"
  read -r T[l$l] R[l$l] < <(RUNS=1 CLEAN=$W/out-l$l measure "$NIXOCI" layer "$W/spec-l$l.json" -o "$W/out-l$l" -q)
  S[l$l]=$(layer_size "$W/out-l$l")
  rm -rf "$W/out-l$l"
done

# Memory against layer size: the corpus plus a file of 1 GiB, then 2 GiB
# (sparse, so quick to read and to deflate; the point is the byte count).
for g in 1 2; do
  truncate -s ${g}G "$W/big"
  printf '{"files":[{"source":"%s/corpus","destination":"/"},{"source":"%s/big","destination":"/big"}],"compression":"gzip"}' "$W" "$W" > "$W/spec-big.json"
  read -r T[big$g] R[big$g] < <(RUNS=1 CLEAN=$W/out-big measure "$NIXOCI" layer "$W/spec-big.json" -o "$W/out-big" -q)
  rm -rf "$W/out-big" "$W/big"
done

python3 - "$NPROC" \
  "${T[gzip]}" "${R[gzip]}" "${S[gzip]}" "${T[zstd]}" "${R[zstd]}" "${S[zstd]}" "${T[none]}" "${R[none]}" "${S[none]}" \
  "${T[pigz]}" "${R[pigz]}" "${S[pigz]}" "${T[zstdcli]}" "${R[zstdcli]}" "${S[zstdcli]}" "${T[alone-gzip]}" "${T[alone-zstd]}" "${R[big1]}" "${R[big2]}" "$RUNS" \
  "${T[l1]}" "${S[l1]}" "${T[l4]}" "${S[l4]}" "${T[l6]}" "${S[l6]}" "${T[l9]}" "${S[l9]}" <<'PY'
import sys
n = sys.argv[1]; v = sys.argv[2:]
mb = int(v[8]) / 1e6  # MB/s of the uncompressed tar (the "none" layer)
rows = [("nixoci layer, gzip -6", *v[0:3]), ("nixoci layer, zstd -3", *v[3:6]), ("nixoci layer, none", *v[6:9]),
        (f"tar | sha256sum | pigz -p{n} | sha256sum", *v[9:12]), (f"tar | sha256sum | zstd -3 -T{n} | sha256sum", *v[12:15])]
print(f"\nmedian of {v[19]} runs each")
print(f"{'':44}{'time':>9}{'MB/s':>9}{'peak RSS':>11}{'output':>12}")
for name, t, rss, size in rows:
    t, rss, size = float(t), int(rss), int(size)
    print(f"{name:44}{t:>8.2f}s{mb / t:>9.0f}{rss / 1024:>9.1f}MB{size / 1e6:>10.1f}MB")
g, z, pg, pz = float(v[0]), float(v[3]), float(v[9]), float(v[12])
ag, az = float(v[15]), float(v[16])
print(f"\npigz pipeline / nixoci gzip:          {pg / g:.2f}x   (goal >= 3)")
print(f"nixoci gzip size / pigz size:         {int(v[2]) / int(v[11]):.3f}   (goal <= 1.03)")
print(f"zstd pipeline / nixoci zstd:          {pz / z:.2f}x   (goal >= 2.5)")
print(f"nixoci gzip total / compressing alone: {g / ag:.2f}    (goal <= 1.1)")
print(f"nixoci zstd total / compressing alone: {z / az:.2f}")
print(f"nixoci gzip peak RSS, corpus + 1 GiB, + 2 GiB: {int(v[17]) / 1024:.1f} MB, {int(v[18]) / 1024:.1f} MB, ratio {int(v[18]) / int(v[17]):.2f}   (goal <= 100 MB, no growth)")
print("\nnixoci layer, gzip level (one run each):")
for i, l in enumerate([1, 4, 6, 9]):
    t, size = float(v[20 + 2 * i]), int(v[21 + 2 * i])
    print(f"  -{l}: {t:6.2f}s {mb / t:6.0f} MB/s {size / 1e6:8.1f}MB  ({size / int(v[11]):.3f}x pigz -6)")
PY

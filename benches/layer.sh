#!/usr/bin/env bash
# Layer benchmark: `nixoci layer` (gzip, zstd, none) against the shell
# pipeline Nix users write by hand, on a deterministic corpus that looks like
# a Nix closure, in one invocation on this machine.
#
#   bash benches/layer.sh            # ~500 MB corpus
#   bash benches/layer.sh --small    # ~60 MB, for a quick look
#
# Prints wall time, MB/s (of corpus), peak RSS, output size, and ratios:
# pipeline / nixoci, nixoci gzip size / pigz size, and nixoci's total time
# over its time compressing alone (a layer of the pre-made tar file: reading,
# hashing and compressing, with no tree to walk).
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=10
[ "${1:-}" = "--small" ] && SCALE=1
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
# Some large binaries: ~35 MB per scale unit, half random, half structured.
for b in range(scale):
    pkg = store(f"big{b}")
    os.makedirs(os.path.join(pkg, "lib"), exist_ok=True)
    with open(os.path.join(pkg, "lib", f"libbig{b}.so"), "wb") as fh:
        for _ in range(35):
            fh.write(rnd.randbytes(1 << 19))
            o = rnd.randint(0, len(text) - (1 << 19))
            fh.write(text[o:o + (1 << 19)])
PY
CORPUS_MB=$(du -sm --apparent-size "$W/corpus" | cut -f1)
FILES=$(find "$W/corpus" -type f | wc -l)
echo "corpus: $CORPUS_MB MB, $FILES files (with symlinks and hard links)"

printf '{"files":[{"source":"%s/corpus","destination":"/"}],"compression":"%%s"}' "$W" > "$W/spec.tmpl"
measure() { # NAME COMMAND... -> "seconds rss_kb"
  /usr/bin/time -f "%e %M" -o "$W/time" "$@" >/dev/null 2>&1
  cat "$W/time"
}
declare -A T R S
run_nixoci() { # COMPRESSION
  printf "$(cat "$W/spec.tmpl")" "$1" > "$W/spec-$1.json"
  rm -rf "$W/out-$1"
  read -r T[$1] R[$1] < <(measure "$NIXOCI" layer "$W/spec-$1.json" -o "$W/out-$1" -q)
  S[$1]=$(python3 -c "import json;print(json.load(open('$W/out-$1/layer.json'))['size'])")
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
read -r T[pigz] R[pigz] < <(measure bash -c 'pipeline pigz -nT -p2' )
S[pigz]=$(stat -c %s "$W/layer.tar.z")
read -r T[zstdcli] R[zstdcli] < <(measure bash -c 'pipeline zstd -3 -T2 -q' )
S[zstdcli]=$(stat -c %s "$W/layer.tar.z")

# Compressing alone: a layer whose only entry is the pre-made tar.
for c in gzip zstd; do
  printf '{"files":[{"source":"%s/layer.tar","destination":"/layer.tar"}],"compression":"%s"}' "$W" "$c" > "$W/alone-$c.json"
  rm -rf "$W/alone-$c"
  read -r T[alone-$c] R[alone-$c] < <(measure "$NIXOCI" layer "$W/alone-$c.json" -o "$W/alone-$c" -q)
done

python3 - "$CORPUS_MB" \
  "${T[gzip]}" "${R[gzip]}" "${S[gzip]}" "${T[zstd]}" "${R[zstd]}" "${S[zstd]}" "${T[none]}" "${R[none]}" "${S[none]}" \
  "${T[pigz]}" "${R[pigz]}" "${S[pigz]}" "${T[zstdcli]}" "${R[zstdcli]}" "${S[zstdcli]}" "${T[alone-gzip]}" "${T[alone-zstd]}" <<'PY'
import sys
mb = float(sys.argv[1]); v = sys.argv[2:]
rows = [("nixoci layer, gzip -6", *v[0:3]), ("nixoci layer, zstd -3", *v[3:6]), ("nixoci layer, none", *v[6:9]),
        ("tar | sha256sum | pigz -p2 | sha256sum", *v[9:12]), ("tar | sha256sum | zstd -3 -T2 | sha256sum", *v[12:15])]
print(f"\n{'':44}{'time':>9}{'MB/s':>9}{'peak RSS':>11}{'output':>12}")
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
PY

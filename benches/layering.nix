# The closure and the images of the layering benchmark (benches/layering.sh).
#
# A synthetic closure of 300 store paths, deterministic, made with busybox
# alone (no nixpkgs), so that it builds offline:
#
# - 299 libraries in a DAG, each depending only on libraries before it:
#   lib 0 (a libc) is used by nearly all, libs 1-7 by about a seventh each,
#   every other library by a few (up to three picked at random among those
#   before it);
# - an app on top, depending on every library nothing else uses;
# - sizes from a few KiB to tens of MiB: eight big libraries (12-60 MiB),
#   about 30 of 1-8 MiB, the rest 4 KiB to 1 MiB, about `sizeMB` in all;
# - the content of a package is pseudo-random hex digits, 40% of it in
#   16-digit tokens from a table of 64 (about 41% of it survives gzip -6,
#   as for machine code), seeded by its name and version,
#   cut in files of at most 1 MiB, plus a text file naming the store paths
#   of its dependencies (which makes them references, as in a real
#   package), plus a README;
# - every package carries `buildInputs` (its dependencies), as nixpkgs
#   packages do.
#
# `variant` changes it as the benchmark's scenarios need:
#   "base"  the closure as above;
#   "app"   a new version of the app only;
#   "lib"   a new version of one mid-level library (lib 87, used by five
#           others, directly or not); every package
#           depending on it, directly or not, is rebuilt with it (a new store
#           path: its dependency's path is in its bytes);
#   "dep"   the app depends on one more (new, small) library.
{
  tool,
  busybox,
  variant ? "base",
  sizeMB ? 500,
  # The budget of the popularity and stable images.
  maxLayers ? 100,
  # Goes into the names of the image derivations (not of the closure), so
  # that each run of the benchmark builds its images afresh.
  salt ? "",
  system ? "x86_64-linux",
}:
let
  nixoci = builtins.path { path = tool; name = "nixoci"; };
  lib = import ../nix { inherit nixoci; buildSystem = system; };
  bb = builtins.path { path = busybox; name = "busybox"; };

  count = 299;
  midLib = 87;

  hexDigit = {
    "0" = 0; "1" = 1; "2" = 2; "3" = 3; "4" = 4; "5" = 5; "6" = 6; "7" = 7;
    "8" = 8; "9" = 9; "a" = 10; "b" = 11; "c" = 12; "d" = 13; "e" = 14; "f" = 15;
  };
  # A deterministic number from 0 to n - 1 for a key.
  rnd =
    key: n:
    let
      h = builtins.hashString "sha256" key;
      v = builtins.foldl' (acc: i: acc * 16 + hexDigit.${builtins.substring i 1 h}) 0 (builtins.genList (i: i) 7);
    in
    v - (v / n) * n;

  names = [
    "libc" "gcc-lib" "zlib" "openssl" "ncurses" "readline" "libffi" "xz" "bzip2" "expat"
    "sqlite" "libxml2" "pcre2" "icu" "curl" "nghttp2" "libssh2" "krb5" "keyutils" "e2fsprogs"
    "llvm-libs" "libidn2" "libunistring" "gmp" "mpfr" "libedit" "attr" "acl" "libcap" "util-linux"
  ];
  nameOf = i: "${builtins.elemAt names (i - (i / 30) * 30)}${if i < 30 then "" else "-x${toString (i / 30)}"}";
  # lib midLib gets a new version in the "lib" variant.
  versionOf = i: "${toString (1 + rnd "major${toString i}" 4)}.${toString (rnd "minor${toString i}" 20)}.${
    toString (rnd "patch${toString i}" 10 + (if variant == "lib" && i == midLib then 1 else 0))
  }";

  # Size in KiB at 500 MB.
  bigKiB = {
    "0" = 30720; "2" = 12288; "20" = 61440; "45" = 46080;
    "90" = 40960; "130" = 25600; "200" = 35840; "260" = 20480;
  };
  fullKiB =
    i:
    bigKiB.${toString i} or (
      if rnd "medium${toString i}" 10 == 0 then
        1024 * (1 + rnd "msize${toString i}" 8)
      else
        builtins.elemAt [ 4 8 16 32 64 128 256 512 1024 ] (rnd "ssize${toString i}" 9)
    );
  scaled = kib: let s = kib * sizeMB / 500; in if s < 1 then 1 else s;

  # Dependencies of lib i: indices below i.
  depsOf =
    i:
    if i == 0 then
      [ ]
    else if i < 8 then
      [ 0 ]
    else
      let
        picks = builtins.genList (k: 8 + rnd "dep${toString i}-${toString k}" (i - 8)) (
          if i > 8 then rnd "ndeps${toString i}" 4 else 0
        );
        core = 1 + rnd "core${toString i}" 7;
      in
      [ 0 core ] ++ builtins.filter (j: j != core) (unique picks);
  unique = builtins.foldl' (acc: x: if builtins.elem x acc then acc else acc ++ [ x ]) [ ];

  used = builtins.foldl' (acc: i: acc // builtins.listToAttrs (map (j: { name = toString j; value = true; }) (depsOf i))) { } (
    builtins.genList (i: i) count
  );
  unused = builtins.filter (i: !(used ? ${toString i})) (builtins.genList (i: i) count);

  # A package: `kib` KiB of seeded hex digits in files of at most 1 MiB,
  # its dependencies' store paths, a README.
  package =
    { pname, version, kib, buildInputs }:
    derivation {
      name = "${pname}-${version}";
      inherit system buildInputs;
      builder = "${bb}/busybox";
      seed = toString (rnd "${pname}-${version}" 1000000007);
      lines = toString (kib * 64);
      args = [
        "sh"
        "-c"
        ''
          set -e
          export PATH=${bb}
          busybox mkdir -p $out/lib $out/nix-support $out/share/doc/${pname}
          busybox awk -v seed="$seed" -v lines="$lines" -v out="$out/lib/lib${pname}.so" 'BEGIN {
            srand(seed)
            for (k = 0; k < 64; k++) t[k] = sprintf("%04x%04x%04x%04x", rand() * 65536, rand() * 65536, rand() * 65536, rand() * 65536)
            for (i = 0; i < lines; i++) {
              if (i % 65536 == 0) { if (i) close(f); f = sprintf("%s.%03d", out, i / 65536) }
              if (rand() < 0.4) printf "%s", t[int(rand() * 64)] > f
              else printf "%04x%04x%04x%04x", rand() * 65536, rand() * 65536, rand() * 65536, rand() * 65536 > f
            }
          }'
          for d in $buildInputs; do echo "$d" >> $out/nix-support/propagated-build-inputs; done
          echo "${pname} ${version}: a package of the layering benchmark" > $out/share/doc/${pname}/README
        ''
      ];
    };

  libs = builtins.genList (
    i:
    package {
      pname = nameOf i;
      version = versionOf i;
      kib = scaled (fullKiB i);
      buildInputs = map (j: builtins.elemAt libs j) (depsOf i);
    }
  ) count;

  newDep = package {
    pname = "libnew";
    version = "1.0.0";
    kib = scaled 256;
    buildInputs = [ (builtins.elemAt libs 0) ];
  };

  app = package {
    pname = "app";
    version = if variant == "app" then "2.0.1" else "2.0.0";
    kib = scaled 5120;
    buildInputs = [ (builtins.elemAt libs 0) (builtins.elemAt libs 1) ] ++ map (j: builtins.elemAt libs j) unused
      ++ (if variant == "dep" then [ newDep ] else [ ]);
  };

  config.Cmd = [ "/bin/true" ];
  image =
    layers:
    lib.ociImageLayout {
      name = "bench${salt}";
      manifests = [ (lib.ociImageManifest { name = "bench-manifest${salt}"; inherit layers config; }) ];
    };
in
{
  inherit app;
  # The strategies: one layer (what ociImage does without maxLayers), the
  # popularity and stable plans in `maxLayers` layers (100 by default).
  one = image [ (lib.ociLayerTar { name = "bench-layer${salt}"; files = [ { source = app; } ]; }) ];
  popularity = image [
    (lib.ociLayers { name = "bench-layers${salt}"; roots = [ app ]; inherit maxLayers; strategy = "popularity"; })
  ];
  stable = image [ (lib.ociLayers { name = "bench-layers${salt}"; roots = [ app ]; inherit maxLayers; }) ];
}

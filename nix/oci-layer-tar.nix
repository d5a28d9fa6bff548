{ common }:
let
  inherit (common)
    checkBool
    checkFromImage
    checkLevel
    checkList
    checkName
    checkOneOf
    checkRemove
    mkStep
    normaliseFiles
    storeRoot
    ;
in
/**
  One image layer: a reproducible tar of files and store paths, compressed,
  with its descriptor. The result is a directory holding
  `blobs/sha256/<digest>` and `layer.json` (descriptor, diff_id, and the
  store paths the layer holds, written so that Nix does not record them as
  references of the layer: see the README, "Outputs of the building
  blocks").

  # Inputs

  `name` (string, default `"oci-layer"`)
  : Name of the derivation.

  `files` (list of attrsets, default `[]`)
  : What goes in. Each `{ source, destination?, mode?, uid?, gid? }`:
    `{ source = nginx; }` keeps the store path at its own path;
    `{ source = bash; destination = "/bin/bash"; }` puts a package's main
    program (`meta.mainProgram`) there when the destination does not end in
    `/`; a package without one (a derivation with `pname` or several
    outputs) is refused there: write `destination = "/bin/hello/"` to copy
    its contents, or `source = "${hello}/bin/hello"` for one file. A string
    source is an absolute path (a store path). A destination is absolute,
    normalised (no empty, `.` or `..` component, none over 255 bytes), and
    no component is named like an OCI whiteout (`.wh.NAME`); without one,
    the source's own path must be such a path.
    Otherwise a file (or single-file derivation, such as `writeText`'s)
    lands at `destination`, a directory's contents are merged under it, a
    symlink stays a symlink. `mode` is an octal string (at most `"07777"`),
    `uid` and `gid` integers from 0 to 4294967295. `link = true` (with a
    destination, for a store path) puts symbolic links to the source's
    files there instead of copies, as a Nix profile does.

  `compression` (`"gzip"` | `"zstd"` | `"none"`, default `"gzip"`)
  : Layer compression.

  `level` (int or null)
  : Compression level (gzip 1-9, default 6; zstd 1-19, default 3).

  `includeClosure` (bool, default `true`)
  : Add the runtime closure of every store path used, each at its own path.

  `base` (list of `ociLayerTar` or `ociLayers` results, default `[]`)
  : Layers below this one: store paths they hold are left out.

  `remove` (list of absolute paths, default `[]`)
  : Paths of the layers below to delete, written as OCI whiteouts
    (`.wh.NAME`). Onto `fromImage`, each must be there; the layer may not
    also put something there.

  `fromImage`, `fromImageTag` (default null), `baseSymlinks` (default `"error"`)
  : The base image this layer goes on (as for `ociImageConfig`): the store
    paths it holds are left out; parent directories the layer needs take
    the base's mode and owner (so `/tmp` stays 1777); with `baseSymlinks =
    "follow"`, paths are placed through the base's symbolic links
    (`/bin/x` into `/usr/bin/x` when the base has `/bin -> usr/bin`).

  # Type

  ```
  ociLayerTar :: { name? :: String; files? :: [AttrSet]; compression? :: String; includeClosure? :: Bool; base? :: [Derivation]; } -> Derivation
  ```

  # Examples

  ```nix
  ociLayerTar {
    files = [
      { source = pkgs.bash; destination = "/bin/bash"; }
      { source = ./config.json; destination = "/etc/app/config.json"; mode = "0444"; }
    ];
    base = [ nginxLayer ];
  }
  ```
*/
{
  name ? "oci-layer",
  files ? [ ],
  compression ? "gzip",
  level ? null,
  includeClosure ? true,
  base ? [ ],
  remove ? [ ],
  fromImage ? null,
  fromImageTag ? null,
  # From a multi-platform base, which image (OS/ARCH[/VARIANT]; default:
  # the build machine's Linux); ociImage passes its own platform.
  fromImagePlatform ? null,
  baseSymlinks ? "error",
}:
let
  from = checkFromImage "ociLayerTar" fromImage fromImageTag baseSymlinks;
  normalised = normaliseFiles "ociLayerTar" files;
  roots = builtins.filter (r: r != null) (map (f: storeRoot f.source) normalised);
  baseDirs = map (
    l:
    if builtins.elem (l.command or null) [ "layer" "layers" ] then
      "${l}"
    else
      throw "ociLayerTar: base must list ociLayerTar results (or ociLayers results)"
  ) (checkList "ociLayerTar: base" base);
  compression' = checkOneOf "ociLayerTar: compression" [ "gzip" "zstd" "none" ] compression;
  withClosure = checkBool "ociLayerTar: includeClosure" includeClosure;
in
mkStep {
  name = checkName "ociLayerTar: name" name;
  command = "layer";
  spec =
    {
      files = normalised;
      compression = compression';
      base = baseDirs;
    }
    // (
      if from == null then
        { }
      else
        { fromImage = from // (if fromImagePlatform == null then { } else { platform = fromImagePlatform; }); }
    )
    // (if remove == [ ] then { } else { remove = checkRemove "ociLayerTar: remove" remove; })
    // (if level == null then { } else { level = checkLevel "ociLayerTar: level" compression' level; })
    // (if withClosure then { closure = { file = ".attrs.json"; attr = "closure"; }; } else { });
  closure = if withClosure then roots else null;
  parts = base ++ [ fromImage ];
}

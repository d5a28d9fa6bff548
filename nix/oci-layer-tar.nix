{ common }:
let
  inherit (common) checkAttrs checkOneOf dropNulls mkStep storeRoot;

  fileAttrs = [ "source" "destination" "mode" "uid" "gid" ];

  endsWithSlash = s: builtins.match ".*/" s != null;

  # One `files` entry as the tool takes it: the source as a string (a
  # package with meta.mainProgram, put at a destination that does not end in
  # "/", means its main program), destination and mode checked.
  normaliseFile =
    i: f:
    let
      what = "ociLayerTar: files[${toString i}]";
      checked = checkAttrs what fileAttrs (
        if builtins.isAttrs f && !(f ? outPath) then f else throw "${what}: expected { source, destination?, mode?, uid?, gid? }"
      );
      dest = checked.destination or null;
      mainProgram = checked.source.meta.mainProgram or null;
      source =
        if !(checked ? source) then
          throw "${what}: source is required"
        else if builtins.isAttrs checked.source && mainProgram != null && dest != null && !(endsWithSlash dest) then
          "${checked.source}/bin/${mainProgram}"
        else
          "${checked.source}";
    in
    dropNulls {
      inherit source;
      destination =
        if dest == null || (builtins.isString dest && builtins.substring 0 1 dest == "/") then
          dest
        else
          throw "${what}: destination ${builtins.toJSON dest} must be an absolute path (start with /)";
      mode =
        if !(checked ? mode) || builtins.isString checked.mode then
          checked.mode or null
        else
          throw "${what}: mode must be an octal string like \"0755\" (a Nix integer would be read as decimal)";
      uid = checked.uid or null;
      gid = checked.gid or null;
    };
in
/**
  One image layer: a reproducible tar of files and store paths, compressed,
  with its descriptor. The result is a directory holding
  `blobs/sha256/<digest>` and `layer.json` (descriptor, diff_id, and the
  store paths the layer holds).

  # Inputs

  `name` (string, default `"oci-layer"`)
  : Name of the derivation.

  `files` (list of attrsets, default `[]`)
  : What goes in. Each `{ source, destination?, mode?, uid?, gid? }`:
    `{ source = nginx; }` keeps the store path at its own path;
    `{ source = bash; destination = "/bin/bash"; }` puts a package's main
    program (`meta.mainProgram`) there when the destination does not end in
    `/`; otherwise a file lands at `destination`, a directory's contents are
    merged under it, a symlink stays a symlink. `mode` is an octal string.

  `compression` (`"gzip"` | `"zstd"` | `"none"`, default `"gzip"`)
  : Layer compression.

  `level` (int or null)
  : Compression level (gzip 1-9, default 6; zstd 1-19, default 3).

  `includeClosure` (bool, default `true`)
  : Add the runtime closure of every store path used, each at its own path.

  `base` (list of `ociLayerTar` results, default `[]`)
  : Layers below this one: store paths they hold are left out.

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
}:
let
  normalised = builtins.genList (i: normaliseFile i (builtins.elemAt files i)) (builtins.length files);
  roots = builtins.filter (r: r != null) (map (f: storeRoot f.source) normalised);
  baseDirs = map (
    l: if (l.command or null) == "layer" then "${l}" else throw "ociLayerTar: base must list ociLayerTar results"
  ) base;
in
mkStep {
  inherit name;
  command = "layer";
  spec =
    {
      files = normalised;
      compression = checkOneOf "ociLayerTar: compression" [ "gzip" "zstd" "none" ] compression;
      base = baseDirs;
    }
    // (if level == null then { } else { inherit level; })
    // (if includeClosure then { closure = { file = ".attrs.json"; attr = "closure"; }; } else { });
  closure = if includeClosure then roots else null;
}

{ common }:
let
  inherit (common)
    checkList
    checkName
    checkOneOf
    checkSource
    mkStep
    ;
in
/**
  The runtime closure of `roots`, split automatically into at most
  `maxLayers` layers, all built by one step (in parallel). The result is a
  directory holding `blobs/sha256/…` and `layers.json` (each layer's
  descriptor and store paths, and the plan: which store paths went into
  which layer, with their sizes, and why). Give it to `ociImageManifest` (or
  `ociImage`) in `layers`, with or among `ociLayerTar` results; as `base`
  of another layer, its store paths are left out there.

  Any change to the closure rebuilds this one step (every layer is written
  again), but a layer whose store paths did not change comes out
  byte-identical, so a push sends only the layers that changed. See
  docs/layering.md, "Automatic layering".

  # Inputs

  `name` (string, default `"oci-layers"`)
  : Name of the derivation.

  `roots` (list of packages or store paths)
  : Their runtime closure is what the layers hold, each store path at its
    own path.

  `maxLayers` (int, 1 to 127, default 100)
  : The most layers this makes. Overlay file systems refuse more than
    about 127 layers in an image: count the image's other layers too.

  `strategy` (`"stable"` | `"popularity"`, default `"stable"`)
  : How store paths are grouped (docs/layering.md):
    `popularity` groups as nixpkgs' dockerTools does; `stable` keeps each
    store path's layer independent of unrelated paths.

  `base` (list of `ociLayerTar` or `ociLayers` results, default `[]`)
  : Layers below these: store paths they hold are left out.

  `fromImage`, `fromImageTag` (default null)
  : A base image: the store paths it holds are left out.

  `budgetIncludesBase` (`"strict"` | `"atLeastOne"` | null, default null)
  : With `fromImage`: `maxLayers` counts the base image's layers too,
    which only the build knows (no import-from-derivation); when they
    leave none for the closure, `"strict"` fails the build and
    `"atLeastOne"` puts the closure in one layer. `ociImage` uses it.

  `copied` (list of store paths, default `[]`)
  : Roots whose files the image copies to destinations elsewhere
    (`ociImage` passes those of its `files`): each is left out, its
    references kept, unless it or another path of the closure refers to
    it.

  `perms` (list of `{ path; regex; mode?; uid?; gid?; }`, default `[]`)
  : Set the mode (an octal string) and owner of entries of the layers,
    store paths included, as `ociLayerTar`'s `perms` do: the entries at or
    under `path` whose full path in the image the `regex` matches whole
    (`{ path = "${app}"; regex = ".+/var(/.+)?"; mode = "0775"; uid = 1000;
    gid = 1000; }`). Each rule applies to every layer; one that matches in
    none of them, or two that set one entry differently, fail the build.

  `compression`, `level`
  : As in `ociLayerTar`, for every layer.

  # Type

  ```
  ociLayers :: { name? :: String; roots :: [Derivation]; maxLayers? :: Int; strategy? :: String; base? :: [Derivation]; perms? :: [AttrSet]; compression? :: String; level? :: Int; } -> Derivation
  ```

  # Examples

  ```nix
  ociLayers {
    roots = [ pkgs.nginx pkgs.bash ];
    maxLayers = 60;
  }
  ```
*/
{
  name ? "oci-layers",
  roots,
  maxLayers ? 100,
  strategy ? "stable",
  base ? [ ],
  compression ? "gzip",
  level ? null,
  fromImage ? null,
  fromImageTag ? null,
  # From a multi-platform base, which image (OS/ARCH[/VARIANT]; default:
  # the build machine's Linux); ociImage passes its own platform.
  fromImagePlatform ? null,
  budgetIncludesBase ? null,
  copied ? [ ],
  perms ? [ ],
}:
let
  fn = "ociLayers";
  from = common.checkFromImage fn fromImage fromImageTag "error";
  roots' =
    let
      l = checkList "${fn}: roots" roots;
    in
    if l == [ ] then
      throw "${fn}: roots is empty: give the packages whose runtime closure the layers hold"
    else
      builtins.genList (i: "${checkSource "${fn}: roots[${toString i}]" (builtins.elemAt l i)}") (
        builtins.length l
      );
  maxLayers' =
    if !builtins.isInt maxLayers then
      throw "${fn}: maxLayers must be an integer, not ${builtins.typeOf maxLayers}"
    else if maxLayers < 1 || maxLayers > 127 then
      throw "${fn}: maxLayers is ${toString maxLayers}: it must be from 1 to 127 (overlay file systems refuse more than about 127 layers)"
    else
      maxLayers;
  compression' = checkOneOf "${fn}: compression" [ "gzip" "zstd" "none" ] compression;
in
mkStep {
  name = checkName "${fn}: name" name;
  command = "layers";
  spec =
    {
      graph = {
        file = ".attrs.json";
        attr = "closure";
      };
      maxLayers = maxLayers';
      strategy = checkOneOf "${fn}: strategy" [ "stable" "popularity" ] strategy;
      base = common.checkLayers "${fn}: base" base;
      compression = compression';
    }
    // (
      if from == null then
        { }
      else
        { fromImage = from // (if fromImagePlatform == null then { } else { platform = fromImagePlatform; }); }
    )
    // (
      if budgetIncludesBase == null then
        { }
      else if from == null then
        throw "${fn}: budgetIncludesBase goes with fromImage"
      else
        { budgetIncludesBase = checkOneOf "${fn}: budgetIncludesBase" [ "strict" "atLeastOne" ] budgetIncludesBase; }
    )
    // (if level == null then { } else { level = common.checkLevel "${fn}: level" compression' level; })
    // (
      if copied == [ ] then
        { }
      else
        {
          copied = builtins.genList (i: "${checkSource "${fn}: copied[${toString i}]" (builtins.elemAt copied i)}") (
            builtins.length (checkList "${fn}: copied" copied)
          );
        }
    )
    # Only when given: a spec without rules is the spec it always was.
    // (if perms == [ ] then { } else { perms = common.normalisePerms fn perms; });
  closure = roots';
  parts = base ++ [ fromImage ];
}

{
  common,
  ociLayerTar,
  ociImageManifest,
  ociImageLayout,
}:
/**
  A whole image in one call, for when layers are not worth thinking about:
  the packages in `contents` are merged at `/` (like a profile), `files`
  placed as in `ociLayerTar`, all in one layer over the optional prebuilt
  `layers`, and the runtime closure included. The result is an OCI image
  layout; `.manifest` and `.layers` give the parts.

  # Inputs

  `name` (string)
  : Name of the image (and of the derivation).

  `tag` (string, default `"latest"`), `tags` (list, default `[ tag ]`)
  : Tags in the layout.

  `contents` (list of packages, default `[]`)
  : Each merged at `/` (its `bin/` becomes `/bin/`, ...). At least one of
    `contents`, `files` and `layers` is given.

  `files` (list, default `[]`)
  : As in `ociLayerTar`.

  `layers` (list of `ociLayerTar` results, default `[]`)
  : Prebuilt layers below the image's own; their store paths are not
    repeated.

  `config`, `extraConfig`, `annotations`, `architecture`, `os`, `variant`, `created`
  : As in `ociImageManifest`.

  `compression` (default `"gzip"`), `includeClosure` (default `true`)
  : As in `ociLayerTar`.

  # Type

  ```
  ociImage :: { name :: String; tag? :: String; contents? :: [Derivation]; files? :: [AttrSet]; config? :: AttrSet; ... } -> Derivation
  ```

  # Examples

  ```nix
  ociImage {
    name = "hello";
    contents = [ pkgs.hello ];
    config.Cmd = [ "/bin/hello" ];
  }
  ```
*/
{
  name,
  tag ? "latest",
  tags ? [ tag ],
  contents ? [ ],
  files ? [ ],
  layers ? [ ],
  config ? { },
  extraConfig ? { },
  annotations ? { },
  compression ? "gzip",
  includeClosure ? true,
  architecture ? null,
  os ? null,
  variant ? null,
  created ? null,
}:
let
  fn = "ociImage";
  # Checked here, so that a message names this function and its attribute
  # rather than the function it is passed on to.
  checks = [
    (common.checkName "${fn}: name" name)
    (common.checkTag "${fn}: tag" tag)
    (common.checkTags "${fn}: tags" tags)
    (
      let
        l = common.checkList "${fn}: contents" contents;
      in
      builtins.genList (i: "${common.checkSource "${fn}: contents[${toString i}]" (builtins.elemAt l i)}") (builtins.length l)
    )
    (common.normaliseFiles fn files)
    (common.checkLayers "${fn}: layers" layers)
    (common.checkStringAttrs "${fn}: annotations" annotations)
    (common.checkOneOf "${fn}: compression" [ "gzip" "zstd" "none" ] compression)
    (common.checkBool "${fn}: includeClosure" includeClosure)
    (common.checkConfigArgs fn { inherit config extraConfig architecture os variant created; })
  ];
  own = ociLayerTar {
    name = "${name}-layer";
    files = map (c: { source = c; destination = "/"; }) contents ++ files;
    inherit compression includeClosure;
    base = layers;
  };
  allLayers =
    if layers == [ ] && contents == [ ] && files == [ ] then
      throw "${fn}: give contents, files or layers: an image needs at least one layer"
    else
      layers ++ (if contents == [ ] && files == [ ] then [ ] else [ own ]);
  # Unset platform fields keep ociImageManifest's defaults.
  platform = common.dropNulls { inherit architecture os variant; };
  manifest = ociImageManifest (
    {
      name = "${name}-manifest";
      layers = allLayers;
      inherit config extraConfig annotations created;
    }
    // platform
  );
  layout = ociImageLayout {
    inherit name tags;
    manifests = [ manifest ];
  };
in
builtins.deepSeq checks (
  layout
  // {
    inherit manifest;
    layers = allLayers;
  }
)

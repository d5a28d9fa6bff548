{ common, ociImageConfig }:
let
  inherit (common)
    checkConfigArgs
    checkDoc
    checkExtra
    checkFromImage
    checkImageLayers
    checkLayers
    checkName
    checkStringAttrs
    doc
    dropNulls
    hostPlatform
    mkStep
    ;
  fn = "ociImageManifest";
in
/**
  An image manifest: the config (made here from `layers` and the config
  settings, or an `ociImageConfig` result) and its layers, for one platform.
  The result is a directory holding the config and manifest blobs and
  `manifest.json`; layer blobs stay in their layer outputs.

  # Inputs

  `layers` (list of `ociLayerTar` results)
  : Bottom first; at least one. Not given when `imageConfig` is.

  `config`, `extraConfig`, `architecture`, `os`, `variant`, `created`, `author`
  : As for `ociImageConfig`.

  `fromImage`, `fromImageTag`, `baseSymlinks`
  : As for `ociImageConfig`: the base image.

  `imageConfig` (an `ociImageConfig` result, or null)
  : Use this config (and its layers) instead.

  `annotations` (attrset of strings, default `{}`)
  : Manifest annotations.

  `source`, `revision`, `version` (strings or null), `self` (a flake's `self`, or null)
  : Where the image came from, as annotations:
    `org.opencontainers.image.source`, `.revision` (default: `self.rev`,
    or `self.dirtyRev`), `.version`, and `.created` (from
    `self.lastModifiedDate`, never the wall clock). `annotations` given
    explicitly win. Without `created`, the config's `created` is
    `self.lastModifiedDate` too.

  `extraManifest` (attrset, default `{}`)
  : Merged last into the manifest document (e.g. `artifactType`, `subject`).
    Checked at evaluation as the tool checks it: `artifactType` a string,
    `subject` a descriptor (`mediaType`, `digest`, `size`), `annotations`
    strings.

  # Type

  ```
  ociImageManifest :: { layers? :: [Derivation]; config? :: AttrSet; extraConfig? :: AttrSet; extraManifest? :: AttrSet; ... } -> Derivation
  ```

  # Examples

  ```nix
  ociImageManifest {
    layers = [ baseLayer appLayer ];
    config.Cmd = [ "/bin/app" ];
    annotations."org.opencontainers.image.source" = "https://example.org/app";
  }
  ```
*/
{
  name ? "oci-image-manifest",
  layers ? [ ],
  config ? { },
  extraConfig ? { },
  extraManifest ? { },
  annotations ? { },
  imageConfig ? null,
  architecture ? hostPlatform.architecture,
  os ? hostPlatform.os,
  variant ? hostPlatform.variant or null,
  created ? null,
  author ? null,
  fromImage ? null,
  fromImageTag ? null,
  baseSymlinks ? "error",
  source ? null,
  revision ? null,
  version ? null,
  self ? null,
}:
let
  origin = common.provenance fn { inherit source revision version self; };
  # The config's time: as given, else the flake's lastModifiedDate.
  created' = if created != null then created else origin."org.opencontainers.image.created" or null;
  cfg =
    if imageConfig == null then
      # Checked here first, so that a message names this function.
      builtins.seq (checkConfigArgs fn { inherit config extraConfig architecture os variant author; created = created'; })
        (builtins.deepSeq (
          if checkFromImage fn fromImage fromImageTag baseSymlinks == null then
            checkImageLayers "${fn}: layers" layers
          else
            checkLayers "${fn}: layers" layers
        ) (ociImageConfig {
          name = "${name}-config";
          inherit layers config extraConfig architecture os variant author fromImage fromImageTag baseSymlinks;
          created = created';
        }))
    else if layers != [ ] || config != { } || extraConfig != { } || fromImage != null then
      throw "${fn}: give layers, config settings and fromImage to ociImageConfig when imageConfig is set"
    else if (imageConfig.command or null) != "config" then
      throw "${fn}: imageConfig must be an ociImageConfig result"
    else
      imageConfig;
in
mkStep {
  name = checkName "${fn}: name" name;
  command = "manifest";
  spec = dropNulls {
    imageConfig = "${cfg}";
    annotations = origin // checkStringAttrs "${fn}: annotations" annotations;
    extraManifest =
      if extraManifest == { } then
        null
      else
        checkDoc "${fn}: extraManifest" doc.extraManifest (
          checkExtra "${fn}: extraManifest" [ "schemaVersion" "mediaType" "config" "layers" ] extraManifest
        );
  };
  parts = [ cfg ];
}
// {
  # The platform of its config, for ociImageLayout and ociImageArchive
  # (null when known only at build time).
  platform = cfg.platform or null;
}

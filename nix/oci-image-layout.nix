{ common, ociImageArchive }:
let
  inherit (common)
    checkBool
    checkExtra
    checkList
    checkStringAttrs
    checkTags
    mkStep
    ;
in
/**
  An OCI image layout directory (`oci-layout`, `index.json`, `blobs/`), what
  `podman`, `skopeo` and `crane push` read. One manifest: the tags name it.
  Several (one per platform): they form an image index, which the tags name.
  `index.json` always holds that one image, so `crane push result REF` and
  `podman load -i` take it whatever the tags and platforms.

  # Inputs

  `name` (string, default `"oci-image"`)
  : Name of the derivation.

  `manifests` (list of `ociImageManifest` results)
  : One per platform.

  `tag` (string, default `"latest"`), `tags` (list, default `[ tag ]`)
  : The image's names. The first is its `org.opencontainers.image.ref.name`
    (what skopeo, podman and umoci look up); all are recorded in the
    `dev.nixoci.image.tags` annotation, and `nixoci push result REPO` sets
    them all.

  `annotations` (attrset, default `{}`)
  : Annotations of the image index (several manifests only).

  `extraIndex` (attrset, default `{}`)
  : Merged last into `index.json`.

  The result also has `.archive` (an OCI archive) and `.dockerArchive` (the
  `docker save` format), files for `podman load -i`.

  `platformTags` (bool, default `false`)
  : With several manifests, also name each one `TAG-OS-ARCH[-VARIANT]`
    (e.g. `latest-linux-arm64-v8`): `nixoci push` sets these tags too, and
    `nixoci archive result:latest-linux-arm64-v8` gives that platform alone
    for tools that cannot pick one from an index (umoci 0.4).

  # Type

  ```
  ociImageLayout :: { manifests :: [Derivation]; tag? :: String; tags? :: [String]; extraIndex? :: AttrSet; ... } -> Derivation
  ```

  # Examples

  ```nix
  ociImageLayout { manifests = [ amd64Manifest arm64Manifest ]; tags = [ "1.0" "latest" ]; }
  ```
*/
{
  name ? "oci-image",
  manifests,
  tag ? "latest",
  tags ? [ tag ],
  annotations ? { },
  extraIndex ? { },
  platformTags ? false,
}:
let
  layout = mkStep {
    inherit name;
    command = "layout";
    spec = {
      manifests = map (
        m:
        if (m.command or null) == "manifest" then "${m}" else throw "ociImageLayout: manifests must list ociImageManifest results"
      ) (checkList "ociImageLayout: manifests" manifests);
      tags = builtins.seq (common.checkTag "ociImageLayout: tag" tag) (checkTags "ociImageLayout: tags" tags);
      annotations = checkStringAttrs "ociImageLayout: annotations" annotations;
      platformTags = checkBool "ociImageLayout: platformTags" platformTags;
    } // (if extraIndex == { } then { } else { extraIndex = checkExtra "ociImageLayout: extraIndex" [ "schemaVersion" "mediaType" "manifests" ] extraIndex; });
  };
in
layout
// {
  archive = ociImageArchive { image = layout; };
  dockerArchive = ociImageArchive {
    image = layout;
    format = "docker";
  };
}

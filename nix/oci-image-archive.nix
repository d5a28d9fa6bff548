{ common }:
let
  inherit (common)
    checkImageName
    checkNullOr
    checkOneOf
    checkTag
    describe
    dropNulls
    mkStep
    ;
in
/**
  An image as one file for `podman load -i` / `docker load -i`: the OCI
  layout as a tar (`format = "oci"`), or the `docker save` format
  (`format = "docker"`, one platform). Bytes are deterministic.
  `ociImageLayout` results carry `.archive` and `.dockerArchive` made with
  this.

  # Inputs

  `image` (an `ociImageLayout` or `ociImage` result)
  : The layout (or another derivation whose output is an OCI image
    layout; a layer, config or manifest step is refused).

  `format` (`"oci"` | `"docker"`, default `"oci"`)
  : The archive format.

  `tag` (string or null)
  : Which image of the layout, when it names several: one of its tags or
    platform tags (`.imageNames`; checked at evaluation for a layout made
    with these functions, at build time for any other).

  `imageName` (string or null)
  : `NAME[:TAG]` the loaded image gets (default: the layout's name and
    tag): an image reference such as `myapp`, `myapp:dev` or
    `registry.example.org/team/app:1.0` (lower-case repository), not a
    digest.

  # Type

  ```
  ociImageArchive :: { image :: Derivation; format? :: String; tag? :: String; imageName? :: String; } -> Derivation
  ```

  # Examples

  ```nix
  ociImageArchive { image = myImage; format = "docker"; imageName = "myapp:dev"; }
  ```
*/
{
  image,
  format ? "oci",
  tag ? null,
  imageName ? null,
}:
let
  fn = "ociImageArchive";
  step = image.command or null;
  layout =
    if !(builtins.isAttrs image && image ? outPath) then
      throw "${fn}: image must be an ociImageLayout or ociImage result, not ${describe image}"
    else if step != null && step != "layout" then
      throw "${fn}: image must be an ociImageLayout or ociImage result (an OCI image layout), not the ${step} step ${image.name or ""}; give the ociImageLayout made from it"
    else
      image;
  # The names a layout made here gives its image are known at evaluation;
  # another derivation's (or one whose platform tags need the build) are
  # checked by the tool at build time.
  names = if step == "layout" then image.imageNames or null else null;
  tag' =
    if tag == null || names == null || builtins.elem (checkTag "${fn}: tag" tag) names then
      checkNullOr checkTag "${fn}: tag" tag
    else
      throw "${fn}: tag ${builtins.toJSON tag} is not a name of image ${image.name}; its names: ${builtins.concatStringsSep ", " names}";
in
mkStep {
  name = "${layout.name or "oci-image"}-${checkOneOf "${fn}: format" [ "oci" "docker" ] format}.tar";
  command = "archive";
  spec = dropNulls {
    layout = "${layout}";
    inherit format;
    tag = tag';
    name = checkNullOr checkImageName "${fn}: imageName" imageName;
  };
}

{ common }:
let
  inherit (common)
    checkNullOr
    checkOneOf
    checkString
    checkTag
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
  : The layout.

  `format` (`"oci"` | `"docker"`, default `"oci"`)
  : The archive format.

  `tag` (string or null)
  : Which image of the layout, when it names several.

  `imageName` (string or null)
  : `NAME[:TAG]` the loaded image gets (default: the layout's name and tag).

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
mkStep {
  name = "${image.name or "oci-image"}-${checkOneOf "ociImageArchive: format" [ "oci" "docker" ] format}.tar";
  command = "archive";
  spec = dropNulls {
    layout =
      if builtins.isAttrs image && image ? outPath then
        "${image}"
      else
        throw "ociImageArchive: image must be an ociImageLayout or ociImage result, not ${common.describe image}";
    inherit format;
    tag = checkNullOr checkTag "ociImageArchive: tag" tag;
    name = checkNullOr checkString "ociImageArchive: imageName" imageName;
  };
}

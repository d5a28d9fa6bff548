{ common }:
let
  inherit (common)
    checkConfigArgs
    checkFromImage
    checkImageLayers
    checkLayers
    checkName
    platformOfConfig
    dropNulls
    hostPlatform
    mkStep
    ;
  fn = "ociImageConfig";
in
/**
  The image config over some layers: the container settings (entrypoint,
  environment, ...), the platform, and the layers' diff_ids. The result is a
  directory holding the config blob and `config.json` (its descriptor, the
  platform, the layers).

  # Inputs

  `layers` (list of `ociLayerTar` results)
  : Bottom first; at least one, unless `fromImage` is given.

  `fromImage` (an image, or null)
  : The base image: an `ociPullImage`, `ociImageLayout` or `ociImage`
    result, a layout directory, or an image archive such as dockerTools'
    `buildImage` makes. Its layers go first, byte for byte; its config is
    inherited (docs/base-images.md, "Building on a base image", has the rules); its
    platform must be the image's; the manifest records it
    (`org.opencontainers.image.base.name`, `.base.digest`). Every layer is
    checked at build time against the base's files: a directory over one
    of its symbolic links (`/bin` over `/bin -> usr/bin`), a file over one
    of its directories, anything placed through one of its links, are
    errors.

  `fromImageTag` (string or null)
  : Which image of `fromImage`, when it holds several.

  `baseSymlinks` (`"error"` | `"follow"`, default `"error"`)
  : With `"follow"`, layers built with this base (`ociImage`'s own, or an
    `ociLayerTar` given `fromImage`) are placed through the base's symbolic
    links (`/bin/x` into `/usr/bin/x`); here it only reaches the check.

  `config` (attrset, default `{}`)
  : The OCI `config` object, with OCI field names: `Entrypoint`, `Cmd`,
    `Env`, `WorkingDir`, `User`, `ExposedPorts`, `Volumes`, `Labels`,
    `StopSignal`.

  `extraConfig` (attrset, default `{}`)
  : Merged last into the config document: any other OCI config field
    (`config.Healthcheck`, `history`, ...). The fields the image spec gives
    a type are checked at evaluation as the tool checks them: times are
    RFC 3339 with an upper-case `T` and `Z` and no leap second, Healthcheck
    durations integers (nanoseconds), `Env` entries `NAME=VALUE`;
    `architecture` and `os` may be replaced, not unset; `rootfs` is
    nixoci's.

  `architecture`, `os`, `variant`
  : Default: from the system the images are for (`x86_64-linux` gives
    `amd64`/`linux`, `aarch64-linux` gives `arm64`/`linux`/`v8`, ...).

  `created`, `author` (strings or null)
  : `created` is `"now"` (the time of the build, as dockerTools takes it:
    impure, so the image is not reproducible; prefer a flake's `self`),
    or an RFC 3339 time as Go reads it (`2024-01-31T12:00:00Z`,
    `2024-01-01T00:00:00.5+02:00`: upper-case `T` and `Z`, seconds 00-59);
    it defaults to 1970-01-01T00:00:01Z.

  # Type

  ```
  ociImageConfig :: { layers :: [Derivation]; config? :: AttrSet; extraConfig? :: AttrSet; fromImage? :: Derivation; ... } -> Derivation
  ```

  # Examples

  ```nix
  ociImageConfig {
    layers = [ appLayer ];
    config = { Entrypoint = [ "/bin/app" ]; Env = [ "PORT=8080" ]; };
  }
  ```
*/
{
  name ? "oci-image-config",
  layers ? [ ],
  config ? { },
  extraConfig ? { },
  architecture ? hostPlatform.architecture,
  os ? hostPlatform.os,
  variant ? hostPlatform.variant or null,
  created ? null,
  author ? null,
  fromImage ? null,
  fromImageTag ? null,
  baseSymlinks ? "error",
}:
let
  args = checkConfigArgs fn {
    inherit config extraConfig architecture os variant created author;
  };
  from = checkFromImage fn fromImage fromImageTag baseSymlinks;
in
mkStep {
  name = checkName "${fn}: name" name;
  command = "config";
  spec = dropNulls {
    layers = if from == null then checkImageLayers "${fn}: layers" layers else checkLayers "${fn}: layers" layers;
    fromImage = from;
    inherit (args) architecture os variant created author config;
    extraConfig = if args.extraConfig == { } then null else args.extraConfig;
  };
  parts = layers ++ [ fromImage ];
}
// {
  # Known at evaluation, so that ociImageLayout can check its manifests'
  # platforms and ociImageArchive its tag (null: known only at build time).
  platform = platformOfConfig args;
}

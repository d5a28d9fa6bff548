{ common }:
let
  inherit (common)
    checkConfigArgs
    checkImageLayers
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
  : Bottom first; at least one.

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
  : `created` is an RFC 3339 time as Go reads it (`2024-01-31T12:00:00Z`,
    `2024-01-01T00:00:00.5+02:00`: upper-case `T` and `Z`, seconds 00-59);
    it defaults to 1970-01-01T00:00:01Z.

  # Type

  ```
  ociImageConfig :: { layers :: [Derivation]; config? :: AttrSet; extraConfig? :: AttrSet; ... } -> Derivation
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
  layers,
  config ? { },
  extraConfig ? { },
  architecture ? hostPlatform.architecture,
  os ? hostPlatform.os,
  variant ? hostPlatform.variant or null,
  created ? null,
  author ? null,
}:
let
  args = checkConfigArgs fn {
    inherit config extraConfig architecture os variant created author;
  };
in
mkStep {
  name = checkName "${fn}: name" name;
  command = "config";
  spec = dropNulls {
    layers = checkImageLayers "${fn}: layers" layers;
    inherit (args) architecture os variant created author config;
    extraConfig = if args.extraConfig == { } then null else args.extraConfig;
  };
}
// {
  # Known at evaluation, so that ociImageLayout can check its manifests'
  # platforms and ociImageArchive its tag (null: known only at build time).
  platform = platformOfConfig args;
}

{ common }:
let
  inherit (common)
    checkConfigArgs
    checkLayers
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
  : Bottom first.

  `config` (attrset, default `{}`)
  : The OCI `config` object, with OCI field names: `Entrypoint`, `Cmd`,
    `Env`, `WorkingDir`, `User`, `ExposedPorts`, `Volumes`, `Labels`,
    `StopSignal`.

  `extraConfig` (attrset, default `{}`)
  : Merged last into the config document: any other OCI config field.

  `architecture`, `os`, `variant`
  : Default: from the system the images are for (`x86_64-linux` gives
    `amd64`/`linux`, `aarch64-linux` gives `arm64`/`linux`/`v8`, ...).

  `created`, `author` (strings or null)
  : `created` defaults to 1970-01-01T00:00:01Z.

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
  inherit name;
  command = "config";
  spec = dropNulls {
    layers = checkLayers "${fn}: layers" layers;
    inherit (args) architecture os variant created author config;
    extraConfig = if args.extraConfig == { } then null else args.extraConfig;
  };
}

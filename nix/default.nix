/**
  The nixoci Nix functions. Every build step runs the nixoci tool as its
  builder (no shell, no stdenv) with its data as structured attrs; each step
  reads the previous step's output at build time, never at evaluation time
  (no import-from-derivation).

  # Inputs

  `nixoci`
  : The nixoci package (with `bin/nixoci`) or the path of the executable.

  `buildSystem` (string)
  : The system the steps run on (`x86_64-linux`, ...).

  `hostSystem` (string, default `buildSystem`)
  : The system the images are for: it gives their architecture and os.

  # Examples

  ```nix
  import ./nix { nixoci = pkgs.nixoci; buildSystem = "x86_64-linux"; }
  => { ociLayerTar = «lambda»; ociLayers = «lambda»; ociImageConfig = «lambda»; ociImageManifest = «lambda»; ociImageLayout = «lambda»; ociImageArchive = «lambda»; ociImage = «lambda»; ociPullImage = «lambda»; ociVerify = «lambda»; platformOf = «lambda»; }
  ```
*/
{
  nixoci,
  buildSystem,
  hostSystem ? buildSystem,
}:
let
  common = import ./common.nix { inherit nixoci buildSystem hostSystem; };
  ociLayerTar = import ./oci-layer-tar.nix { inherit common; };
  ociLayers = import ./oci-layers.nix { inherit common; };
  ociImageConfig = import ./oci-image-config.nix { inherit common; };
  ociImageManifest = import ./oci-image-manifest.nix { inherit common ociImageConfig; };
  ociImageArchive = import ./oci-image-archive.nix { inherit common; };
  ociPullImage = import ./oci-pull-image.nix { inherit common; };
  ociImageLayout = import ./oci-image-layout.nix { inherit common ociImageArchive; };
  ociImage = import ./oci-image.nix {
    inherit
      common
      ociLayerTar
      ociLayers
      ociImageManifest
      ociImageLayout
      ;
  };
in
{
  inherit
    ociLayerTar
    ociLayers
    ociImageConfig
    ociImageManifest
    ociImageLayout
    ociImageArchive
    ociImage
    ociPullImage
    ;
  inherit (common) platformOf;

  /**
    A check that runs `nixoci verify` on an image layout; its output is the
    verification report (JSON). Fails the build on any problem.

    # Type

    ```
    ociVerify :: Derivation -> Derivation
    ```

    # Examples

    ```nix
    checks.x86_64-linux.image = ociVerify myImage;
    ```
  */
  ociVerify =
    layout:
    let
      step = if builtins.isAttrs layout then layout.command or null else null;
      checked =
        if !(builtins.isAttrs layout && layout ? outPath) && !builtins.isPath layout then
          throw "ociVerify: its argument must be an ociImageLayout or ociImage result (an OCI image layout), not ${common.describe layout}${
            if builtins.isList layout then "; to check several, write map ociVerify [ ... ]" else ""
          }"
        else if step != null && step != "layout" then
          throw "ociVerify: its argument must be an ociImageLayout or ociImage result (an OCI image layout), not the ${step} step ${layout.name or ""}"
        else
          layout;
    in
    common.mkStep {
      name = "${checked.name or "oci-image"}-verified";
      command = "verify";
      spec.layout = "${checked}";
    };
}

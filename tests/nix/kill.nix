# An image through every building block (layer, config, manifest, layout)
# over a directory of test data, for the kill trials of tests/nix.rs. The
# salt is in the derivations' names only: each trial builds new ones, whose
# blobs are the same bytes.
{
  tool,
  input,
  salt,
  system ? "x86_64-linux",
}:
let
  nixoci = builtins.path { path = tool; name = "nixoci"; };
  lib = import ../../nix { inherit nixoci; buildSystem = system; };
  data = builtins.path { path = input; name = "kill-input"; };
  name = "kill-${salt}";
in
lib.ociImageLayout {
  inherit name;
  manifests = [
    (lib.ociImageManifest {
      inherit name;
      imageConfig = lib.ociImageConfig {
        inherit name;
        layers = [
          (lib.ociLayerTar {
            inherit name;
            files = [ { source = data; destination = "/data"; } ];
          })
        ];
      };
    })
  ];
}

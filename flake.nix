{
  description = "nixoci: reproducible OCI images from Nix store paths";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = nixpkgs.lib.genAttrs systems;
      pkgsFor =
        system:
        import nixpkgs {
          inherit system;
          overlays = [ self.overlays.default ];
        };

      # The functions for any package set: the tool runs on the set's build
      # platform, the images are for its host platform (so pkgsCross works).
      forPkgs =
        pkgs:
        import ./nix {
          nixoci = pkgs.buildPackages.nixoci or (pkgs.buildPackages.callPackage ./nix/package.nix { });
          buildSystem = pkgs.stdenv.buildPlatform.system;
          hostSystem = pkgs.stdenv.hostPlatform.system;
        };
    in
    {
      # nixoci, and ociLayerTar, ociLayers, ociImageConfig, ociImageManifest,
      # ociImageLayout, ociImageArchive, ociImage, ociPullImage and ociVerify,
      # added to pkgs.
      overlays.default =
        final: prev:
        {
          nixoci = final.callPackage ./nix/package.nix { };
        }
        // builtins.removeAttrs (forPkgs final) [ "platformOf" ];

      packages = forAllSystems (
        system:
        let
          pkgs = pkgsFor system;
        in
        {
          default = pkgs.nixoci;
          inherit (pkgs) nixoci;
        }
      );

      # lib.<system>.ociImage ..., and lib.forPkgs pkgs for any package set.
      lib = forAllSystems (system: forPkgs (pkgsFor system)) // {
        inherit forPkgs;
      };

      checks = forAllSystems (
        system:
        let
          pkgs = pkgsFor system;
        in
        {
          nixoci = pkgs.nixoci;
          # The guide's example image (docs/nix.md) builds and passes `nixoci verify`.
          example = pkgs.ociVerify (import ./examples/nix/web.nix { inherit pkgs; });
          hello = pkgs.ociVerify (import ./examples/nix/hello.nix { inherit pkgs; });
        }
      );
    };
}

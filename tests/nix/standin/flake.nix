# A stand-in for nixpkgs, so that the project's flake evaluates and its
# checks build offline, and the guide's examples with it (tests/nix.rs and
# tests/docs.rs copy this directory next to a busybox-static binary and the
# nixoci binary under test). It provides only what flake.nix, examples/nix/
# and the guide's examples use.
{
  outputs =
    { self }:
    {
      lib = import ./lib.nix;
      legacyPackages = self.lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] (
        system: import ./default.nix { inherit system; }
      );
    };
}

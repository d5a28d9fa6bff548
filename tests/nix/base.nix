# Base images for tests/base_image.rs: an image pulled from a registry on
# 127.0.0.1 by ociPullImage (a fixed-output derivation), with the arguments
# `nixoci prefetch` printed, and images built on top of it.
{
  tool,
  imageName,
  imageDigest,
  hash,
  name ? null,
  os ? null,
  arch ? null,
  variant ? null,
  allPlatforms ? false,
  caFile ? null,
  system ? "x86_64-linux",
}:
let
  nixoci = builtins.path { path = tool; name = "nixoci"; };
  lib = import ../../nix { inherit nixoci; buildSystem = system; };
in
{
  pulled = lib.ociPullImage {
    inherit
      imageName
      imageDigest
      hash
      name
      os
      arch
      variant
      allPlatforms
      caFile
      ;
  };
}

# Base images for tests/base_image.rs: an image pulled from a registry on
# 127.0.0.1 by ociPullImage (a fixed-output derivation), with the arguments
# `nixoci prefetch` printed, and images built on top of it.
{
  tool,
  # What `nixoci prefetch` printed (not needed by onArchive).
  imageName ? null,
  imageDigest ? null,
  hash ? null,
  name ? null,
  os ? null,
  arch ? null,
  variant ? null,
  allPlatforms ? false,
  caFile ? null,
  # Another base: a path to an image archive or layout.
  otherBase ? null,
  system ? "x86_64-linux",
}:
let
  nixoci = builtins.path { path = tool; name = "nixoci"; };
  lib = import ../../nix { inherit nixoci; buildSystem = system; };
  hello = builtins.toFile "hello.txt" "hello from the new layer\n";
in
rec {
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

  # The base's busybox runs the new layer's file; the base's settings are
  # inherited, some overridden.
  onBase = lib.ociImage {
    name = "on-base";
    fromImage = pulled;
    files = [ { source = hello; destination = "/usr/share/hello.txt"; } ];
    config = {
      Entrypoint = [ "/bin/busybox" "cat" "/usr/share/hello.txt" ];
      Env = [ "GREETING=hi" "NEW=1" ];
      Labels.layer = "new";
    };
  };

  # /bin/hello: /bin is the base's link to usr/bin.
  throughLink = lib.ociImage {
    name = "through-link";
    fromImage = pulled;
    files = [ { source = hello; destination = "/bin/hello"; } ];
    config.Entrypoint = [ "/bin/busybox" "cat" "/bin/hello" ];
  };
  throughLinkFollowed = lib.ociImage {
    name = "through-link-followed";
    fromImage = pulled;
    baseSymlinks = "follow";
    files = [ { source = hello; destination = "/bin/hello"; } ];
    config.Entrypoint = [ "/bin/busybox" "cat" "/bin/hello" ];
  };

  # The building blocks: a manifest over the base alone, with a new config.
  manifestOnly = lib.ociImageLayout {
    name = "manifest-only";
    manifests = [ (lib.ociImageManifest { fromImage = pulled; config.Cmd = [ "/bin/busybox" "echo" "only the base" ]; }) ];
  };

  # remove: the base's /etc/motd deleted by a whiteout.
  withRemoval = lib.ociImage {
    name = "with-removal";
    fromImage = pulled;
    remove = [ "/etc/motd" ];
    config.Entrypoint = [ "/bin/busybox" "sh" "-c" "test -e /etc/motd && echo present || echo absent" ];
  };

  # An image archive (docker or OCI) as the base.
  onArchive = lib.ociImage {
    name = "on-archive";
    fromImage = otherBase;
    files = [ { source = hello; destination = "/usr/share/hello.txt"; } ];
    config.Entrypoint = [ "/bin/busybox" "cat" "/usr/share/hello.txt" ];
  };

  # On a multi-platform base (allPlatforms), for arm64: the image's
  # platform picks the base's arm64 image, in every step.
  onArm = lib.ociImage {
    name = "on-arm";
    fromImage = pulled;
    architecture = "arm64";
    files = [ { source = hello; destination = "/usr/share/hello.txt"; } ];
  };

  # maxLayers counts the base's layers, at build time.
  tooFewForBase = lib.ociImage {
    name = "too-few";
    fromImage = pulled;
    files = [ { source = hello; destination = "/usr/share/hello.txt"; } ];
    maxLayers = 2;
  };
}

# Images built through the nix/ functions, for tests/nix.rs. Everything is
# made from the tool under test and busybox-static (imported as a store
# path), so it evaluates and builds offline with no nixpkgs.
{
  tool,
  busybox,
  system ? "x86_64-linux",
}:
let
  nixoci = builtins.path { path = tool; name = "nixoci"; };
  lib = import ../../nix { inherit nixoci; buildSystem = system; };
  bb = builtins.path { path = busybox; name = "busybox"; };

  # A derivation built by busybox sh, with a package-like meta.
  sh =
    name: script:
    derivation {
      inherit name system;
      builder = "${bb}/busybox";
      args = [ "sh" "-c" script ];
    };

  # b is referenced by a; neither is listed anywhere else.
  dep = sh "dep" "echo dependency > $out";
  app = (sh "app" "mkdir -p $out/bin && echo '${dep}' > $out/bin/app-ref") // { meta.mainProgram = "app-ref"; };

  busyboxLayer = lib.ociLayerTar { files = [ { source = bb; destination = "/bin"; } ]; };
in
rec {
  inherit (lib)
    ociLayerTar
    ociImageManifest
    ociImageLayout
    ociImage
    ociVerify
    ;
  busyboxPath = "${bb}";
  depPath = "${dep}";
  appPath = "${app}";

  # Runs in podman: /bin/busybox echo.
  hello = ociImage {
    name = "hello";
    files = [ { source = bb; destination = "/bin"; } ];
    config.Entrypoint = [ "/bin/busybox" "echo" "hello from a nix-built image" ];
  };

  # Two layers through the building blocks: busybox, then app over it.
  appLayer = ociLayerTar {
    files = [ { source = app; destination = "/bin/app"; } ];
    base = [ busyboxLayer ];
  };
  depLayer = ociLayerTar { files = [ { source = dep; } ]; };
  appOverDep = ociLayerTar {
    files = [ { source = app; } ];
    base = [ depLayer ];
  };
  appAlone = ociLayerTar { files = [ { source = app; } ]; };
  twoLayers = ociImageLayout {
    name = "two-layers";
    manifests = [
      (ociImageManifest {
        layers = [ busyboxLayer appLayer ];
        config = {
          Entrypoint = [ "/bin/busybox" "cat" ];
          Cmd = [ "/bin/app" ];
        };
        annotations."org.opencontainers.image.title" = "two layers";
      })
    ];
    tags = [ "latest" "v1" ];
  };

  # The same busybox image as JSON for `nixoci build`, next to `hello`.
  helloEquivalentSpec = builtins.toJSON {
    layers = [
      {
        files = [ { source = "${bb}"; destination = "/bin"; } ];
        closure = [ "${bb}" ];
      }
    ];
    architecture = "amd64";
    os = "linux";
    config.Entrypoint = [ "/bin/busybox" "echo" "hello from a nix-built image" ];
    tags = [ "latest" ];
  };

  # One image for two platforms (the arm64 one only declares it).
  multiPlatform = ociImageLayout {
    name = "multi";
    platformTags = true;
    manifests = [
      (ociImageManifest { layers = [ busyboxLayer ]; })
      (ociImageManifest {
        layers = [ busyboxLayer ];
        architecture = "arm64";
        variant = "v8";
      })
    ];
  };

  verified = ociVerify twoLayers;

  # Bad arguments.
  badUnknownAttribute = ociLayerTar { files = [ ]; compresion = "gzip"; };
  badFileAttribute = ociLayerTar { files = [ { source = bb; dest = "/bin"; } ]; };
  badRelativeDestination = ociLayerTar { files = [ { source = bb; destination = "bin/"; } ]; };
  badMode = ociLayerTar { files = [ { source = bb; destination = "/bin/"; mode = 755; } ]; };
  badConflict = ociLayerTar {
    files = [
      { source = "${dep}"; destination = "/etc/x"; }
      { source = "${app}/bin/app-ref"; destination = "/etc/x"; }
    ];
  };
}

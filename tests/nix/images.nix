# Images built through the nix/ functions, for tests/nix.rs. Everything is
# made from the tool under test and busybox-static (imported as a store
# path), so it evaluates and builds offline with no nixpkgs.
{
  tool,
  busybox,
  system ? "x86_64-linux",
  # The guide's service.nix (tests/nix/rootfs.rs reads it from docs/rootfs.md).
  serviceNix ? null,
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
  # The app changed, its dependency not.
  app2 = (sh "app" "mkdir -p $out/bin && echo '${dep}' > $out/bin/app-ref && echo v2 >> $out/bin/app-ref") // {
    meta.mainProgram = "app-ref";
  };

  # An image whose closure (app and dep; busybox is only copied to /bin)
  # is split automatically.
  layeredWith =
    a:
    lib.ociImage {
      name = "layered";
      files = [
        { source = bb; destination = "/bin"; }
        { source = a; destination = "/usr/bin/app"; }
        { source = a; }
      ];
      config.Entrypoint = [ "/bin/busybox" "cat" "/usr/bin/app" ];
      maxLayers = 4;
    };

  # A store path with a var directory, for perms rules (issue 24), in
  # layers of its own beside dep's.
  appVar = sh "app-var" "mkdir -p $out/bin $out/var/log && echo app > $out/bin/app && echo log > $out/var/log/x";
  permsLayersWith =
    perms:
    lib.ociLayers {
      roots = [ appVar dep ];
      maxLayers = 2;
      inherit perms;
    };

  busyboxLayer = lib.ociLayerTar { files = [ { source = bb; destination = "/bin"; } ]; };

  # Stand-ins for the guide's packages: busybox as nixpkgs has it
  # (bin/ with its applets as links), coreutils' env, and an app with a
  # var directory in its store path.
  busyboxPkg = sh "busybox" ''
    mkdir -p $out/bin && cp ${bb}/busybox $out/bin/busybox
    for a in sh id ls stat touch cat env printf; do ln -s busybox $out/bin/$a; done
  '';
  coreutilsPkg = sh "coreutils" "mkdir -p $out/bin && ln -s ${bb}/busybox $out/bin/env";
  serviceApp = sh "app" ''
    mkdir -p $out/bin $out/var/cache
    printf '#!/bin/sh\necho "$(id -un) in $(pwd): $(cat /etc/app.conf)"\n' > $out/bin/app
    chmod 0555 $out/bin/app
  '';
in
rec {
  inherit (lib)
    ociLayerTar
    ociImageManifest
    ociImageLayout
    ociImage
    ociVerify
    ;
  inherit (lib) ociLayers;
  app2Path = "${app2}";
  layered = layeredWith app;
  # The closure step of `layered` (its layers.json lists the paths).
  layeredClosurePath = "${builtins.elemAt layered.layers 0}";
  layered2 = layeredWith app2;
  # Three store paths in two layers, by each strategy; and over a base.
  closureStable = lib.ociLayers { roots = [ app bb ]; maxLayers = 2; };
  closurePopularity = lib.ociLayers {
    roots = [ app bb ];
    maxLayers = 2;
    strategy = "popularity";
  };
  closureOverDep = lib.ociLayers {
    roots = [ app ];
    base = [ depLayer ];
  };
  # Issue 24's perms example over automatic layers (the rule matches in
  # app-var's layer only); the same without rules; a rule matching in no
  # layer.
  permsLayers = permsLayersWith [
    {
      path = appVar;
      regex = ".*/var(/.*)?";
      mode = "0775";
      uid = 1000;
      gid = 1000;
    }
  ];
  permsLayersPlain = permsLayersWith [ ];
  permsLayersNoMatch = permsLayersWith [
    {
      path = "${appVar}";
      regex = ".*/nothing";
      mode = "0700";
    }
  ];
  appVarPath = "${appVar}";
  layeredTooMany = lib.ociImage {
    name = "x";
    files = [ { source = app; } ];
    maxLayers = 128;
  };
  layeredTooFew = lib.ociImage {
    name = "x";
    files = [ { source = app; } ];
    layers = [ busyboxLayer ];
    maxLayers = 2;
  };
  # No maxLayers: the closure is split within 100 layers; with null, one
  # layer; with layers that take the whole default budget, the closure goes
  # into the image's own layer rather than failing.
  layeredDefault = lib.ociImage {
    name = "layered-default";
    files = [ { source = app; destination = "/usr/bin/app"; } ];
  };
  unlayered = lib.ociImage {
    name = "unlayered";
    files = [ { source = app; destination = "/usr/bin/app"; } ];
    maxLayers = null;
  };
  defaultOverFullBudget = lib.ociImage {
    name = "over-full";
    layers = [ (lib.ociLayers { roots = [ dep ]; }) ];
    files = [ { source = app; } ];
  };
  # Where it came from, as a flake's self says: annotations.
  withOrigin = lib.ociImage {
    name = "with-origin";
    files = [ { source = bb; destination = "/bin"; } ];
    source = "https://example.org/app";
    version = "1.2.3";
    self = { rev = "0123456789abcdef0123456789abcdef01234567"; lastModifiedDate = "20240131120500"; lastModified = 1706702700; };
  };
  withDirtyOrigin = lib.ociImageManifest {
    layers = [ busyboxLayer ];
    self = { dirtyRev = "0123456789abcdef0123456789abcdef01234567-dirty"; lastModifiedDate = "20240131120500"; };
    annotations."org.opencontainers.image.created" = "2025-01-01T00:00:00Z";
  };
  # Its closure's SBOM, both formats, attached in the layout.
  withSbom = lib.ociImage {
    name = "with-sbom";
    files = [
      { source = bb; destination = "/bin"; }
      { source = app; destination = "/usr/bin/app"; }
    ];
    config.Entrypoint = [ "/bin/busybox" "cat" "/usr/bin/app" ];
    sbom = [ "spdx" "cyclonedx" ];
  };
  # contents: the app's files at / as links into its store path.
  withContents = lib.ociImage {
    name = "with-contents";
    contents = [ app ];
    files = [ { source = bb; destination = "/bin"; } ];
    config.Entrypoint = [ "/bin/busybox" "cat" "/bin/app-ref" ];
  };
  # 1 MB of random bytes that name dep: copied to a destination, its
  # references go in, its own store path does not (it would be its bytes a
  # second time); once split, once in one layer, once also linked (which
  # needs the store path).
  big = sh "big" "${bb}/busybox head -c 1000000 /dev/urandom > $out && echo ${dep} >> $out";
  bigPath = "${big}";
  copiedBig = lib.ociImage {
    name = "copied-big";
    files = [ { source = big; destination = "/data/big"; } ];
  };
  copiedBigOneLayer = lib.ociImage {
    name = "copied-big-one";
    files = [ { source = big; destination = "/data/big"; } ];
    maxLayers = null;
  };
  copiedAndLinkedBig = lib.ociImage {
    name = "copied-linked-big";
    files = [
      { source = big; destination = "/data/big"; }
      { source = big; destination = "/data/link"; link = true; }
    ];
  };
  # A path literal and a single-file derivation into a directory: each
  # under its own name, without the store path's hash part.
  motdImage = lib.ociImage {
    name = "motd";
    files = [
      { source = ./motd; destination = "/etc/"; }
      { source = dep; destination = "/etc/"; }
    ];
  };
  # A store path in the config: as written, the layout references it;
  # with its string context discarded, only the layer (which holds app)
  # does.
  envWith =
    path: extra:
    lib.ociImage (
      {
        name = "env";
        files = [ { source = app; } ];
        config.Env = [ "PATH=${path}/bin" ];
        maxLayers = null;
      }
      // extra
    );
  envReferenced = envWith app { };
  envNotReferenced = envWith (builtins.unsafeDiscardStringContext "${app}") { };
  # strictReferences: the same two images, and the leak made of building
  # blocks (the config's reference reaches the layout through the
  # manifest), onto a base image, and an uncompressed layer.
  strictLeaking = envWith app { strictReferences = true; };
  strictClean = envWith (builtins.unsafeDiscardStringContext "${app}") {
    strictReferences = true;
  };
  strictBlocks =
    path:
    lib.ociImageLayout {
      name = "blocks-strict";
      strictReferences = true;
      manifests = [
        (lib.ociImageManifest {
          layers = [ busyboxLayer appAlone ];
          config.Env = [ "PATH=${path}/bin" ];
        })
      ];
    };
  strictBlocksLeaking = strictBlocks app;
  strictBlocksClean = strictBlocks (builtins.unsafeDiscardStringContext "${app}");
  strictOnBase = lib.ociImage {
    name = "on-base-strict";
    fromImage = strictClean;
    files = [ { source = dep; destination = "/etc/dep"; } ];
    strictReferences = true;
  };
  # An SBOM names every store path of the closure, in a form that keeps
  # the layout free of references to them.
  strictWithSbom = lib.ociImage {
    name = "with-sbom-strict";
    files = [
      { source = bb; destination = "/bin"; }
      { source = app; }
    ];
    sbom = [ "spdx" "cyclonedx" ];
    strictReferences = true;
  };
  strictUncompressedLayer = lib.ociImageLayout {
    name = "uncompressed-strict";
    strictReferences = true;
    manifests = [ (lib.ociImageManifest { layers = [ appAloneUncompressed ]; }) ];
  };
  # What dockerTools and nix2container users look for: a tag from the
  # image's hash, the build's time, imageName and imageTag, and programs
  # for `nix run`.
  withHelpers = lib.ociImage {
    name = "helpers";
    tag = null;
    created = "now";
    maxLayers = null;
    files = [ { source = bb; destination = "/bin"; } ];
    config.Entrypoint = [ "/bin/busybox" "echo" "helpers" ];
  };
  helpersNames = {
    inherit (withHelpers) imageName imageTag;
    manifest = "${withHelpers.manifest}";
  };
  busyboxPath = "${bb}";

  # The guide's non-root service image (docs/rootfs.md), built as written.
  readmeService = import serviceNix {
    pkgs = lib // {
      busybox = busyboxPkg;
      coreutils = coreutilsPkg;
    };
    app = serviceApp;
  };
  serviceAppPath = "${serviceApp}";

  # A base with its own users, and the image's user added onto it: from
  # the base's layout, and from a docker archive of it.
  usersBase = lib.ociImage {
    name = "users-base";
    contents = [ busyboxPkg ];
    users = [ { name = "base"; uid = 500; } ];
  };
  onUsersBase =
    from:
    lib.ociImage {
      name = "on-users-base";
      fromImage = from;
      users = [ { name = "app"; uid = 1000; } ];
      config.User = "app";
    };
  onUsersBaseLayout = onUsersBase usersBase;
  onUsersBaseArchive = onUsersBase (lib.ociImageArchive { image = usersBase; format = "docker"; });
  coreutilsPath = "${coreutilsPkg}";

  # A Nix database over the whole image: busybox copied to /bin, app and
  # dep (its reference) at their own paths, in the closure's layers, and
  # another store path in a layer given (whose closure the database's build
  # reads only because that layer gives its roots). The same image under
  # another name: its own layer is built again, alone.
  other = sh "other" "echo other > $out";
  otherPath = "${other}";
  withNixDb = nixDbNamed "with-nix-db";
  withNixDbAgain = nixDbNamed "with-nix-db-again";
  nixDbNamed =
    name:
    lib.ociImage {
      inherit name;
      files = [
        { source = bb; destination = "/bin"; }
        { source = app; }
      ];
      layers = [ (lib.ociLayerTar { files = [ { source = other; } ]; }) ];
      nixDatabase = true;
      config.Entrypoint = [ "/bin/busybox" "sh" ];
    };
  withNixDbLayer = builtins.elemAt withNixDb.layers (builtins.length withNixDb.layers - 1);
  depPath = "${dep}";
  appPath = "${app}";

  # Runs in podman: /bin/busybox echo. One layer (maxLayers = null), so
  # that helloEquivalentSpec, one layer for `nixoci build`, gives the same
  # bytes.
  hello = ociImage {
    name = "hello";
    maxLayers = null;
    files = [ { source = bb; destination = "/bin"; } ];
    config.Entrypoint = [ "/bin/busybox" "echo" "hello from a nix-built image" ];
  };

  # For crane push (with hello, twoLayers and multiPlatform): an image on
  # a base ociImage made, and hello with `sbom = true`.
  onHello = ociImage {
    name = "on-hello";
    fromImage = hello;
    files = [ { source = dep; destination = "/etc/dep"; } ];
    config.Cmd = [ "on hello" ];
  };
  helloWithSbom = ociImage {
    name = "hello-sbom";
    maxLayers = null;
    files = [ { source = bb; destination = "/bin"; } ];
    config.Entrypoint = [ "/bin/busybox" "echo" "hello from a nix-built image" ];
    sbom = true;
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

  # What each output references: app (and dep, its closure) packed in
  # layers of each compression, and an image over the gzip one through
  # every building block.
  appAloneZstd = ociLayerTar { files = [ { source = app; } ]; compression = "zstd"; };
  appAloneUncompressed = ociLayerTar { files = [ { source = app; } ]; compression = "none"; };
  appConfig = lib.ociImageConfig {
    name = "app-config";
    layers = [ busyboxLayer appAlone ];
    config.Entrypoint = [ "/bin/busybox" "cat" ];
  };
  appManifest = ociImageManifest { name = "app-manifest"; imageConfig = appConfig; };
  appLayout = ociImageLayout { name = "app-image"; manifests = [ appManifest ]; };
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

  # The same busybox image as JSON for `nixoci build`, next to `hello`
  # (whose own layer has /tmp, as every ociImage's by default).
  helloEquivalentSpec = builtins.toJSON {
    layers = [
      {
        files = [ { source = "${bb}"; destination = "/bin"; } ];
        tmp = true;
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

  # Valid edge cases of the argument checks: a time with a fraction and an
  # offset, a string store path source, a destination ending in /, a
  # Healthcheck in extraConfig; an archive of a platform tag, named with a
  # registry and a port.
  edgeCases = ociImage {
    name = "edge";
    created = "2024-01-01T00:00:00.5+02:00";
    files = [
      { source = "${bb}/busybox"; destination = "/bin/"; }
      { source = "${bb}/busybox"; destination = "/usr/bin/sh"; }
    ];
    config.Entrypoint = [ "/usr/bin/sh" "-c" "/bin/busybox echo edge cases" ];
    extraConfig.config.Healthcheck = { Test = [ "NONE" ]; Interval = 30000000000; };
  };
  edgeArchive = lib.ociImageArchive {
    image = multiPlatform;
    tag = "latest-linux-arm64-v8";
    imageName = "localhost:5000/multi/arm:1";
  };

  # Bad arguments.
  badUnknownAttribute = ociLayerTar { files = [ ]; compresion = "gzip"; };
  badFileAttribute = ociLayerTar { files = [ { source = bb; dest = "/bin"; } ]; };
  badRelativeDestination = ociLayerTar { files = [ { source = bb; destination = "bin/"; } ]; };
  badMode = ociLayerTar { files = [ { source = bb; destination = "/bin/"; mode = 755; } ]; };
  # The user's files[0] is named so, not by its place after contents.
  badConflictLabels = ociImage {
    name = "conflict";
    contents = [ (sh "etc-x" "mkdir -p $out/etc && echo c > $out/etc/x") ];
    files = [ { source = dep; destination = "/etc/x"; } ];
  };
  badConflict = ociLayerTar {
    files = [
      { source = "${dep}"; destination = "/etc/x"; }
      { source = "${app}/bin/app-ref"; destination = "/etc/x"; }
    ];
  };
}

# Evaluation-level tests of the nix/ functions, in the nixpkgs lib style:
# each test is { expr; expected; }. Evaluates to the list of failing test
# names with what they gave, so [] means all passed. Nothing is built, so
# any file stands in for the tool.
let
  tool = ./unit.nix;
  lib = import ../../nix {
    nixoci = tool;
    buildSystem = "x86_64-linux";
  };
  cross = import ../../nix {
    nixoci = tool;
    buildSystem = "x86_64-linux";
    hostSystem = "aarch64-linux";
  };
  common = import ../../nix/common.nix {
    nixoci = tool;
    buildSystem = "x86_64-linux";
    hostSystem = "x86_64-linux";
  };
  layer = lib.ociLayerTar { files = [ ]; };
  # Derivations that are never built: their paths carry string context.
  fake =
    name:
    derivation {
      inherit name;
      system = "x86_64-linux";
      builder = tool;
    };
  coreutils = fake "coreutils";
  app = fake "app";
  dep = fake "dep";
  lastLayer = image: builtins.elemAt image.layers (builtins.length image.layers - 1);

  tests = {
    testPlatformAmd64 = {
      expr = lib.platformOf "x86_64-linux";
      expected = { architecture = "amd64"; os = "linux"; };
    };
    testPlatformArm64 = {
      expr = lib.platformOf "aarch64-linux";
      expected = { architecture = "arm64"; os = "linux"; variant = "v8"; };
    };
    testPlatformUnknownThrows = {
      expr = (builtins.tryEval (lib.platformOf "mips-plan9")).success;
      expected = false;
    };
    testCrossConfigTakesHostPlatform = {
      expr = (cross.ociImageConfig { layers = [ layer ]; }).spec;
      expected = {
        architecture = "arm64";
        os = "linux";
        variant = "v8";
        config = { };
        layers = [ "${layer}" ];
      };
    };
    testCrossStepRunsOnBuildSystem = {
      expr = (cross.ociImageConfig { layers = [ layer ]; }).system;
      expected = "x86_64-linux";
    };
    testStoreRootOfSubpath = {
      expr = common.storeRoot "${builtins.storeDir}/abc-foo/bin/foo";
      expected = "${builtins.storeDir}/abc-foo";
    };
    testStoreRootOutsideStore = {
      expr = common.storeRoot "/etc/passwd";
      expected = null;
    };
    testMainProgram = {
      expr =
        (lib.ociLayerTar {
          files = [
            {
              source = {
                outPath = "${builtins.storeDir}/abc-bash";
                meta.mainProgram = "bash";
              };
              destination = "/bin/bash";
            }
          ];
        }).spec.files;
      expected = [ { source = "${builtins.storeDir}/abc-bash/bin/bash"; destination = "/bin/bash"; } ];
    };
    testMainProgramNotForDirectoryDestination = {
      expr =
        (lib.ociLayerTar {
          files = [
            {
              source = {
                outPath = "${builtins.storeDir}/abc-bash";
                meta.mainProgram = "bash";
              };
              destination = "/opt/bash/";
            }
          ];
        }).spec.files;
      expected = [ { source = "${builtins.storeDir}/abc-bash"; destination = "/opt/bash/"; } ];
    };
    # writeText-like: a derivation with meta but no program name and one
    # output is a file, put at its destination as it is.
    testSingleFileDerivationAtFileDestination = {
      expr =
        (lib.ociLayerTar {
          files = [
            {
              source = {
                outPath = "${builtins.storeDir}/abc-config.json";
                name = "config.json";
                meta = { };
              };
              destination = "/etc/app/config.json";
            }
          ];
        }).spec.files;
      expected = [ { source = "${builtins.storeDir}/abc-config.json"; destination = "/etc/app/config.json"; } ];
    };
    testPackageWithoutMainProgramAtDirectory = {
      expr =
        (lib.ociLayerTar {
          files = [
            {
              source = {
                outPath = "${builtins.storeDir}/abc-hello";
                pname = "hello";
                meta = { };
              };
              destination = "/bin/hello/";
            }
          ];
        }).spec.files;
      expected = [ { source = "${builtins.storeDir}/abc-hello"; destination = "/bin/hello/"; } ];
    };
    testPackageWithoutMainProgramAsString = {
      expr =
        (lib.ociLayerTar {
          files = [
            {
              source = "${builtins.storeDir}/abc-hello/bin/hello";
              destination = "/bin/hello";
              mode = "0555";
              uid = 0;
              gid = 4294967295;
            }
          ];
        }).spec.files;
      expected = [
        {
          source = "${builtins.storeDir}/abc-hello/bin/hello";
          destination = "/bin/hello";
          mode = "0555";
          uid = 0;
          gid = 4294967295;
        }
      ];
    };
    testPackageWithoutMainProgramThrows = {
      expr =
        (builtins.tryEval (
          builtins.deepSeq (lib.ociLayerTar {
            files = [
              {
                source = {
                  outPath = "${builtins.storeDir}/abc-hello";
                  pname = "hello";
                  meta = { };
                };
                destination = "/bin/hello";
              }
            ];
          }).spec null
        )).success;
      expected = false;
    };
    testRfc3339 = {
      expr = map common.isRfc3339 [
        "2024-01-31T12:00:00Z"
        "2024-02-29T23:59:59.5+01:00"
        "2024-01-01T00:00:00.5+02:00"
        # As Go reads times: lower-case t and z, and a leap second, refused.
        "1970-01-01t00:00:01z"
        "2024-01-31T12:00:00z"
        "2016-12-31T23:59:60Z"
        "2024-01-31T12:00:00.Z"
        "2023-02-29T00:00:00Z"
        "2024-01-31 12:00:00Z"
        "2024-01-31T12:00:00"
        "2024-01-31T12:00:00+24:00"
        "yesterday"
      ];
      expected = [ true true true false false false false false false false false false ];
    };
    testPathProblems = {
      expr = map (p: common.pathProblem p == null) [
        "/"
        "/a/"
        "/a/b"
        "/a/.whx"
        "/a/b.wh.c"
        "/a//b"
        "/a/../b"
        "/a/./b"
        "/.wh.x"
        "/a/.wh..wh..opq"
        "a/b"
        ""
      ];
      expected = [ true true true true true false false false false false false false ];
    };
    testImageNames = {
      expr = map (n: common.imageNameProblem n == null) [
        "myapp"
        "myapp:dev"
        "registry.example.org/team/app:1.0"
        "localhost:5000/a"
        "[::1]:5000/x/y:t"
        "a__b-c.d"
        "a---b"
        "Ex.com/a"
        "a@sha256:0000000000000000000000000000000000000000000000000000000000000000"
        "Bad Name!"
        "a:bad tag"
        "localhost:99999/a"
        "a//b"
        "a___b"
        "-a"
        ""
      ];
      expected = [ true true true true true true true true false false false false false false false false ];
    };
    # Valid edge cases pass through as they are.
    testDestinationEndingInSlashAndStringSource = {
      expr =
        (lib.ociLayerTar {
          files = [
            { source = "${builtins.storeDir}/abc-tools/bin/tool"; destination = "/opt/bin/"; }
            { source = "${builtins.storeDir}/abc-etc/"; }
          ];
        }).spec.files;
      expected = [
        { source = "${builtins.storeDir}/abc-tools/bin/tool"; destination = "/opt/bin/"; }
        { source = "${builtins.storeDir}/abc-etc/"; }
      ];
    };
    testCreatedWithFractionAndOffset = {
      expr = (lib.ociImageConfig { layers = [ layer ]; created = "2024-01-01T00:00:00.5+02:00"; }).spec.created;
      expected = "2024-01-01T00:00:00.5+02:00";
    };
    testExtraConfigAndManifestPassThrough = {
      expr =
        let
          subject = {
            mediaType = "application/vnd.oci.image.manifest.v1+json";
            digest = "sha256:${builtins.concatStringsSep "" (builtins.genList (_: "0") 64)}";
            size = 2;
            platform = { architecture = "amd64"; os = "linux"; };
          };
          extraConfig = {
            config.Healthcheck = { Test = [ "CMD" "true" ]; Interval = 30000000000; Retries = 3.0; };
            history = [ { created = "2024-01-01T00:00:00Z"; created_by = "x"; empty_layer = false; } ];
            created = null;
          };
          m = lib.ociImageManifest {
            layers = [ layer ];
            inherit extraConfig;
            extraManifest = { artifactType = "application/x.test"; inherit subject; annotations.a = "b"; };
          };
        in
        [ (builtins.seq (builtins.deepSeq m.spec null) m.spec.extraManifest.subject) (lib.ociImageConfig { layers = [ layer ]; inherit extraConfig; }).spec.extraConfig ];
      expected = [
        {
          mediaType = "application/vnd.oci.image.manifest.v1+json";
          digest = "sha256:${builtins.concatStringsSep "" (builtins.genList (_: "0") 64)}";
          size = 2;
          platform = { architecture = "amd64"; os = "linux"; };
        }
        {
          config.Healthcheck = { Test = [ "CMD" "true" ]; Interval = 30000000000; Retries = 3.0; };
          history = [ { created = "2024-01-01T00:00:00Z"; created_by = "x"; empty_layer = false; } ];
          created = null;
        }
      ];
    };
    # The platform an ociImageManifest records, and the names of a layout:
    # tags (duplicates dropped), then platform tags; unknown (null) when a
    # platform is left to the tool.
    testPlatformsAndNames =
      let
        amd = lib.ociImageManifest { layers = [ layer ]; };
        arm = lib.ociImageManifest {
          layers = [ layer ];
          architecture = "arm64";
          extraConfig.variant = "v8";
        };
        unknown = lib.ociImageManifest { layers = [ layer ]; architecture = null; };
      in
      {
        expr = [
          arm.platform
          unknown.platform
          (lib.ociImageLayout { manifests = [ amd arm ]; tags = [ "1" "latest" "1" ]; platformTags = true; }).imageNames
          (lib.ociImageLayout { manifests = [ amd arm ]; tags = [ ]; }).imageNames
          (lib.ociImageLayout { manifests = [ amd unknown ]; platformTags = true; }).imageNames
          (lib.ociImageArchive {
            image = lib.ociImageLayout { manifests = [ amd arm ]; platformTags = true; };
            tag = "latest-linux-arm64-v8";
          }).spec.tag
        ];
        expected = [
          { architecture = "arm64"; os = "linux"; variant = "v8"; }
          null
          [ "1" "latest" "1-linux-amd64" "1-linux-arm64-v8" "latest-linux-amd64" "latest-linux-arm64-v8" ]
          [ "latest" ]
          null
          "latest-linux-arm64-v8"
        ];
      };
    testTags = {
      expr = map (t: (builtins.tryEval (common.checkTag "t" t)).success) [
        "latest"
        "_x"
        "v1.2.3-rc_1"
        "bad tag!"
        ".x"
        "-x"
        ""
      ];
      expected = [ true true true false false false false ];
    };
    testLevels = {
      expr = map (l: (builtins.tryEval (common.checkLevel "l" (builtins.head l) (builtins.elemAt l 1))).success) [
        [ "gzip" 1 ]
        [ "gzip" 9 ]
        [ "zstd" 19 ]
        [ "none" null ]
        [ "gzip" 0 ]
        [ "gzip" 10 ]
        [ "zstd" 20 ]
        [ "none" 1 ]
        [ "gzip" "6" ]
      ];
      expected = [ true true true true false false false false false ];
    };
    testConfigPassesThrough = {
      expr =
        (lib.ociImageConfig {
          layers = [ layer ];
          created = "2024-01-31T12:00:00Z";
          config = {
            Entrypoint = [ "/bin/app" ];
            Cmd = null;
            ExposedPorts."80/tcp" = { };
            Volumes = [ "/data" ];
            Labels."org.example" = "x";
          };
        }).spec.config;
      expected = {
        Entrypoint = [ "/bin/app" ];
        Cmd = null;
        ExposedPorts."80/tcp" = { };
        Volumes = [ "/data" ];
        Labels."org.example" = "x";
      };
    };
    testClosureRoots = {
      expr =
        (lib.ociLayerTar {
          files = [
            { source = "${builtins.storeDir}/abc-foo/etc/x"; destination = "/etc/x"; }
          ];
        }).exportReferencesGraph.closure;
      expected = [ "${builtins.storeDir}/abc-foo" ];
    };
    testNoClosure = {
      expr = (lib.ociLayerTar { includeClosure = false; }) ? exportReferencesGraph;
      expected = false;
    };
    testBadCompressionThrows = {
      expr = (builtins.tryEval (builtins.deepSeq (lib.ociLayerTar { compression = "xz"; }).spec null)).success;
      expected = false;
    };
    testLayersMustBeLayers = {
      expr = (builtins.tryEval (builtins.deepSeq (lib.ociImageConfig { layers = [ "x" ]; }).spec null)).success;
      expected = false;
    };
    # The root filesystem arguments go into the spec only when given, so
    # that a layer without them keeps its spec, and its digest.
    testLayerSpecWithoutRootfsArguments = {
      expr = builtins.attrNames (lib.ociLayerTar { files = [ { source = "${builtins.storeDir}/abc-foo"; } ]; }).spec;
      expected = [ "base" "closure" "compression" "files" ];
    };
    testLayerRootfsSpec = {
      expr =
        (lib.ociLayerTar {
          users = [ { name = "app"; uid = 1000; groups = [ "wheel" ]; } ];
          groups = [ { name = "wheel"; gid = 10; } ];
          directories = [ { path = "/var/lib/app"; uid = 1000; gid = 1000; mode = "0750"; } ];
          symlinks = [ { path = "/usr/bin/env"; target = "/usr/local/bin/env"; } ];
          perms = [ { path = "/var"; regex = ".*"; mode = "0755"; } ];
          files = [ { text = "port = 80\n"; destination = "/etc/app.conf"; mode = "0400"; uid = 1000; } ];
          tmp = true;
          nixDatabase = true;
          nixUid = 1000;
          nixGid = 100;
          includeClosure = false;
        }).spec;
      expected = {
        base = [ ];
        compression = "gzip";
        users = [ { name = "app"; uid = 1000; groups = [ "wheel" ]; } ];
        groups = [ { name = "wheel"; gid = 10; } ];
        directories = [ { path = "/var/lib/app"; uid = 1000; gid = 1000; mode = "0750"; } ];
        symlinks = [ { path = "/usr/bin/env"; target = "/usr/local/bin/env"; } ];
        perms = [ { path = "/var"; regex = ".*"; mode = "0755"; } ];
        files = [ { text = "port = 80\n"; destination = "/etc/app.conf"; mode = "0400"; uid = 1000; } ];
        tmp = true;
        nixDatabase = true;
        nixUid = 1000;
        nixGid = 100;
      };
    };
    # A link into the store, or a store path an inline text names, brings
    # that store path (and its closure) as a source does; without string
    # context, nothing.
    testSymlinkTargetIsARoot = {
      expr = (lib.ociLayerTar { symlinks = [ { path = "/usr/bin/env"; target = "${coreutils}/bin/env"; } ]; }).exportReferencesGraph.closure;
      expected = [ "${coreutils}" ];
    };
    testSymlinkTargetWithoutContextIsNoRoot = {
      expr =
        (lib.ociLayerTar {
          symlinks = [ { path = "/usr/bin/env"; target = builtins.unsafeDiscardStringContext "${coreutils}/bin/env"; } ];
        }).exportReferencesGraph.closure;
      expected = [ ];
    };
    testTextStorePathsAreRoots = {
      expr =
        (lib.ociLayerTar {
          files = [ { text = "exec ${app}/bin/app --env ${coreutils}/bin/env\n"; destination = "/etc/run"; } ];
        }).exportReferencesGraph.closure;
      expected = [ "${app}" "${coreutils}" ];
    };
    # nixDatabase: the closures of the layers below are read too.
    testNixDatabaseReadsTheBaseLayers = {
      expr =
        let
          below = lib.ociLayerTar { files = [ { source = "${dep}"; } ]; };
        in
        (lib.ociLayerTar {
          files = [ { source = "${app}"; } ];
          base = [ below ];
          nixDatabase = true;
        }).exportReferencesGraph.closure;
      expected = [ "${app}" "${dep}" ];
    };
    # ... and those of a base image nixoci built, which gives its roots.
    testNixDatabaseReadsANixociBaseImage = {
      expr =
        let
          base = lib.ociImage { name = "base"; files = [ { source = "${dep}"; } ]; };
        in
        [
          base.ociRoots
          (lib.ociImage {
            name = "on-base";
            fromImage = base;
            files = [ { source = "${app}"; } ];
            nixDatabase = true;
          }).ociRoots
          (lastLayer (
            lib.ociImage {
              name = "on-base";
              fromImage = base;
              files = [ { source = "${app}"; } ];
              nixDatabase = true;
            }
          )).exportReferencesGraph.closure
        ];
      expected = [
        [ "${dep}" ]
        [ "${app}" "${dep}" ]
        [ "${app}" "${dep}" ]
      ];
    };
    testNoDatabaseNoBaseClosure = {
      expr =
        (lib.ociLayerTar {
          files = [ { source = "${app}"; } ];
          base = [ (lib.ociLayerTar { files = [ { source = "${dep}"; } ]; }) ];
        }).exportReferencesGraph.closure;
      expected = [ "${app}" ];
    };
    # ociImage: /tmp in its own layer by default; tmp = false leaves it out.
    testImageTmpByDefault = {
      expr = (lastLayer (lib.ociImage { name = "x"; files = [ { source = "${app}"; } ]; maxLayers = null; })).spec.tmp or false;
      expected = true;
    };
    testImageTmpFalse = {
      expr = (lastLayer (lib.ociImage { name = "x"; files = [ { source = "${app}"; } ]; maxLayers = null; tmp = false; })).spec ? tmp;
      expected = false;
    };
    # Users alone make the image's own layer.
    testImageUsersAlone = {
      expr = map (l: l.spec.users or null) (lib.ociImage { name = "x"; users = [ { name = "app"; uid = 1000; } ]; }).layers;
      expected = [ [ { name = "app"; uid = 1000; } ] ];
    };
    # On a base with only a new config, the default /tmp adds no layer;
    # asked for, it does.
    testImageOnBaseAlone = {
      expr = map (
        extra: builtins.length (lib.ociImage ({ name = "x"; fromImage = "/base-layout"; } // extra)).layers
      ) [ { } { tmp = true; } { directories = [ { path = "/srv"; } ]; } ];
      expected = [ 0 1 1 ];
    };
    # The own layer of an image with a Nix database reads the whole image:
    # its closure and the layers given.
    testImageNixDatabaseCoversTheImage = {
      expr =
        (lastLayer (
          lib.ociImage {
            name = "x";
            files = [ { source = "${app}"; } ];
            layers = [ (lib.ociLayerTar { files = [ { source = "${dep}"; } ]; }) ];
            nixDatabase = true;
          }
        )).exportReferencesGraph.closure;
      expected = [ "${app}" "${dep}" ];
    };
    # Rules go to the own layer when the closure is not split.
    testImagePermsUnsplit = {
      expr =
        (lastLayer (
          lib.ociImage {
            name = "x";
            files = [ { source = "${app}"; } ];
            perms = [ { path = "${app}"; regex = ".*/var"; uid = 1000; } ];
            maxLayers = null;
          }
        )).spec.perms;
      expected = [ { path = "${app}"; regex = ".*/var"; uid = 1000; } ];
    };
    # Split, a rule on a store path goes to the closure's layers, which
    # hold it; the others to the own layer.
    testImagePermsSplit = {
      expr =
        let
          image = lib.ociImage {
            name = "x";
            files = [ { source = "${app}"; } ];
            perms = [
              { path = app; regex = ".*/var"; uid = 1000; }
              { path = "/home"; regex = ".*"; gid = 100; }
            ];
          };
        in
        map (l: l.spec.perms or [ ]) image.layers;
      expected = [
        [ { path = "${app}"; regex = ".*/var"; uid = 1000; } ]
        [ { path = "/home"; regex = ".*"; gid = 100; } ]
      ];
    };
    testUnique = {
      expr = common.unique [ "a" "b" "a" "c" "b" ];
      expected = [ "a" "b" "c" ];
    };
    testImageAttributes = {
      expr = builtins.attrNames (lib.ociImage { name = "x"; files = [ ]; }) != [ ];
      expected = true;
    };
  };
  failing = builtins.filter (n: tests.${n}.expr != tests.${n}.expected) (builtins.attrNames tests);
in
map (n: {
  name = n;
  got = tests.${n}.expr;
  expected = tests.${n}.expected;
}) failing

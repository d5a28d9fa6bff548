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
        "2024-02-29T23:59:60.5+01:00"
        "1970-01-01t00:00:01z"
        "2023-02-29T00:00:00Z"
        "2024-01-31 12:00:00Z"
        "2024-01-31T12:00:00"
        "2024-01-31T12:00:00+24:00"
        "yesterday"
      ];
      expected = [ true true true false false false false false ];
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

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

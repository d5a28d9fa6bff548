# Bad arguments to every nix/ function, for tests/nix.rs: each must fail at
# evaluation (nix-instantiate) with a message naming the function and the
# attribute. Nothing is built, so any file stands in for the tool.
let
  lib = import ../../nix {
    nixoci = ./bad.nix;
    buildSystem = "x86_64-linux";
  };
  inherit (lib)
    ociLayerTar
    ociImageConfig
    ociImageManifest
    ociImageLayout
    ociImage
    ociImageArchive
    ;
  file = builtins.toFile "file" "x\n";
  fake =
    name: extra:
    derivation {
      inherit name;
      system = "x86_64-linux";
      builder = ./bad.nix;
    }
    // extra;
  # A package without meta.mainProgram, and one with several outputs.
  hello = fake "hello-2.12" { pname = "hello"; meta = { }; };
  multi = fake "tool" { outputs = [ "out" "man" ]; };
  layer = ociLayerTar { files = [ { source = file; destination = "/f"; } ]; };
  manifest = ociImageManifest { layers = [ layer ]; };
  layout = ociImageLayout { manifests = [ manifest ]; };
  at = destination: extra: ociLayerTar { files = [ ({ source = file; inherit destination; } // extra) ]; };
in
{
  layerUidString = at "/f" { uid = "1000"; };
  layerUidNegative = at "/f" { uid = -1; };
  layerGidTooBig = at "/f" { gid = 4294967296; };
  layerModeTooBig = at "/f" { mode = "17777"; };
  layerModeNotOctal = at "/f" { mode = "0o755"; };
  layerSourceNumber = ociLayerTar { files = [ { source = 5; destination = "/f"; } ]; };
  layerLevelString = ociLayerTar { level = "6"; };
  layerLevelTooHigh = ociLayerTar { level = 42; };
  layerLevelZstdTooHigh = ociLayerTar { compression = "zstd"; level = 20; };
  layerLevelUncompressed = ociLayerTar { compression = "none"; level = 1; };
  layerCompression = ociLayerTar { compression = "xz"; };
  layerIncludeClosure = ociLayerTar { includeClosure = "yes"; };
  layerFilesNotList = ociLayerTar { files = { source = file; }; };
  layerBaseNotList = ociLayerTar { base = layer; };
  layerNoMainProgram = ociLayerTar { files = [ { source = hello; destination = "/bin/hello"; } ]; };
  layerMultiOutputNoMainProgram = ociLayerTar { files = [ { source = multi; destination = "/opt/tool"; } ]; };

  configArchitecture = ociImageConfig { layers = [ layer ]; architecture = 5; };
  configOs = ociImageConfig { layers = [ layer ]; os = "linux os"; };
  configVariant = ociImageConfig { layers = [ layer ]; variant = ""; };
  configCreated = ociImageConfig { layers = [ layer ]; created = "yesterday"; };
  configCreatedBadDay = ociImageConfig { layers = [ layer ]; created = "2023-02-29T00:00:00Z"; };
  configAuthor = ociImageConfig { layers = [ layer ]; author = [ "me" ]; };
  configCmdString = ociImageConfig { layers = [ layer ]; config.Cmd = "echo"; };
  configUnknownField = ociImageConfig { layers = [ layer ]; config.Cmdd = [ "echo" ]; };
  configEnvNumbers = ociImageConfig { layers = [ layer ]; config.Env = [ 1 ]; };
  configLabels = ociImageConfig { layers = [ layer ]; config.Labels.version = 2; };
  configUser = ociImageConfig { layers = [ layer ]; config.User = 1000; };
  configExposedPorts = ociImageConfig { layers = [ layer ]; config.ExposedPorts = "80/tcp"; };
  configExtraRootfs = ociImageConfig { layers = [ layer ]; extraConfig.rootfs = { }; };
  configLayersNotLayers = ociImageConfig { layers = [ file ]; };

  manifestCmdString = ociImageManifest { layers = [ layer ]; config.Cmd = "echo"; };
  manifestCreated = ociImageManifest { layers = [ layer ]; created = "yesterday"; };
  manifestAnnotation = ociImageManifest { layers = [ layer ]; annotations.version = 2; };
  manifestExtraLayers = ociImageManifest { layers = [ layer ]; extraManifest.layers = [ ]; };

  layoutTag = ociImageLayout { manifests = [ manifest ]; tag = "bad tag!"; };
  layoutTags = ociImageLayout { manifests = [ manifest ]; tags = [ "latest" ".hidden" ]; };
  layoutTagTooLong = ociImageLayout { manifests = [ manifest ]; tags = [ (builtins.concatStringsSep "" (builtins.genList (_: "x") 129)) ]; };
  layoutAnnotation = ociImageLayout { manifests = [ manifest ]; annotations.n = 1; };
  layoutPlatformTags = ociImageLayout { manifests = [ manifest ]; platformTags = "yes"; };
  layoutExtraIndex = ociImageLayout { manifests = [ manifest ]; extraIndex.manifests = [ ]; };

  imageTag = ociImage { name = "x"; tag = "bad tag!"; };
  imageUid = ociImage { name = "x"; files = [ { source = file; destination = "/f"; uid = "0"; } ]; };
  imageArchitecture = ociImage { name = "x"; architecture = 5; };
  imageCreated = ociImage { name = "x"; created = "yesterday"; };
  imageCmd = ociImage { name = "x"; config.Cmd = "echo"; };
  imageCompression = ociImage { name = "x"; compression = "xz"; };
  imageAnnotation = ociImage { name = "x"; annotations.n = 1; };
  imageNoMainProgram = ociImage { name = "x"; files = [ { source = hello; destination = "/bin/hello"; } ]; };

  archiveFormat = ociImageArchive { image = layout; format = "zip"; };
  archiveTag = ociImageArchive { image = layout; tag = "bad tag!"; };
  archiveImageName = ociImageArchive { image = layout; imageName = 5; };
}

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
    ociPullImage
    ;
  file = builtins.toFile "file" "x\n";
  pull = extra: ociPullImage ({
    imageName = "registry.example/app";
    imageDigest = digest;
    hash = "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  } // extra);
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
  # A derivation with two outputs, each selectable (drv.dev).
  twoOutputs = derivation {
    name = "multi";
    system = "x86_64-linux";
    builder = ./bad.nix;
    outputs = [ "out" "dev" ];
  };
  layer = ociLayerTar { files = [ { source = file; destination = "/f"; } ]; };
  manifest = ociImageManifest { layers = [ layer ]; };
  layout = ociImageLayout { manifests = [ manifest ]; };
  arm = ociImageManifest { layers = [ layer ]; architecture = "arm64"; variant = "v8"; };
  multiLayout = ociImageLayout { manifests = [ manifest arm ]; platformTags = true; };
  digest = "sha256:${builtins.concatStringsSep "" (builtins.genList (_: "a") 64)}";
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
  layerDestinationDotDot = at "/a/../b" { };
  layerDestinationDot = at "/a/./b" { };
  layerDestinationEmptyComponent = at "/a//b" { };
  layerDestinationLongComponent = at "/${builtins.concatStringsSep "" (builtins.genList (_: "x") 256)}" { };
  layerDestinationWhiteout = at "/a/.wh.b" { };
  layerSourceRelative = ociLayerTar { files = [ { source = "rel"; destination = "/f"; } ]; };
  layerSourceDotDotNoDestination = ociLayerTar { files = [ { source = "/nix/store/abc-x/../y"; } ]; };
  layerName = ociLayerTar { name = 5; };
  layerNameStoreChars = ociLayerTar { name = "bad name!"; };
  layerSelectedOutputNoMainProgram = ociLayerTar { files = [ { source = twoOutputs.dev; destination = "/dev-out"; } ]; };
  layerMultiOutputNoMainProgram = ociLayerTar { files = [ { source = multi; destination = "/opt/tool"; } ]; };

  configArchitecture = ociImageConfig { layers = [ layer ]; architecture = 5; };
  configOs = ociImageConfig { layers = [ layer ]; os = "linux os"; };
  configVariant = ociImageConfig { layers = [ layer ]; variant = ""; };
  configCreated = ociImageConfig { layers = [ layer ]; created = "yesterday"; };
  configCreatedBadDay = ociImageConfig { layers = [ layer ]; created = "2023-02-29T00:00:00Z"; };
  configCreatedLowerCase = ociImageConfig { layers = [ layer ]; created = "2024-01-01t00:00:00z"; };
  configCreatedLeapSecond = ociImageConfig { layers = [ layer ]; created = "2016-12-31T23:59:60Z"; };
  configNoLayers = ociImageConfig { layers = [ ]; };
  configName = ociImageConfig { name = 5; layers = [ layer ]; };
  configEnvNoName = ociImageConfig { layers = [ layer ]; config.Env = [ "=x" ]; };
  configEnvNoEquals = ociImageConfig { layers = [ layer ]; config.Env = [ "PATH" ]; };
  configExtraCreated = ociImageConfig { layers = [ layer ]; extraConfig.created = "garbage"; };
  configExtraHistoryCreated = ociImageConfig { layers = [ layer ]; extraConfig.history = [ { created = "garbage"; } ]; };
  configExtraHistoryNotList = ociImageConfig { layers = [ layer ]; extraConfig.history = { }; };
  configExtraHealthcheckInterval = ociImageConfig { layers = [ layer ]; extraConfig.config.Healthcheck.Interval = "30s"; };
  configExtraHealthcheckTest = ociImageConfig { layers = [ layer ]; extraConfig.config.Healthcheck.Test = "true"; };
  configExtraEnv = ociImageConfig { layers = [ layer ]; extraConfig.config.Env = [ "X" ]; };
  configExtraExposedPorts = ociImageConfig { layers = [ layer ]; extraConfig.config.ExposedPorts = [ "80/tcp" ]; };
  configExtraArchitectureNull = ociImageConfig { layers = [ layer ]; extraConfig.architecture = null; };
  configExtraOsFeatures = ociImageConfig { layers = [ layer ]; extraConfig."os.features" = "x"; };
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
  manifestNoLayers = ociImageManifest { layers = [ ]; };
  manifestExtraCreated = ociImageManifest { layers = [ layer ]; extraConfig.created = "garbage"; };
  manifestArtifactType = ociImageManifest { layers = [ layer ]; extraManifest.artifactType = 5; };
  manifestSubject = ociImageManifest { layers = [ layer ]; extraManifest.subject = 5; };
  manifestSubjectDigest = ociImageManifest {
    layers = [ layer ];
    extraManifest.subject = { mediaType = "application/vnd.oci.image.manifest.v1+json"; digest = "sha256:abc"; size = 1; };
  };
  manifestSubjectSize = ociImageManifest {
    layers = [ layer ];
    extraManifest.subject = { mediaType = "application/vnd.oci.image.manifest.v1+json"; inherit digest; size = -1; };
  };
  manifestExtraAnnotation = ociImageManifest { layers = [ layer ]; extraManifest.annotations.n = 1; };
  manifestExtraLayers = ociImageManifest { layers = [ layer ]; extraManifest.layers = [ ]; };

  layoutTag = ociImageLayout { manifests = [ manifest ]; tag = "bad tag!"; };
  layoutTags = ociImageLayout { manifests = [ manifest ]; tags = [ "latest" ".hidden" ]; };
  layoutTagTooLong = ociImageLayout { manifests = [ manifest ]; tags = [ (builtins.concatStringsSep "" (builtins.genList (_: "x") 129)) ]; };
  layoutAnnotation = ociImageLayout { manifests = [ manifest ]; annotations.n = 1; };
  layoutPlatformTags = ociImageLayout { manifests = [ manifest ]; platformTags = "yes"; };
  layoutNoManifests = ociImageLayout { manifests = [ ]; };
  layoutSamePlatform = ociImageLayout { manifests = [ manifest manifest ]; };
  layoutName = ociImageLayout { name = 5; manifests = [ manifest ]; };
  layoutPlatformTagIsTag = ociImageLayout { manifests = [ manifest arm ]; platformTags = true; tags = [ "latest" "latest-linux-amd64" ]; };
  layoutExtraIndexSubject = ociImageLayout { manifests = [ manifest ]; extraIndex.subject = 5; };
  layoutExtraIndex = ociImageLayout { manifests = [ manifest ]; extraIndex.manifests = [ ]; };

  imageTag = ociImage { name = "x"; tag = "bad tag!"; };
  imageUid = ociImage { name = "x"; files = [ { source = file; destination = "/f"; uid = "0"; } ]; };
  imageArchitecture = ociImage { name = "x"; architecture = 5; };
  imageCreated = ociImage { name = "x"; created = "yesterday"; };
  imageCmd = ociImage { name = "x"; config.Cmd = "echo"; };
  imageCompression = ociImage { name = "x"; compression = "xz"; };
  imageAnnotation = ociImage { name = "x"; annotations.n = 1; };
  imageNothing = ociImage { name = "x"; };
  imageContentsNumber = ociImage { name = "x"; contents = [ 5 ]; };
  imageContentsRelative = ociImage { name = "x"; contents = [ "rel" ]; };
  imageName = ociImage { name = 5; files = [ { source = file; destination = "/f"; } ]; };
  imageNoMainProgram = ociImage { name = "x"; files = [ { source = hello; destination = "/bin/hello"; } ]; };

  # Issue 21: what a Nix user following the README hit.
  extraHealthcheckAtTop = ociImage { name = "x"; files = [ { source = file; destination = "/f"; } ]; extraConfig.Healthcheck.Test = [ "NONE" ]; };
  extraArchitectureTypo = ociImageConfig { layers = [ layer ]; extraConfig.archtecture = "amd64"; };
  extraEntrypointTypo = ociImageConfig { layers = [ layer ]; extraConfig.config.Entrypiont = [ "/bin/sh" ]; };
  extraUnknown = ociImageConfig { layers = [ layer ]; extraConfig.zzzzzzzz = 1; };
  extraManifestTypo = ociImageManifest { layers = [ layer ]; extraManifest.artifactTyp = "a/b"; };
  extraIndexTypo = ociImageLayout { manifests = [ manifest ]; extraIndex.anotations = { }; };
  configHealthcheck = ociImageConfig { layers = [ layer ]; config.Healthcheck.Test = [ "NONE" ]; };
  configExposedPortsNumbers = ociImage { name = "x"; files = [ { source = file; destination = "/f"; } ]; config.ExposedPorts = [ 8080 ]; };
  configWorkingDirRelative = ociImage { name = "x"; files = [ { source = file; destination = "/f"; } ]; config.WorkingDir = "app"; };
  extraWorkingDirRelative = ociImageConfig { layers = [ layer ]; extraConfig.config.WorkingDir = "app"; };
  imageArchitectureNix = ociImage { name = "x"; files = [ { source = file; destination = "/f"; } ]; architecture = "x86_64"; };
  extraArchitectureNix = ociImageConfig { layers = [ layer ]; extraConfig.architecture = "aarch64"; };
  imageSbom = ociImage { name = "x"; files = [ { source = file; destination = "/f"; } ]; sbom = "xml"; };
  imageNameReference = ociImage { name = "ghcr.io/org/app:1.0"; files = [ { source = file; destination = "/f"; } ]; };
  imageFromRegistryName = ociImage { name = "x"; fromImage = "docker.io/library/alpine:3.20"; };
  verifyList = lib.ociVerify [ layout ];
  verifyLayer = lib.ociVerify layer;

  pullNameTag = pull { imageName = "registry.example/app:1.0"; };
  pullNameUpper = pull { imageName = "Registry/App"; };
  pullDigest = pull { imageDigest = "latest"; };
  pullHash = pull { hash = "0000"; };
  pullOsAlone = pull { os = "linux"; };
  pullAllAndArch = pull { allPlatforms = true; os = "linux"; arch = "amd64"; };
  pullArch = pull { os = "linux"; arch = "x86 64"; };
  pullArchNix = pull { os = "linux"; arch = "aarch64"; };
  pullCaFile = pull { caFile = 5; };

  imageStrictUncompressed = ociImage {
    name = "strict";
    files = [ { source = file; destination = "/f"; } ];
    compression = "none";
    strictReferences = true;
  };
  layoutStrictNotBool = ociImageLayout { manifests = [ manifest ]; strictReferences = "yes"; };
  archiveFormat = ociImageArchive { image = layout; format = "zip"; };
  archiveTag = ociImageArchive { image = layout; tag = "bad tag!"; };
  archiveImageName = ociImageArchive { image = layout; imageName = 5; };
  archiveImageNameDigest = ociImageArchive { image = layout; imageName = "a@${digest}"; };
  archiveImageNameBad = ociImageArchive { image = layout; imageName = "Bad Name!"; };
  archiveImageNameBadTag = ociImageArchive { image = layout; imageName = "a:bad tag"; };
  archiveImageNameBadPort = ociImageArchive { image = layout; imageName = "localhost:99999/a"; };
  archiveOfLayer = ociImageArchive { image = layer; };
  archiveOfManifest = ociImageArchive { image = manifest; };
  archiveUnknownTag = ociImageArchive { image = layout; tag = "nope"; };
  archiveUnknownPlatformTag = ociImageArchive { image = multiLayout; tag = "latest-linux-s390x"; };

  # The root filesystem arguments (tests/nix/rootfs.rs).
  rootfsUserName = ociLayerTar { users = [ { name = "App"; uid = 1000; } ]; };
  rootfsUserNameLong = ociImage { name = "x"; users = [ { name = builtins.concatStringsSep "" (builtins.genList (_: "a") 33); uid = 1; } ]; };
  rootfsUserNoUid = ociLayerTar { users = [ { name = "app"; } ]; };
  rootfsUserUnknown = ociLayerTar { users = [ { name = "app"; uid = 1000; homeDir = "/srv"; } ]; };
  rootfsUserUidTooBig = ociLayerTar { users = [ { name = "app"; uid = 4294967295; } ]; };
  rootfsUserUidString = ociImage { name = "x"; users = [ { name = "app"; uid = "1000"; } ]; };
  rootfsUserHomeRelative = ociImage { name = "x"; users = [ { name = "app"; uid = 1000; home = "home/app"; } ]; };
  rootfsUserHomeDotDot = ociLayerTar { users = [ { name = "app"; uid = 1000; home = "/home/../etc"; } ]; };
  rootfsUserShellColon = ociLayerTar { users = [ { name = "app"; uid = 1000; shell = "/bin/sh:x"; } ]; };
  rootfsUserGroupsString = ociLayerTar { users = [ { name = "app"; uid = 1000; groups = "wheel"; } ]; };
  rootfsUserCreateHome = ociLayerTar { users = [ { name = "app"; uid = 1000; createHome = "no"; } ]; };
  rootfsUsersNotList = ociImage { name = "x"; users = { name = "app"; uid = 1000; }; };
  rootfsUserNotAttrs = ociLayerTar { users = [ "app" ]; };
  rootfsGroupMember = ociLayerTar { groups = [ { name = "staff"; gid = 50; members = [ "Bob" ]; } ]; };
  rootfsGroupNoGid = ociImage { name = "x"; groups = [ { name = "staff"; } ]; };
  rootfsDirectoryRoot = ociLayerTar { directories = [ { path = "/"; } ]; };
  rootfsDirectorySlash = ociImage { name = "x"; directories = [ { path = "/srv/"; } ]; };
  rootfsDirectoryMode = ociLayerTar { directories = [ { path = "/tmp"; mode = 1777; } ]; };
  rootfsDirectoryString = ociLayerTar { directories = [ "/tmp" ]; };
  rootfsDirectoryDotDot = ociImage { name = "x"; directories = [ { path = "/srv/../etc"; } ]; };
  rootfsDirectoryUid = ociImage { name = "x"; directories = [ { path = "/srv"; uid = -1; } ]; };
  rootfsSymlinkNoTarget = ociLayerTar { symlinks = [ { path = "/usr/bin/env"; } ]; };
  rootfsSymlinkEmptyTarget = ociImage { name = "x"; symlinks = [ { path = "/usr/bin/env"; target = ""; } ]; };
  rootfsSymlinkTargetPath = ociLayerTar { symlinks = [ { path = "/usr/bin/env"; target = ./bad.nix; } ]; };
  rootfsSymlinkRelative = ociLayerTar { symlinks = [ { path = "usr/bin/env"; target = "/bin/env"; } ]; };
  rootfsPermsNothing = ociLayerTar { perms = [ { path = "/var"; regex = ".*"; } ]; };
  rootfsPermsNoRegex = ociImage { name = "x"; perms = [ { path = "/var"; mode = "0755"; } ]; };
  rootfsPermsRelative = ociLayerTar { perms = [ { path = "var"; regex = ".*"; mode = "0755"; } ]; };
  rootfsPermsTypo = ociImage { name = "x"; perms = [ { path = "/var"; regex = ".*"; mod = "0755"; } ]; };
  rootfsPermsMode = ociLayerTar { perms = [ { path = "/var"; regex = ".*"; mode = 755; } ]; };
  rootfsTextAndSource = ociLayerTar { files = [ { source = file; text = "x"; destination = "/f"; } ]; };
  rootfsTextNoDestination = ociImage { name = "x"; files = [ { text = "x"; } ]; };
  rootfsTextIntoDirectory = ociLayerTar { files = [ { text = "x"; destination = "/etc/"; } ]; };
  rootfsTextNumber = ociLayerTar { files = [ { text = 5; destination = "/f"; } ]; };
  rootfsTextLink = ociLayerTar { files = [ { text = "x"; destination = "/f"; link = true; } ]; };
  rootfsTextMode = ociImage { name = "x"; files = [ { text = "x"; destination = "/f"; mode = 644; } ]; };
  rootfsNoSource = ociLayerTar { files = [ { destination = "/f"; } ]; };
  rootfsLayerTmp = ociLayerTar { tmp = "yes"; };
  rootfsImageTmp = ociImage { name = "x"; files = [ { source = file; destination = "/f"; } ]; tmp = 1; };
  rootfsNixDatabase = ociImage { name = "x"; files = [ { source = file; destination = "/f"; } ]; nixDatabase = "yes"; };
  rootfsNixUidAlone = ociLayerTar { nixUid = 1000; };
  rootfsNixGidAlone = ociImage { name = "x"; files = [ { source = file; destination = "/f"; } ]; nixGid = 100; };
  rootfsNixUidNegative = ociLayerTar { nixDatabase = true; nixUid = -1; };
}

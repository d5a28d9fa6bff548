{ common }:
let
  inherit (common)
    checkBool
    checkName
    checkArchitecture
    checkPlatformName
    describe
    tool
    buildSystem
    ;
in
/**
  An image of a registry, pulled by digest into an OCI image layout: a
  fixed-output derivation, so it is fetched once and then built on offline,
  like `fetchurl`. `nixoci prefetch REFERENCE` prints the arguments.

  The layout holds the registry's blobs byte for byte, and `index.json`
  and `oci-layout` written canonically, so the same digest gives the same
  `hash` on every machine. It can be given as `fromImage`, pushed, archived
  or verified as any layout.

  # Inputs

  `imageName` (string)
  : `[REGISTRY/]REPOSITORY`, without tag or digest (`docker.io` and
    `library/` are implied as Docker implies them).

  `imageDigest` (string)
  : `sha256:…`: the platform's image manifest (what `nixoci prefetch`
    prints), or an image index.

  `hash` (SRI string)
  : The hash of the layout (Nix's recursive hash), as `nixoci prefetch`
    prints it. A wrong one fails the build with the right one named, as for
    any fixed-output derivation.

  `os`, `arch` (strings, default null), `variant` (string or null)
  : The platform. For an index, which image to take (required unless
    `allPlatforms`); for an image manifest, checked against its config.

  `allPlatforms` (bool, default false)
  : With an index digest: keep every platform.

  `caFile` (path or null)
  : A PEM file of CA certificates to trust, for a registry with a private
    CA (a Nix path: it is copied to the store, so the sandbox sees it).
    Public registries need nothing: the system's CA roots are trusted, and
    where there are none (the sandbox has no `/etc/ssl`) Mozilla's roots
    built into nixoci are. Without `caFile`, the CA bundle that
    `NIX_SSL_CERT_FILE` names in the environment of the Nix daemon (or of
    `nix-build`) is trusted besides them, as nixpkgs' fetchers do, so a
    pull through a TLS-intercepting proxy needs nothing in the Nix code;
    `caFile`, when given, is trusted instead of it. The file must be
    readable in the sandbox, else the variable is ignored: with Nix 2.8,
    list it in `extra-sandbox-paths`; later Nix versions put their
    `ssl-cert-file` (which defaults to `NIX_SSL_CERT_FILE`) at
    `/etc/ssl/certs/ca-certificates.crt` in a fixed-output build, where
    nixoci finds it as the system's roots.

  `name` (string, default from `imageName`)
  : The derivation's name.

  Credentials never go into the store: the build reads `NIXOCI_CREDS`
  (`user:password`), `REGISTRY_AUTH_FILE` and `DOCKER_CONFIG` from the
  environment of the Nix daemon (or of `nix-build`, in a single-user
  install) through `impureEnvVars`. A file they name must be readable in
  the sandbox (`extra-sandbox-paths`).

  # Type

  ```
  ociPullImage :: { imageName :: String; imageDigest :: String; hash :: String; os? :: String; arch? :: String; variant? :: String; allPlatforms? :: Bool; caFile? :: Path; name? :: String; } -> Derivation
  ```

  # Examples

  ```nix
  ociPullImage {
    imageName = "docker.io/library/busybox";
    imageDigest = "sha256:…";
    hash = "sha256-…";
    os = "linux";
    arch = "amd64";
  }
  ```
*/
{
  imageName,
  imageDigest,
  hash,
  os ? null,
  arch ? null,
  variant ? null,
  allPlatforms ? false,
  caFile ? null,
  name ? null,
}:
let
  fn = "ociPullImage";
  isString = what: v: if builtins.isString v then v else throw "${fn}: ${what} must be a string, not ${describe v}";
  imageName' =
    let
      v = isString "imageName" imageName;
    in
    if builtins.match "(\\[[0-9a-fA-F:]+](:[0-9]+)?/)?[a-z0-9][a-z0-9._:/-]*" v == null then
      throw "${fn}: imageName ${builtins.toJSON v} is not [REGISTRY/]REPOSITORY (lower case; no digest: give it as imageDigest)"
    else if builtins.match ".*:[^/]*" v != null then
      throw "${fn}: imageName ${builtins.toJSON v} has a tag: give [REGISTRY/]REPOSITORY, and the image as imageDigest"
    else
      v;
  imageDigest' =
    let
      v = isString "imageDigest" imageDigest;
    in
    if builtins.match "sha256:[0-9a-f]{64}" v == null then
      throw "${fn}: imageDigest ${builtins.toJSON v} is not sha256: and 64 lower-case hex digits (nixoci prefetch prints it)"
    else
      v;
  hash' =
    let
      v = isString "hash" hash;
    in
    if builtins.match "sha256-[A-Za-z0-9+/]{43}=" v == null then
      throw "${fn}: hash ${builtins.toJSON v} is not an SRI sha256 hash (sha256-…=; nixoci prefetch prints it)"
    else
      v;
  platformGiven = os != null || arch != null;
  platform =
    if checkBool "${fn}: allPlatforms" allPlatforms then
      if platformGiven || variant != null then
        throw "${fn}: allPlatforms keeps every platform: give it without os, arch and variant"
      else
        [ ]
    else if !platformGiven then
      [ ]
    else if os == null || arch == null then
      throw "${fn}: give os and arch together (or neither)"
    else
      [
        "--platform"
        "${checkPlatformName "${fn}: os" os}/${checkArchitecture "${fn}: arch" arch}${
          if variant == null then "" else "/${checkPlatformName "${fn}: variant" variant}"
        }"
      ];
  ca =
    if caFile == null then
      [ ]
    else if builtins.isPath caFile || (builtins.isString caFile && builtins.substring 0 1 caFile == "/") then
      [ "--ca-file" "${caFile}" ]
    else
      throw "${fn}: caFile must be a path (./ca.pem), not ${describe caFile}";
  repo = builtins.baseNameOf imageName';
  drvName =
    if name != null then
      checkName "${fn}: name" name
    else
      "${repo}-${builtins.substring 7 12 imageDigest'}";
  drv = derivation {
    name = drvName;
    system = buildSystem;
    builder = tool;
    args =
      [ "pull" "--quiet" ]
      ++ platform
      ++ ca
      ++ [
        "${imageName'}@${imageDigest'}"
        (builtins.placeholder "out")
      ];
    outputHashMode = "recursive";
    outputHashAlgo = "sha256";
    outputHash = hash';
    # Credentials, proxies and the proxy's CA bundle from the environment
    # of the Nix daemon; never written into the derivation.
    impureEnvVars = [
      "NIX_SSL_CERT_FILE"
      "NIXOCI_CREDS"
      "REGISTRY_AUTH_FILE"
      "DOCKER_CONFIG"
      "http_proxy"
      "https_proxy"
      "HTTP_PROXY"
      "HTTPS_PROXY"
      "no_proxy"
      "NO_PROXY"
    ];
  };
in
drv
// {
  # What fromImage records as the base's name (annotations).
  imageName = imageName';
  imageDigest = imageDigest';
  command = "pull";
}

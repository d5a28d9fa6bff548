# The nixoci tool, built from this repository with the versions Cargo.lock pins.
{ rustPlatform }:
let
  root = ../.;
  # Only what the build reads: a change to tests, docs or Nix files does not
  # rebuild the tool.
  wanted = [ "Cargo.toml" "Cargo.lock" "src" ];
in
rustPlatform.buildRustPackage {
  pname = "nixoci";
  version = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).package.version;
  src = builtins.path {
    path = root;
    name = "nixoci-source";
    filter =
      path: type:
      let
        rel = builtins.substring (builtins.stringLength (toString root) + 1) (-1) (toString path);
        top = builtins.head (builtins.split "/" rel);
      in
      builtins.elem top wanted;
  };
  cargoLock.lockFile = ../Cargo.lock;
  # The test suite drives podman, umoci, a registry and Nix itself: it runs
  # in CI (.ci/run), not in the sandbox.
  doCheck = false;
  meta = {
    description = "Reproducible OCI images from Nix store paths";
    mainProgram = "nixoci";
  };
}

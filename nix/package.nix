# The nixoci tool, built from this repository with the versions Cargo.lock
# pins, with its shell completions and man pages.
{
  lib,
  stdenv,
  rustPlatform,
  installShellFiles,
}:
let
  cargo = (lib.importTOML ../Cargo.toml).package;
in
rustPlatform.buildRustPackage {
  pname = cargo.name;
  inherit (cargo) version;
  # Only what the build reads: a change to tests, docs or Nix files does not
  # rebuild the tool. .ci/vendored-build builds from these same files, offline,
  # with only a C compiler (aws-lc-sys, zstd-sys and libdeflate-sys compile C).
  # tests/docs.rs is there because Cargo.toml names it (a [[test]] without
  # libtest's harness) and cargo refuses a manifest whose named target is
  # missing, though a build never compiles it.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../src
      ../tests/docs.rs
    ];
  };
  cargoLock.lockFile = ../Cargo.lock;
  # The test suite drives podman, umoci, a registry and Nix itself: it runs
  # in CI (.ci/run), not in the sandbox.
  doCheck = false;
  # The completions (bash, zsh, fish) and the man pages (nixoci.1,
  # nixoci-push.1, ...) come from the built tool itself, generated from the
  # definitions that give --help, so that `man nixoci push` works after
  # `nix profile install`. A cross build cannot run the tool: it then
  # ships without them.
  nativeBuildInputs = [ installShellFiles ];
  postInstall = lib.optionalString (stdenv.buildPlatform.canExecute stdenv.hostPlatform) ''
    installShellCompletion --cmd nixoci \
      --bash <($out/bin/nixoci completions bash) \
      --zsh <($out/bin/nixoci completions zsh) \
      --fish <($out/bin/nixoci completions fish)
    $out/bin/nixoci manpages -q -o man-pages
    installManPage man-pages/*.1
  '';
  meta = {
    inherit (cargo) description;
    mainProgram = "nixoci";
    # Cargo.toml: MIT OR Apache-2.0 (LICENSE-MIT, LICENSE-APACHE).
    license = with lib.licenses; [
      mit
      asl20
    ];
    # Linux only: the tool calls renameat2, statvfs and mknod, with no
    # fallback for other kernels.
    platforms = lib.platforms.linux;
  }
  # The project publishes no address yet: when Cargo.toml gets `homepage`
  # (or `repository`), the package's homepage follows it.
  // lib.optionalAttrs (cargo ? homepage || cargo ? repository) {
    homepage = cargo.homepage or cargo.repository;
  };
}

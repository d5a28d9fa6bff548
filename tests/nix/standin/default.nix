# `import nixpkgs { system; overlays; }` for the stand-in: a fixed point of
# a few fake packages (shell scripts made with busybox) plus the overlays.
{
  system ? "x86_64-linux",
  overlays ? [ ],
  ...
}:
let
  bb = builtins.path { path = ./busybox; name = "busybox"; };
  run =
    name: script: extra:
    derivation (
      {
        inherit name system;
        builder = "${bb}/busybox";
        args = [ "sh" "-c" script ];
        PATH = "${bb}";
      }
      // extra
    );
  # A package with one program, bin/NAME, and meta.mainProgram.
  program =
    name:
    run name ''
      ${bb}/busybox mkdir -p $out/bin
      printf '#!/bin/sh\necho ${name}\n' > $out/bin/${name}
      ${bb}/busybox chmod 555 $out/bin/${name}
    '' { } // { meta.mainProgram = name; };
  # A package with several programs, bin/NAME for each of `bins` (the
  # first is meta.mainProgram), for the guide's examples that link one of
  # them (`${pkgs.coreutils}/bin/env`, busybox's /bin/sh).
  programs =
    name: bins:
    run name ''
      ${bb}/busybox mkdir -p $out/bin
      for b in ${builtins.concatStringsSep " " bins}; do
        printf '#!/bin/sh\necho ${name} %s\n' "$b" > $out/bin/$b
        ${bb}/busybox chmod 555 $out/bin/$b
      done
    '' { } // { meta.mainProgram = builtins.head bins; };

  base = final: {
    lib = import ./lib.nix;
    callPackage =
      fn: args:
      let
        f = if builtins.isFunction fn then fn else import fn;
      in
      f (builtins.intersectAttrs (builtins.functionArgs f) final // args);
    # canExecute as nixpkgs' platforms have it (lib.systems.elaborate):
    # whether programs built for the given platform run on this one.
    stdenv = {
      hostPlatform.system = system;
      buildPlatform = {
        inherit system;
        canExecute = platform: platform.system == system;
      };
    };
    buildPackages = final;
    # Copies the prebuilt binary, after checking that the source holds what
    # a cargo build reads and the lock file given is the source's own; then,
    # as stdenv does, sources the setup hooks of nativeBuildInputs and runs
    # postInstall (in the build directory, with the build's `set -e`).
    rustPlatform.buildRustPackage =
      attrs:
      run "${attrs.pname}-${attrs.version}"
        ''
          set -e
          ${bb}/busybox test -f ${attrs.src}/Cargo.toml
          ${bb}/busybox test -d ${attrs.src}/src
          ${bb}/busybox cmp ${attrs.cargoLock.lockFile} ${attrs.src}/Cargo.lock
          ${bb}/busybox mkdir -p $out/bin
          ${bb}/busybox cp ${./nixoci} $out/bin/nixoci
          for input in $nativeBuildInputs; do
            if [ -f $input/nix-support/setup-hook ]; then
              . $input/nix-support/setup-hook
            fi
          done
          eval "$postInstall"
        ''
        {
          nativeBuildInputs = attrs.nativeBuildInputs or [ ];
          postInstall = attrs.postInstall or "";
        }
      // {
        inherit (attrs) src;
        meta = attrs.meta or { };
      };
    # A package whose setup hook defines installManPage and
    # installShellCompletion, as nixpkgs' installShellFiles does.
    installShellFiles = run "install-shell-files" ''
      ${bb}/busybox mkdir -p $out/nix-support
      ${bb}/busybox cp ${./install-shell-files.sh} $out/nix-support/setup-hook
    '' { };
    writeText = name: text: run name ''printf '%s' "$text" > $out'' { inherit text; };
    writeShellScript =
      name: text:
      run name ''
        printf '#!/bin/sh\n%s' "$text" > $out
        ${bb}/busybox chmod 555 $out
      '' { inherit text; };
    nginx = program "nginx";
    bash = program "bash";
    jq = program "jq";
    hello = program "hello";
    curl = program "curl";
    python3 = program "python3";
    coreutils = programs "coreutils" [ "env" "cat" "ls" "mkdir" "cp" "true" ];
    busybox = programs "busybox" [ "busybox" "sh" "env" ];
  };
  fix = f: let x = f x; in x;
  extend = acc: overlay: final: let prev = acc final; in prev // overlay final prev;
in
fix (builtins.foldl' extend base overlays)

//! One page's session (docs/tests.md, "Examples in the guide"): a fresh
//! working directory holding a copy of `examples/`, the page's marked blocks
//! run in page order in it, with `nixoci` (the binary under test), the Go
//! peers, `nix`/`nix-build` that build offline against the stand-in nixpkgs
//! (tests/nix/standin) and, when a block names `$REGISTRY`, a registry with
//! the referrers API on 127.0.0.1.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use crate::common::peers::{go_peer, ReferrersRegistry};
use crate::common::{nix_ready, require, NIX_CONFIG};
use crate::markdown::{blocks, kind, Block, Kind};

/// How many blocks of a page ran: examples (`sh`, `nix`) and files written.
#[derive(Clone, Copy, Default, Debug, PartialEq)]
pub struct Counts {
    pub examples: usize,
    pub files: usize,
}

/// What every session of one test process shares: the directory of the
/// wrappers put first on PATH, and (made on first use) the stand-in
/// nixpkgs and the clean copy of the project that Nix builds from. Removed
/// when dropped.
pub struct Shared {
    dir: tempfile::TempDir,
    nix: OnceLock<()>,
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

impl Shared {
    pub fn new() -> Shared {
        // Outside the repository, as a reader's directory is: Nix reads a
        // flake `.` inside a git work tree (target/tmp is one) as that
        // repository's flake, from its tracked files alone, and finds no
        // target/ there.
        let dir = tempfile::Builder::new()
            .prefix("nixoci-docs-")
            .tempdir()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot make a directory in {}: {e}",
                    std::env::temp_dir().display()
                )
            });
        let shared = Shared {
            dir,
            nix: OnceLock::new(),
        };
        shared.write_bin();
        shared
    }

    fn bin(&self) -> PathBuf {
        self.dir.path().join("bin")
    }
    fn standin(&self) -> PathBuf {
        self.dir.path().join("standin")
    }
    fn project(&self) -> PathBuf {
        self.dir.path().join("project")
    }
    fn nixpkgs(&self) -> PathBuf {
        self.dir.path().join("nixpkgs")
    }
    fn driver(&self) -> PathBuf {
        self.dir.path().join("nix-example.nix")
    }

    /// The programs a session finds first on PATH: nixoci, the Go peers
    /// (those installed: a page that names a missing one fails in
    /// [`require_tools`]), and the wrappers of `cargo`, `nix`, `nix-build`
    /// and `nix-instantiate`.
    fn write_bin(&self) {
        let bin = self.bin();
        fs::create_dir_all(&bin).unwrap();
        symlink(env!("CARGO_BIN_EXE_nixoci"), bin.join("nixoci")).unwrap();
        for peer in ["crane", "oras", "cosign"] {
            let path = repo().join(".tools/bin").join(peer);
            if path.is_file() {
                symlink(&path, bin.join(peer)).unwrap();
            }
        }
        let script = |name: &str, text: String| {
            let path = bin.join(name);
            fs::write(&path, text).unwrap();
            fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        };
        script(
            "cargo",
            "#!/usr/bin/env bash\n\
# The guide's `cargo run [--release] -- ARGS` is the binary under test.\n\
if [ \"${1-}\" = run ]; then\n\
  while [ $# -gt 0 ] && [ \"$1\" != -- ]; do shift; done\n\
  [ $# -gt 0 ] && shift\n\
  exec nixoci \"$@\"\n\
fi\n\
echo \"cargo in the guide's examples runs only \\`cargo run [--release] -- ARGS\\` (as nixoci ARGS)\" >&2\n\
exit 2\n"
                .to_owned(),
        );
        let real = |program: &str| {
            std::env::var_os("PATH")
                .and_then(|p| {
                    std::env::split_paths(&p)
                        .map(|d| d.join(program))
                        .find(|f| f.is_file())
                })
                .map(|f| f.display().to_string())
                .unwrap_or_else(|| format!("/nonexistent/{program}"))
        };
        script(
            "nix",
            format!(
                "#!/usr/bin/env bash\n\
# nix as the guide's examples run it: offline, sandboxed, IFD off; a flake\n\
# command builds with its inputs nixpkgs and nixoci overridden to the\n\
# stand-in nixpkgs and a clean copy of the project.\n\
set -euo pipefail\n\
[ -x {nix} ] || {{ echo 'nix is not installed: run bash .ci/install-deps' >&2; exit 127; }}\n\
words=1\n\
case \"${{1-}}\" in flake|profile|store|registry|derivation|key|hash|nar|realisation) words=2 ;; esac\n\
flake=0\n\
case \"${{1-}}\" in build|run|eval|flake|develop|shell|path-info|bundle|print-dev-env) flake=1 ;; esac\n\
for a in \"$@\"; do\n\
  [ \"$a\" = -- ] && break\n\
  case \"$a\" in -f|--file|--expr|--file=*|--expr=*) flake=0 ;; esac\n\
done\n\
opts=(--offline --option allow-import-from-derivation false)\n\
if [ $flake = 1 ]; then\n\
  opts+=(--override-input nixpkgs {standin} --override-input nixoci {project} --no-write-lock-file)\n\
fi\n\
exec {nix} \"${{@:1:$words}}\" \"${{opts[@]}}\" \"${{@:$((words + 1))}}\"\n",
                nix = sh_quote(&real("nix")),
                standin = sh_quote(&format!("path:{}", self.standin().display())),
                project = sh_quote(&format!("path:{}", self.project().display())),
            ),
        );
        for program in ["nix-build", "nix-instantiate"] {
            script(
                program,
                format!(
                    "#!/usr/bin/env bash\n\
# {program} as the guide's examples run it: offline, sandboxed, IFD off,\n\
# <nixpkgs> the stand-in with nixoci's overlay.\n\
[ -x {real} ] || {{ echo '{program} is not installed: run bash .ci/install-deps' >&2; exit 127; }}\n\
exec {real} --option allow-import-from-derivation false \"$@\"\n",
                    real = sh_quote(&real(program)),
                ),
            );
        }
    }

    /// The stand-in nixpkgs (with busybox and the binary under test, as
    /// tests/nix.rs's flake check copies it), a clean copy of the tracked
    /// files of the project, `<nixpkgs>` (the stand-in with the project's
    /// overlay) and the driver of `nix example` blocks; made once.
    fn nix(&self) {
        self.nix.get_or_init(|| {
            require("nix");
            require("nix-build");
            require("git");
            nix_ready();
            let standin = self.standin();
            crate::common::stage_standin(&standin);
            copy_tracked(repo(), &self.project());
            let nixpkgs = self.nixpkgs();
            fs::create_dir_all(&nixpkgs).unwrap();
            fs::write(
                nixpkgs.join("default.nix"),
                format!(
                    "# <nixpkgs> of the guide's examples: the stand-in nixpkgs with the\n\
# project's overlay (its flake's outputs called as a flake would be).\n\
{{ overlays ? [ ], ... }}@args:\n\
let\n\
  standin = (import ({standin} + \"/flake.nix\")).outputs {{ self = standin // {{ outPath = {standin}; }}; }};\n\
  nixoci = (import ({project} + \"/flake.nix\")).outputs {{\n\
    self = nixoci // {{ outPath = {project}; }};\n\
    nixpkgs = standin // {{ outPath = {standin}; }};\n\
  }};\n\
in\n\
import {standin} (args // {{ overlays = [ nixoci.overlays.default ] ++ overlays; }})\n",
                    standin = nix_string(&self.standin()),
                    project = nix_string(&self.project()),
                ),
            )
            .unwrap();
            fs::write(self.driver(), NIX_DRIVER).unwrap();
        });
    }
}

/// Builds one `nix example` block (`example`, the absolute path of a file
/// in the page's working directory) with `nixpkgs` (the path of
/// `<nixpkgs>`), or says why it cannot.
const NIX_DRIVER: &str = "{ example, nixpkgs }:
let
  f = import example;
  args = if builtins.isFunction f then builtins.functionArgs f else { };
  missing = builtins.filter (n: n != \"pkgs\" && !args.${n}) (builtins.attrNames args);
in
if !(args ? pkgs) then
  throw \"a nix example block must be a function of { pkgs } (more arguments only with defaults): write other Nix code with `nix file=NAME.nix` and call it from a nix example block, as in { pkgs }: import ./NAME.nix { inherit pkgs; ... }\"
else if missing != [ ] then
  throw \"the nix example block takes ${builtins.concatStringsSep \", \" missing} without a default: write it with `nix file=NAME.nix` and call it from a nix example block that passes them, as in { pkgs }: import ./NAME.nix { inherit pkgs; ... }\"
else
  f { pkgs = import nixpkgs { }; }
";

/// `s` quoted for bash.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The absolute path `p` as a Nix string.
fn nix_string(p: &Path) -> String {
    let s = p.display().to_string();
    format!(
        "\"{}\"",
        s.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace("${", "\\${")
    )
}

/// Copy the files git tracks (and untracked ones it does not ignore) of
/// `from` to `to`, so that no build output or dirty state reaches the store.
fn copy_tracked(from: &Path, to: &Path) {
    let out = crate::common::run(Command::new("git").arg("-C").arg(from).args([
        "ls-files",
        "-z",
        "--cached",
        "--others",
        "--exclude-standard",
    ]));
    for rel in out.stdout.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let rel = Path::new(std::str::from_utf8(rel).unwrap());
        let src = from.join(rel);
        if !src.exists() {
            continue; // deleted in the work tree
        }
        fs::create_dir_all(to.join(rel).parent().unwrap()).unwrap();
        fs::copy(&src, to.join(rel)).unwrap();
    }
}

fn names_registry(text: &str) -> bool {
    text.contains("$REGISTRY") || text.contains("${REGISTRY")
}

/// Whether `text` names a word (delimited by anything but letters, digits,
/// `-` and `_`).
fn names_word(text: &str, word: &str) -> bool {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '_'))
        .any(|w| w == word)
}

/// Fail (never skip) when a tool the page's examples name is missing.
fn require_tools(examples: &[(&Block, Kind)]) {
    for peer in ["crane", "oras", "cosign"] {
        if examples
            .iter()
            .any(|(b, k)| *k == Kind::Sh && names_word(&b.text, peer))
        {
            go_peer(peer);
        }
    }
}

fn needs_nix(examples: &[(&Block, Kind)]) -> bool {
    examples.iter().any(|(b, k)| match k {
        Kind::Nix => true,
        Kind::Sh => [
            "nix",
            "nix-build",
            "nix-instantiate",
            "nix-store",
            "nix-shell",
        ]
        .iter()
        .any(|w| names_word(&b.text, w)),
        _ => false,
    })
}

/// Run the marked blocks of `text` (the page `page`, a path relative to
/// the repository) in one fresh session (a registry for it when one of
/// them names `$REGISTRY`); the counts, or what failed: the
/// page, the block's line, its text and its output.
pub fn run_page(shared: &Shared, page: &str, text: &str) -> Result<Counts, String> {
    let all = blocks(text);
    let mut marked = Vec::new();
    let mut errors = Vec::new();
    for b in &all {
        match kind(&b.info) {
            Ok(Kind::Illustration) => {}
            Ok(k) => marked.push((b, k)),
            Err(e) => errors.push(format!("{page}:{}: {e}", b.line)),
        }
    }
    if !errors.is_empty() {
        return Err(errors.join("\n"));
    }
    let mut counts = Counts::default();
    if marked.is_empty() {
        return Ok(counts);
    }
    require("bash");
    require_tools(&marked);
    if needs_nix(&marked) {
        shared.nix();
    }
    let session = tempfile::Builder::new()
        .prefix("page-")
        .tempdir_in(shared.dir.path())
        .unwrap();
    let work = session.path().join("work");
    let home = session.path().join("home");
    let scripts = session.path().join("blocks");
    for d in [&work, &home, &scripts] {
        fs::create_dir_all(d).unwrap();
    }
    crate::common::copy_tree(&repo().join("examples"), &work.join("examples"));
    // A script written with file=NAME and run by a later block may be
    // the one that names it.
    let registry = marked
        .iter()
        .any(|(b, _)| names_registry(&b.text))
        .then(ReferrersRegistry::start);
    let path = std::env::join_paths(std::iter::once(shared.bin()).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let env = |c: &mut Command| {
        c.current_dir(&work)
            .env("PATH", &path)
            .env("HOME", &home)
            .env("DOCKER_CONFIG", home.join(".docker"))
            .env("NIX_CONFIG", NIX_CONFIG)
            .env(
                "NIX_PATH",
                format!("nixpkgs={}", shared.nixpkgs().display()),
            )
            .stdin(Stdio::null());
        for var in [
            "XDG_RUNTIME_DIR",
            "XDG_CONFIG_HOME",
            "XDG_CACHE_HOME",
            "XDG_DATA_HOME",
            "REGISTRY_AUTH_FILE",
            "SOURCE_DATE_EPOCH",
            "NIX_STORE",
            "RUST_LOG",
            "COSIGN_PASSWORD",
            "REGISTRY",
        ] {
            c.env_remove(var);
        }
        if let Some(r) = &registry {
            c.env("REGISTRY", r.host());
        }
    };
    for (b, k) in &marked {
        let failed = |what: String, out: &Output| {
            format!(
                "{page}:{}: {what}:\n```{}\n{}```\nstdout:\n{}\nstderr:\n{}",
                b.line,
                b.info,
                b.text,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        };
        match k {
            Kind::Illustration => {}
            Kind::File(name) => {
                let dest = work.join(name);
                fs::create_dir_all(dest.parent().unwrap()).unwrap();
                fs::write(&dest, &b.text).unwrap();
                counts.files += 1;
            }
            Kind::Sh => {
                let script = scripts.join(format!("line-{}.sh", b.line));
                fs::write(&script, &b.text).unwrap();
                let mut c = Command::new("bash");
                c.arg("-euo").arg("pipefail").arg(&script);
                env(&mut c);
                let out = c.output().unwrap();
                if !out.status.success() {
                    return Err(failed(format!("the block failed ({})", out.status), &out));
                }
                counts.examples += 1;
            }
            Kind::Nix => {
                let file = work.join(".nix-example.nix");
                fs::write(&file, &b.text).unwrap();
                let mut c = Command::new(shared.bin().join("nix-build"));
                c.arg(shared.driver())
                    .arg("--argstr")
                    .arg("example")
                    .arg(&file)
                    .arg("--argstr")
                    .arg("nixpkgs")
                    .arg(shared.nixpkgs())
                    .arg("-o")
                    .arg(work.join("result"));
                env(&mut c);
                let out = c.output().unwrap();
                let _ = fs::remove_file(&file);
                if !out.status.success() {
                    return Err(failed(
                        format!("the nix example did not build ({})", out.status),
                        &out,
                    ));
                }
                counts.examples += 1;
            }
        }
    }
    Ok(counts)
}

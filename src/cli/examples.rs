//! The examples of each command: one table, shown at the end of the
//! command's `--help` (clap's `after_help`) and as the EXAMPLES section of
//! its man page (`nixoci manpages`), so that the two never disagree.
//!
//! Every example is a command that works as written from the root of the
//! repository (the bundled example is `examples/hello/`), one after the
//! other in the order of `tests/cli_docs.rs`; the registry examples
//! expect a registry on `localhost:5000` (docs/registries.md). The test
//! runs them from the help text itself, so a renamed flag fails it.

use clap::Command;

/// One example: what it does, and the command line.
pub struct Example {
    /// What the command does, a sentence for a person.
    pub what: &'static str,
    /// The command line, as typed at a shell prompt.
    pub line: &'static str,
}

const fn ex(what: &'static str, line: &'static str) -> Example {
    Example { what, line }
}

/// The examples of each command, by its path of names below `nixoci`
/// (`artifact push` is `["artifact", "push"]`).
pub const EXAMPLES: &[(&[&str], &[Example])] = &[
    (
        &["build"],
        &[ex(
            "Build the bundled example image into the layout directory hello",
            "nixoci build examples/hello/image.json -o hello",
        )],
    ),
    (
        &["layer"],
        &[ex(
            "Build the example's one layer into examples/hello/layer, where its config spec reads it",
            "nixoci layer examples/hello/layer-spec.json -o examples/hello/layer",
        )],
    ),
    (
        &["layers"],
        &[ex(
            "Build one layer per group of a plan's store paths (in a Nix build, as ociLayers does; the \
             paths must be in the store)",
            "nixoci layers layers.json -o layers",
        )],
    ),
    (
        &["config"],
        &[ex(
            "Build the image config over the layer `nixoci layer` wrote",
            "nixoci config examples/hello/config-spec.json -o examples/hello/config",
        )],
    ),
    (
        &["manifest"],
        &[ex(
            "Build the manifest over the config `nixoci config` wrote",
            "nixoci manifest examples/hello/manifest-spec.json -o examples/hello/manifest",
        )],
    ),
    (
        &["layout"],
        &[
            ex(
                "Assemble a layout from the manifest `nixoci manifest` wrote: the same image, byte for \
                 byte, as `nixoci build` makes",
                "nixoci layout examples/hello/layout-spec.json -o hello-layout",
            ),
            ex(
                "Check that the two are the same image",
                "nixoci diff hello hello-layout",
            ),
        ],
    ),
    (
        &["verify"],
        &[ex("Check every digest and size of a layout", "nixoci verify hello")],
    ),
    (
        &["inspect"],
        &[
            ex("Show the tags, platforms and layers of a layout", "nixoci inspect hello"),
            ex("One tag of a layout, as JSON", "nixoci inspect hello:1.0 --json"),
            ex(
                "An image in a registry",
                "nixoci inspect localhost:5000/hello:latest",
            ),
        ],
    ),
    (
        &["push"],
        &[
            ex(
                "Push a layout under every tag it gives the image (latest and 1.0)",
                "nixoci push hello localhost:5000/hello",
            ),
            ex(
                "Push one tag of a layout under another name",
                "nixoci push hello:1.0 localhost:5000/hello:v1",
            ),
        ],
    ),
    (
        &["pull"],
        &[ex(
            "Pull an image into a new layout directory",
            "nixoci pull localhost:5000/hello:latest hello-pulled",
        )],
    ),
    (
        &["prefetch"],
        &[ex(
            "Print the digest and hash to give ociPullImage",
            "nixoci prefetch localhost:5000/hello:latest",
        )],
    ),
    (
        &["tag"],
        &[ex(
            "Tag the image localhost:5000/hello:latest as stable too",
            "nixoci tag localhost:5000/hello:latest stable",
        )],
    ),
    (
        &["exists"],
        &[ex(
            "Exit 0 if the registry has the image, 1 if not",
            "nixoci exists localhost:5000/hello:stable",
        )],
    ),
    (
        &["artifact", "push"],
        &[ex(
            "Push a directory as an artifact, as `oras push` does",
            "nixoci artifact push localhost:5000/hello-files:v1 examples/hello/app",
        )],
    ),
    (
        &["artifact", "pull"],
        &[ex(
            "Pull an artifact's files into the directory files",
            "nixoci artifact pull localhost:5000/hello-files:v1 files",
        )],
    ),
    (
        &["attach"],
        &[ex(
            "Attach an SBOM (written by `nixoci sbom`) to an image in a registry",
            "nixoci attach --artifact-type application/spdx+json localhost:5000/hello:latest hello.spdx.json",
        )],
    ),
    (
        &["referrers"],
        &[ex(
            "List what is attached to an image",
            "nixoci referrers localhost:5000/hello:latest",
        )],
    ),
    (
        &["sign"],
        &[
            ex(
                "Sign an image in a registry with the key `nixoci generate-key-pair` wrote (its passphrase \
                 from COSIGN_PASSWORD, else asked)",
                "nixoci sign --key cosign.key localhost:5000/hello:latest",
            ),
            ex(
                "Sign a local layout (push carries the signature)",
                "nixoci sign --key cosign.key hello",
            ),
        ],
    ),
    (
        &["verify-signature"],
        &[
            ex(
                "Check the signatures of an image in a registry",
                "nixoci verify-signature --key cosign.pub localhost:5000/hello:latest",
            ),
            ex(
                "Check the signatures of a local layout",
                "nixoci verify-signature --key cosign.pub hello",
            ),
        ],
    ),
    (
        &["diff"],
        &[
            ex(
                "Compare a layout with the image pushed from it",
                "nixoci diff hello localhost:5000/hello:latest",
            ),
            ex(
                "Fail (exit 1) if two layouts differ",
                "nixoci diff --exit-code hello hello-layout",
            ),
        ],
    ),
    (
        &["archive"],
        &[ex(
            "Write a tarball that `podman load -i hello.tar` reads",
            "nixoci archive hello:latest -o hello.tar",
        )],
    ),
    (
        &["unpack"],
        &[ex(
            "Extract the image's root filesystem into the new directory rootfs",
            "nixoci unpack hello rootfs",
        )],
    ),
    (
        &["plan"],
        &[ex(
            "Split the example closure graph into at most 2 layers",
            "nixoci plan examples/hello/closure.json --max-layers 2",
        )],
    ),
    (
        &["sbom"],
        &[
            ex(
                "Write the SPDX SBOM of a layout's image",
                "nixoci sbom hello -o hello.spdx.json",
            ),
            ex(
                "Print it as CycloneDX",
                "nixoci sbom hello --format cyclonedx",
            ),
        ],
    ),
    (
        &["generate-key-pair"],
        &[ex(
            "Write cosign.key and cosign.pub (the passphrase from COSIGN_PASSWORD, else asked)",
            "nixoci generate-key-pair",
        )],
    ),
    (
        &["completions"],
        &[
            ex(
                "Complete nixoci's commands in this bash session",
                "source <(nixoci completions bash)",
            ),
            ex(
                "Write the zsh completions to _nixoci, for a directory of $fpath",
                "nixoci completions zsh > _nixoci",
            ),
        ],
    ),
    (
        &["manpages"],
        &[ex(
            "Write the man pages into the new directory man, and read one",
            "nixoci manpages -o man && man -l man/nixoci-push.1",
        )],
    ),
];

/// The examples of the command at `path` (below `nixoci`), if any.
pub fn of(path: &[&str]) -> &'static [Example] {
    EXAMPLES
        .iter()
        .find(|(p, _)| *p == path)
        .map_or(&[], |(_, e)| e)
}

/// `cmd` with each command's examples at the end of its help;
/// `nixoci --help` ends by saying where the examples and the guide are.
pub fn attach(cmd: Command) -> Command {
    attach_at(cmd, &mut Vec::new()).after_help(
        "`nixoci COMMAND --help` ends with examples, which run as written from the root of \
         nixoci's source (the bundled example is examples/hello/), each using what the ones \
         before it wrote (build first); `nixoci manpages -o DIR` writes the same as man pages. The guide, one page per task, is docs/ in the source \
         (docs/SUMMARY.md).",
    )
}

fn attach_at(mut cmd: Command, path: &mut Vec<String>) -> Command {
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in names {
        path.push(name.clone());
        cmd = cmd.mut_subcommand(&name, |sub| attach_at(sub, path));
        path.pop();
    }
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    let examples = of(&path);
    if examples.is_empty() {
        return cmd;
    }
    let header = cmd.get_styles().get_header();
    let literal = cmd.get_styles().get_literal();
    let mut text = format!("{header}Examples:{header:#}\n");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        text.push_str(&format!(
            "  {}:\n    {literal}$ {}{literal:#}\n",
            e.what, e.line
        ));
    }
    cmd.after_help(text.trim_end().to_owned())
}

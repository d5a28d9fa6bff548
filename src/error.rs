//! The library's error type: one variant per thing that can go wrong, with the
//! file, path or reference it is about, so that the message alone tells the
//! user what to fix.

use std::path::PathBuf;

use crate::oci::digest::Sha256Digest;

/// A nixoci error. Messages are lowercase and say what to do where that is
/// not obvious.
///
/// Non-exhaustive: new kinds of failure may be added, so a `match` on it
/// needs a wildcard arm.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on a file or directory.
    #[error("{path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },

    /// A JSON file that does not parse.
    #[error("{path}: invalid JSON")]
    Json {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },

    /// A problem with the content of a spec or document.
    #[error("{path}: {message}")]
    Spec {
        /// The spec or document.
        path: PathBuf,
        /// What is wrong, and what to do.
        message: String,
    },

    /// A source of a layer spec that does not exist.
    #[error("source {source_path} does not exist")]
    MissingSource {
        /// The source.
        source_path: PathBuf,
    },

    /// A destination in the image that is not a clean absolute path.
    #[error("invalid destination {destination:?}: {reason}")]
    Destination {
        /// The destination, as written.
        destination: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Two sources that put different content at one path of a layer.
    #[error(
        "conflicting content at /{path}: {first} and {second} put different {what} there; \
         remove one of them or give them different destinations"
    )]
    Conflict {
        /// The path in the image, without its leading `/`.
        path: String,
        /// The first source.
        first: String,
        /// The second source.
        second: String,
        /// What differs (content, mode, kind).
        what: &'static str,
    },

    /// A path placed under a symbolic link of the layer.
    #[error(
        "/{path} (from {source_desc}) lies under /{parent}, which is a symlink (from {link_source}); \
         a layer may not place files through a symlink"
    )]
    ThroughSymlink {
        /// The path placed, without its leading `/`.
        path: String,
        /// Where it comes from.
        source_desc: String,
        /// The symbolic link on its way, without its leading `/`.
        parent: String,
        /// Where the link comes from.
        link_source: String,
    },

    /// A file named like an OCI whiteout.
    #[error(
        "/{path} (from {source_path}) is named like an OCI whiteout (a component starting \
         with .wh.), which would hide files of the layers below instead of adding a file: \
         rename it or give it another destination"
    )]
    Whiteout {
        /// The path in the image, without its leading `/`.
        path: String,
        /// Where it comes from.
        source_path: PathBuf,
    },

    /// A source that is a device, fifo or socket.
    #[error("{path}: unsupported file type ({kind}); only files, directories and symlinks go into a layer")]
    UnsupportedFileType {
        /// The source.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },

    /// An output that exists, without `force`.
    #[error("{0}: the output already exists; remove it or pass --force")]
    OutputExists(PathBuf),

    /// An output, or a layout to change, in the Nix store.
    #[error(
        "{path} is in the Nix store ({store}), which nixoci never writes into or changes, \
         even as root: write the output elsewhere, or work on a writable copy \
         (cp -rH {path} COPY && chmod -R u+w COPY)"
    )]
    InNixStore {
        /// The output.
        path: PathBuf,
        /// The Nix store directory.
        store: PathBuf,
    },

    /// A layout to change that is read-only by its mode.
    #[error(
        "{path} is read-only ({part} has mode {mode:04o}), and nixoci changes nothing that is \
         read-only by its mode, even as root: work on a writable copy \
         (cp -rH {path} COPY && chmod -R u+w COPY)"
    )]
    ReadOnly {
        /// The layout.
        path: PathBuf,
        /// The read-only part of it.
        part: PathBuf,
        /// That part's mode.
        mode: u32,
    },

    /// An input inside the output that is about to be replaced.
    #[error(
        "the input {input} is inside (or is) the output {output}, which would be deleted \
         and replaced: move the input out first, or write the output elsewhere"
    )]
    InputInOutput {
        /// The input.
        input: PathBuf,
        /// The output.
        output: PathBuf,
    },

    /// An output inside one of the inputs.
    #[error(
        "the output {output} is inside the input {input}, which writing it would change: \
         write the output elsewhere"
    )]
    OutputInInput {
        /// The input.
        input: PathBuf,
        /// The output.
        output: PathBuf,
    },

    /// Content that is not what its descriptor says.
    #[error("{context}: expected {expected}, found {found}")]
    DigestMismatch {
        /// What was read.
        context: String,
        /// What the descriptor says.
        expected: Content,
        /// What was found.
        found: Content,
    },

    /// A directory that is no OCI image layout.
    #[error("{}: not an OCI image layout (no oci-layout file)", .0.display())]
    NotALayout(PathBuf),
    /// A layout that holds no image.
    #[error("{}: the layout holds no image", .0.display())]
    NoImage(PathBuf),
    /// A layout that holds several images, and no tag was given.
    #[error(
        "{} holds several images ({}); say which: {}:TAG",
        .layout.display(), .tags.join(", "), .layout.display()
    )]
    SeveralImages {
        /// The layout.
        layout: PathBuf,
        /// Its tags.
        tags: Vec<String>,
    },
    /// A tag that names no image of the layout.
    #[error("{}: no image is tagged {tag:?} (tags: {})", .layout.display(), listed(.tags, "none"))]
    NoSuchTag {
        /// The layout.
        layout: PathBuf,
        /// The tag asked for.
        tag: String,
        /// The tags it has.
        tags: Vec<String>,
    },
    /// An image index without the platform asked for.
    #[error("the image index has no image for {want} (it has: {}); choose one with --platform", listed(.have, "nothing"))]
    NoPlatform {
        /// The platform asked for.
        want: String,
        /// The platforms the index has.
        have: Vec<String>,
    },
    /// A manifest without a config.
    #[error("manifest {manifest} has no config")]
    NoConfig {
        /// The manifest.
        manifest: Sha256Digest,
    },
    /// Image indexes nested deeper than nixoci reads.
    #[error("image index {index} is nested more than {max} deep; nixoci reads no deeper")]
    NestedTooDeep {
        /// The index too deep.
        index: Sha256Digest,
        /// The deepest nesting read.
        max: usize,
    },
    /// An image index that lists more descriptors than nixoci reads.
    #[error("the image index lists more than {max} descriptors (nested indexes included); nixoci stops there")]
    TooManyDescriptors {
        /// The most descriptors read.
        max: usize,
    },
    /// A Nix database asked for a store path that refers to a path the
    /// database does not hold: Nix would take the second as missing.
    #[error(
        "nix database: {path} refers to {reference}, which is not among the store paths \
         given; give the whole closure of {path}"
    )]
    NixDbReference {
        /// The referring store path.
        path: String,
        /// The store path it refers to.
        reference: String,
    },

    /// A Nix database asked for with a store path given twice.
    #[error("nix database: store path {path} is given twice; give each path once")]
    NixDbDuplicate {
        /// The store path.
        path: String,
    },

    /// Any other failure, in words.
    #[error("{0}")]
    Invalid(String),

    /// A registry (or the way to it) failed: what kind of failure (which
    /// also chooses the command's exit status, [`RegistryErrorKind`]), and
    /// the message, which names the registry and says what to do.
    #[error("{message}")]
    Registry {
        /// The registry, `HOST[:PORT]`.
        registry: String,
        /// What kind of failure it was.
        kind: RegistryErrorKind,
        /// What failed and what to do, as the command prints it.
        message: String,
    },

    /// An error, and where it happened (`spec.json: files[2]`).
    #[error("{context}")]
    Within {
        /// Where it happened.
        context: String,
        /// The error.
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// An I/O error about `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// This error, with where it happened.
    pub fn within(self, context: impl Into<String>) -> Self {
        Error::Within {
            context: context.into(),
            source: Box::new(self),
        }
    }

    /// The kind of registry failure this is, when it is one.
    pub fn registry_kind(&self) -> Option<&RegistryErrorKind> {
        match self {
            Error::Registry { kind, .. } => Some(kind),
            _ => None,
        }
    }

    /// The message with all its causes, `a: b: c` (see [`chain`]).
    pub fn chain(&self) -> String {
        chain(self)
    }

    /// A problem with the content of the spec or document at `path`.
    pub fn spec(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Spec {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// An error and every cause, as one line: `a: b: c`. A cause whose text
/// the line already holds (some errors repeat their source's message) is
/// not written again.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}

/// What kind of failure an [`Error::Registry`] is. Each kind has its own
/// exit status of the `nixoci` command, so that a script can tell a wrong
/// password from a registry that is down (docs/reference/commands.md, "Exit status"):
///
/// | kind | exit status |
/// |---|---|
/// | [`Authentication`](Self::Authentication) | 20 |
/// | [`NotFound`](Self::NotFound) | 21 |
/// | [`RateLimited`](Self::RateLimited) | 22 |
/// | [`Tls`](Self::Tls) | 23 |
/// | [`Transport`](Self::Transport) | 24 |
/// | [`ServerStatus`](Self::ServerStatus) | 25 |
///
/// Any other error is 1, a usage error 2, an interrupted command 130.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryErrorKind {
    /// The registry refused the credentials, or their absence: 401 or 403,
    /// `UNAUTHORIZED` or `DENIED`, a token request refused.
    Authentication,
    /// No such repository, manifest, tag or blob: 404, `NAME_UNKNOWN`,
    /// `MANIFEST_UNKNOWN`, `BLOB_UNKNOWN`.
    NotFound,
    /// Too many requests (429, `TOOMANYREQUESTS`), after the retries, or
    /// at once when the registry asks for a longer wait than nixoci takes;
    /// with the wait it asked for (`Retry-After`), when it gave one.
    RateLimited {
        /// The wait the registry asked for (`Retry-After`).
        retry_after: Option<std::time::Duration>,
    },
    /// The TLS handshake failed.
    Tls(TlsFailure),
    /// No answer: the connection was refused, reset or timed out, the name
    /// did not resolve.
    Transport(TransportFailure),
    /// An answer nixoci cannot go on with: a 5xx after the retries, or
    /// another unexpected status (the status).
    ServerStatus(u16),
}

/// Why a TLS handshake failed, read from rustls' error types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The certificate is signed by a CA nixoci does not trust (`--ca-file`).
    UntrustedIssuer,
    /// The certificate is not valid for the registry's name or address.
    NameMismatch,
    /// The certificate has expired, or is not valid yet.
    Expired,
    /// Anything else (a revoked certificate, an alert, no common protocol).
    Other,
}

/// Why a registry gave no answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportFailure {
    /// Nothing listens there.
    ConnectionRefused,
    /// The connection was reset or closed half-way.
    Reset,
    /// Nothing arrived for too long (`--timeout`), or too slowly.
    Timeout,
    /// Anything else: the name does not resolve, no route, ...
    Other,
}

impl RegistryErrorKind {
    /// The exit status of a command that failed this way (see the table
    /// above).
    pub fn exit_code(&self) -> u8 {
        match self {
            RegistryErrorKind::Authentication => 20,
            RegistryErrorKind::NotFound => 21,
            RegistryErrorKind::RateLimited { .. } => 22,
            RegistryErrorKind::Tls(_) => 23,
            RegistryErrorKind::Transport(_) => 24,
            RegistryErrorKind::ServerStatus(_) => 25,
        }
    }
}

/// What some content is, or was found to be, in a [`Error::DigestMismatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// This digest and size.
    Blob(Sha256Digest, u64),
    /// This digest.
    Digest(Sha256Digest),
    /// This many bytes.
    Size(u64),
    /// More than this many bytes.
    MoreThan(u64),
    /// Nothing at all.
    Nothing,
}

impl std::fmt::Display for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Content::Blob(d, n) => write!(f, "{d} ({n} bytes)"),
            Content::Digest(d) => write!(f, "{d}"),
            Content::Size(n) => write!(f, "{n} bytes"),
            Content::MoreThan(n) => write!(f, "more than {n} bytes"),
            Content::Nothing => f.write_str("nothing"),
        }
    }
}

/// `items`, comma-separated, or `empty` when there are none.
fn listed(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        empty.to_owned()
    } else {
        items.join(", ")
    }
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach the path an I/O error is about.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

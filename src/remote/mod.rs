//! Push, pull, tag, exists and inspect against registries that speak the OCI
//! distribution spec. nixoci makes every request itself, with one HTTP
//! client (reqwest, on rustls) and one authentication per connection: the
//! ping, the token request, manifests, blob checks, downloads, uploads
//! (monolithic and chunked) and cross-repository mounts, every body read
//! with a bound.
//!
//! What this module adds: reading and writing image layouts, leaving tags
//! that already name the image alone (a re-push writes nothing), skipping
//! blobs the registry has (HEAD), mounting blobs from other repositories of
//! the same registry, bounded parallel transfers, retries with backoff on
//! transient failures, verification of every digest and size while
//! reading, and reports. The manifest (or index) always goes last, so a
//! registry never names an image whose blobs it lacks.
//!
//! The public functions are blocking: each runs a tokio runtime of its
//! own (`runtime`). Called from inside a tokio runtime, they run it on a
//! thread of their own and block the caller until done, rather than
//! panicking; async code calls them through `tokio::task::spawn_blocking`.
//! On that runtime, tasks move bytes over the network; the disk and
//! hashing work runs on its blocking threads or in the sync code before
//! and after.
//!
//! # The files, lowest first
//!
//! Each file uses only those above it in this list (and the crate's
//! offline modules: `oci`, `error`, `image`, `layout`, `inspect`,
//! `progress`):
//!
//! - `runtime`: the runtime of the sync entry points, and the thread it
//!   runs on. Uses nothing else here.
//! - [`auth`]: credentials, found where Docker, podman and skopeo keep them;
//!   secrets that never print. Uses nothing else here.
//! - `mounts`: the blob-location cache (which repositories hold which
//!   blobs), a JSON file read before a push and added to after a push or a
//!   pull. Uses nothing else here.
//! - `failure`: what went wrong in one request, typed: an unexpected
//!   status with the registry's error codes, or the transport. Uses
//!   nothing else here.
//! - `errors`: why a request failed, the one retry loop (it takes the
//!   predicate that says whether a failure is worth another try), the
//!   failure explained in words that say what to do, and the bounded reads
//!   of response bodies. Knows no connection; uses `failure`.
//! - `ping`: what a registry says to `GET /v2/` (status and challenge,
//!   parsed), and the probe of a registry on this machine for plain HTTP,
//!   whose answer is its ping. Uses nothing else here.
//! - `link`: the `Link` header of a paged answer, read for its
//!   `rel="next"` target. Uses nothing else here.
//! - `client`: [`RemoteOptions`] and the connection to one registry:
//!   protocol, ping, credentials ([`auth`]), token; `Remote::retry` (the
//!   loop of `errors` with `transient` as its predicate) and
//!   `Remote::explain`. Uses `auth`, `errors` and `ping`.
//! - `api`: the distribution-spec requests on a connection: manifests
//!   (HEAD, bounded GET checked against its digest, PUT), blobs (HEAD, GET
//!   cut off at their size), the referrers API (its pages followed), and
//!   the walk of a remote index. Uses `client`, `errors`, `failure` and
//!   `link`.
//! - `upload`: sending the blobs of a push: skipped when the repository
//!   has them (HEAD), mounted from another repository of the registry
//!   (POST `?mount=&from=`), or uploaded (POST, then one streamed PUT, or
//!   4 MiB PATCHes and a PUT), in parallel. Uses `client`, `api`,
//!   `errors`, `failure` and `mounts`.
//! - `download`: receiving the blobs of a pull, in parallel, each written
//!   and hashed by a blocking thread of its own fed through a bounded
//!   channel. Uses `client` and `api`.
//! - `push` ([`push()`]), `pull` ([`pull()`]) and `query` ([`tag()`],
//!   [`exists()`], [`inspect()`]): one job each, built on `client`, `api`
//!   and `errors`; `push` and `pull` also use `mounts` and `runtime`;
//!   `push` sends its blobs through `upload`, `pull` receives them through
//!   `download`. None uses another. `push` reads the local
//!   layout through [`crate::layout::Layout`] (its graph under the root).
//!
//! `signature` ([`sign()`], [`signatures()`]): cosign's `.sig` image,
//! written (a layer added, read back) and read, built on `client`, `api`
//! and `upload`; the payloads and their checks are [`crate::sign`]'s.
//! `push` adds the layers of a layout's signature referrers to it too.
//! `bundle` ([`sign_bundle()`]): the sigstore bundle referrer, pushed and
//! listed with `referrers`, and gathered for [`signatures()`].
//!
//! `report` ([`BlobReport`], [`BlobAction`]), what a transfer did with
//! each blob, is shared by push, pull and upload and uses nothing else
//! here. This file holds only the public names.

pub mod auth;

mod api;
pub mod artifact;
mod bundle;
mod client;
mod download;
mod errors;
mod failure;
mod link;
mod mounts;
mod ping;
mod pull;
mod push;
mod query;
mod referrers;
mod report;
mod runtime;
mod signature;
mod upload;

pub use artifact::{attach, AttachFile, AttachOptions};
pub use bundle::sign as sign_bundle;
pub use client::{RemoteOptions, DEFAULT_CHUNKED_ABOVE, DEFAULT_TIMEOUT};
pub use errors::{document_timeout_from_env, parse_seconds};
pub use pull::{pull, PullOptions, PullReport};
pub use push::{push, PushReport, TagReport};
pub use query::{exists, inspect, resolve, tag};
pub use referrers::{list as referrers, ReferrerReport};
pub use report::{BlobAction, BlobReport};
pub use signature::{sign, signatures, SignReport};

//! `verify` of the layout of a layout's referrers, nested at `referrers/`
//! ([`crate::layout::nested`]): its shape (a directory; `oci-layout` and
//! `index.json` regular files; `blobs/` holding exactly the link `sha256 ->
//! ../../blobs/sha256`, nothing else and no other link: nothing is read
//! from outside the layout), `oci-layout` valid, `index.json` a valid index
//! whose first entries are `index.json`'s own image entries as they are,
//! and after them referrers alone: untagged manifests, each with its blobs
//! checked by digest and size (in the layout's `blobs/`), and a `subject`
//! that is the image, one of its manifests, or another referrer listed.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use serde_json::Value;

use super::{short, Verifier, MAX_DOCUMENT};
use crate::layout::nested;
use crate::layout::reader::is_referrer;
use crate::oci::descriptor::{Descriptor, ANNOTATION_REF_NAME};
use crate::oci::json::read_limited;

/// Whether an `index.json` entry is a referrer as a layout lists one in
/// `index.json` itself: the readers' rule
/// ([`crate::layout::reader::is_referrer`]), on an entry that may not parse
/// (that is reported where `index.json` is checked).
fn is_listed_referrer(entry: &Value) -> bool {
    serde_json::from_value::<Descriptor>(entry.clone()).is_ok_and(|d| is_referrer(&d))
}

impl Verifier {
    /// Check the nested layout of the layout at `dir`, if it has one;
    /// `root` is its `index.json`, when it could be read.
    pub(super) fn check_nested(&mut self, dir: &Path, root: Option<&[u8]>) {
        let nested_dir = nested::dir_of(dir);
        let Ok(meta) = fs::symlink_metadata(&nested_dir) else {
            return;
        };
        for p in nested::problems(dir) {
            self.problem(p);
        }
        if !meta.is_dir() {
            return;
        }
        let name = nested::NAME;
        let regular =
            |file: &str| fs::symlink_metadata(nested_dir.join(file)).is_ok_and(|m| m.is_file());
        if regular("oci-layout") {
            self.check_oci_layout(
                &nested_dir.join("oci-layout"),
                &format!("{name}/oci-layout"),
            );
        }
        if !regular("index.json") {
            return;
        }
        let what = format!("{name}/index.json");
        let bytes = match read_limited(&nested_dir.join("index.json"), MAX_DOCUMENT) {
            Ok(b) => b,
            Err(e) => return self.problem(format!("{what}: cannot be read ({})", e.chain())),
        };
        // What the referrers may name as their subject: what the layout's
        // own index.json reaches.
        let reached: BTreeSet<String> = self
            .manifests
            .iter()
            .chain(self.indexes.iter())
            .cloned()
            .collect();
        self.check_index_bytes(&bytes, &what, 0);
        let entries = match serde_json::from_slice::<Value>(&bytes) {
            Ok(doc) => doc["manifests"].as_array().cloned().unwrap_or_default(),
            Err(_) => return,
        };
        let images: Vec<Value> = root
            .and_then(|b| serde_json::from_slice::<Value>(b).ok())
            .and_then(|doc| doc["manifests"].as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|e| !is_listed_referrer(e))
            .collect();
        // A referrer may have referrers of its own (a signature of an
        // SBOM): its subject is then another referrer listed here.
        let reached: BTreeSet<String> = reached
            .into_iter()
            .chain(
                entries
                    .iter()
                    .filter_map(|e| e["digest"].as_str().map(str::to_owned)),
            )
            .collect();
        if entries.get(..images.len()) != Some(&images[..]) {
            self.problem(format!(
                "{what}: its first entries must be index.json's image entries as they are (so that {name}:TAG names the image), and are not; attach a referrer again (`nixoci sbom {} --attach`) to write it anew",
                dir.display()
            ));
            return;
        }
        for (i, entry) in entries.iter().enumerate().skip(images.len()) {
            let digest = entry["digest"].as_str().unwrap_or_default();
            let at = format!("{what} manifests[{i}]");
            if let Some(tag) = entry["annotations"][ANNOTATION_REF_NAME].as_str() {
                self.problem(format!(
                    "{at}: has the tag {tag:?}, but only index.json's images are named in {name}/; a referrer has no tag"
                ));
            }
            match self.subjects.get(digest) {
                // Not a manifest that could be read: already a problem.
                None => {}
                Some(None) => self.problem(format!(
                    "{at}: manifest {} has no subject, so it is not a referrer; {name}/ lists only referrers after the image",
                    short(digest)
                )),
                Some(Some(s)) if !reached.contains(s) => self.problem(format!(
                    "{at}: its subject {} is not the layout's image, one of its manifests, or a referrer listed here",
                    short(s)
                )),
                Some(Some(_)) => {}
            }
        }
    }
}

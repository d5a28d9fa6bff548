//! Images unpacked and layers read back, as the tests compare them:
//! `nixoci unpack` and `umoci unpack` of a layout's `latest`, the trees
//! they make compared, and the tar headers of a layer blob.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{blob_path, diff, manifest_digest, nixoci, read_json, require, run, snapshot};

/// `nixoci unpack LAYOUT:latest TO -q`; returns `to`.
pub fn nixoci_unpack(layout: &Path, to: &Path) -> PathBuf {
    run(nixoci()
        .arg("unpack")
        .arg(format!("{}:latest", layout.display()))
        .arg(to)
        .arg("-q"));
    to.to_owned()
}

/// `umoci unpack --image LAYOUT:latest BUNDLE`; returns the bundle's
/// `rootfs`.
pub fn umoci_unpack(layout: &Path, bundle: &Path) -> PathBuf {
    require("umoci");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:latest", layout.display()))
        .arg(bundle));
    bundle.join("rootfs")
}

/// The layout's `latest` unpacked by `nixoci` into `dir/mine` and by umoci
/// into `dir/bundle`: (nixoci's tree, umoci's `rootfs`).
pub fn unpack_both(layout: &Path, dir: &Path) -> (PathBuf, PathBuf) {
    require("umoci");
    let mine = nixoci_unpack(layout, &dir.join("mine"));
    (mine, umoci_unpack(layout, &dir.join("bundle")))
}

/// The trees `mine` (nixoci's) and `theirs` (umoci's) have the same
/// entries, kinds, modes, bytes and link targets ([`snapshot`]).
pub fn assert_same_snapshot(mine: &Path, theirs: &Path) {
    if let Some(d) = diff(&snapshot(mine), &snapshot(theirs)) {
        panic!("nixoci unpack and umoci unpack differ: {d}");
    }
}

/// One tar entry: (type byte, mode, uid, gid, content or link target).
pub type Header = (u8, u32, u64, u64, Vec<u8>);

/// The entries of a gzip layer blob, by tar path (a path twice: the last).
pub fn tar_headers(blob: &Path) -> BTreeMap<String, Header> {
    let bytes = fs::read(blob).unwrap();
    let mut tar = Vec::new();
    flate2::read::MultiGzDecoder::new(&bytes[..])
        .read_to_end(&mut tar)
        .unwrap();
    let mut ar = tar::Archive::new(&tar[..]);
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let h = e.header().clone();
            let mut content = Vec::new();
            e.read_to_end(&mut content).unwrap();
            if let Some(target) = e.link_name_bytes() {
                content = target.into_owned();
            }
            (
                String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                (
                    h.entry_type().as_byte(),
                    h.mode().unwrap(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                    content,
                ),
            )
        })
        .collect()
}

/// The layer digests of the layout's only manifest, bottom first.
pub fn layer_digests(layout: &Path) -> Vec<String> {
    let m = read_json(&blob_path(layout, &manifest_digest(layout)));
    m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect()
}

/// [`tar_headers`] of the layout's `n`th layer (from the bottom), or of
/// its last with `None`.
pub fn layer_headers(layout: &Path, n: Option<usize>) -> BTreeMap<String, Header> {
    let digests = layer_digests(layout);
    let digest = match n {
        Some(n) => &digests[n],
        None => digests.last().unwrap(),
    };
    tar_headers(&blob_path(layout, digest))
}

/// (mode, uid, gid) of each entry of [`tar_headers`].
pub fn modes(headers: BTreeMap<String, Header>) -> BTreeMap<String, (u32, u64, u64)> {
    headers
        .into_iter()
        .map(|(p, (_, mode, uid, gid, _))| (p, (mode, uid, gid)))
        .collect()
}

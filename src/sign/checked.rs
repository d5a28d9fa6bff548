//! What each signature format's `check` gives back ([`Checked`]), and
//! the check both formats start with: that a layer's bytes are the bytes
//! its descriptor names ([`check_layer_digest`]).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::oci::digest::Sha256Digest;

/// What a format's `check` found of one signature layer: the annotations
/// it signs (a payload's `optional`, when it parses; a statement
/// subject's `annotations`, of the subject that names the image, else of
/// the first), and whether it verifies.
pub struct Checked {
    /// The annotations it signs.
    pub annotations: BTreeMap<String, Value>,
    /// `Ok` when it verifies, else why not.
    pub result: Result<(), String>,
}

/// That the bytes the registry sent for `layer` (the `what`, as messages
/// name it) are the bytes its descriptor's digest names.
pub fn check_layer_digest(layer: &Value, bytes: &[u8], what: &str) -> Result<(), String> {
    let found = Sha256Digest::of(bytes);
    let declared = layer["digest"].as_str().unwrap_or_default();
    if declared != found.to_string() {
        return Err(format!(
            "{what}'s bytes were altered: the registry sent bytes of digest {found}, not the layer's {declared}"
        ));
    }
    Ok(())
}

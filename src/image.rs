//! The OCI documents: image config, image manifest, image index (image-spec
//! `config.md`, `manifest.md`, `image-index.md`), their descriptors and
//! platforms, and the choice of a platform from an index.
//!
//! Documents are assembled as JSON values, checked against the types the
//! image spec gives every field ([`crate::validate`], which `verify` uses
//! too) and by parsing them into the `oci-spec` types, and written in the
//! one canonical form ([`crate::json`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::digest::Sha256Digest;
use crate::error::{Error, Result};
pub use crate::json::{canonical_json, Json, JsonObject};
use crate::spec::ImageSpec;
use crate::validate::{validate_config, validate_index, validate_manifest};

pub const MEDIA_TYPE_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's gzip layer type: read (verify, inspect), never written.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The annotation that names a manifest in an image layout's `index.json`.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// A content descriptor (image-spec `descriptor.md`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// The platform of an image (image-spec `image-index.md`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// Linux on this machine's architecture: the default choice from an
    /// image index.
    pub fn host_linux() -> Platform {
        Platform {
            architecture: host_architecture().to_owned(),
            os: "linux".into(),
            variant: None,
            os_version: None,
            os_features: None,
        }
    }

    /// Whether an image for `have` is what `self` asks for (a variant is
    /// compared only when asked for).
    pub fn accepts(&self, have: Option<&Platform>) -> bool {
        have.is_some_and(|h| {
            h.os == self.os
                && h.architecture == self.architecture
                && (self.variant.is_none() || self.variant == h.variant)
        })
    }
}

/// The descriptors a manifest or an image index holds (whichever applies).
#[derive(Debug, Default, Deserialize)]
pub struct Refs {
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
    pub config: Option<Descriptor>,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// Whether a media type is an image index (OCI or Docker manifest list).
pub fn is_index(media_type: &str) -> bool {
    media_type == MEDIA_TYPE_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// Image indexes nested deeper than this (`index.json` at depth 0, an
/// index it lists at depth 1, and so on) are refused by every reader: unpack, archive, pull, inspect and
/// verify.
pub const MAX_INDEX_DEPTH: usize = 8;

/// The most descriptors one walk of an image graph visits (after repeated
/// digests are skipped) before it stops with an error.
pub const MAX_INDEX_NODES: usize = 10_000;

/// What a [`PlatformSearch`] needs next.
#[derive(Debug)]
pub enum SearchStep {
    /// The manifest for the platform.
    Found(Descriptor),
    /// An image index to look into: hand its `manifests` to
    /// [`PlatformSearch::enter`] and ask again.
    Open(Descriptor),
}

/// The search for a platform's manifest in an image index, depth-first
/// through nested indexes (image-spec `image-index.md` allows an index to
/// list indexes), in the order listed, the first match winning; at most
/// [`MAX_INDEX_DEPTH`] deep and [`MAX_INDEX_NODES`] descriptors; an index
/// digest seen before is not opened again. The caller reads the indexes
/// (from a layout or a registry), so one rule serves every reader.
pub struct PlatformSearch {
    want: Platform,
    stack: Vec<std::vec::IntoIter<Descriptor>>,
    opened: std::collections::BTreeSet<String>,
    have: Vec<String>,
    unplatformed: usize,
    nodes: usize,
}

impl PlatformSearch {
    /// A search of an index holding `manifests` for `want` (default
    /// [`Platform::host_linux`]).
    pub fn new(manifests: Vec<Descriptor>, want: Option<&Platform>) -> Self {
        PlatformSearch {
            want: want.cloned().unwrap_or_else(Platform::host_linux),
            stack: vec![manifests.into_iter()],
            opened: Default::default(),
            have: Vec::new(),
            unplatformed: 0,
            nodes: 0,
        }
    }

    /// The next step, or an error listing the platforms the graph has.
    pub fn next_step(&mut self) -> Result<SearchStep> {
        while let Some(level) = self.stack.last_mut() {
            let Some(d) = level.next() else {
                self.stack.pop();
                continue;
            };
            self.nodes += 1;
            if self.nodes > MAX_INDEX_NODES {
                return Err(Error::Invalid(format!(
                    "the image index lists more than {MAX_INDEX_NODES} descriptors (nested indexes included); nixoci stops there"
                )));
            }
            if is_index(&d.media_type) {
                if self.opened.insert(d.digest.clone()) {
                    // The index searched is at depth 1 (index.json's is 0).
                    if self.stack.len() + 1 > MAX_INDEX_DEPTH {
                        return Err(Error::Invalid(format!(
                            "image index {} is nested more than {MAX_INDEX_DEPTH} deep; nixoci reads no deeper",
                            d.digest
                        )));
                    }
                    return Ok(SearchStep::Open(d));
                }
                continue;
            }
            if self.want.accepts(d.platform.as_ref()) {
                return Ok(SearchStep::Found(d));
            }
            match &d.platform {
                Some(p) => {
                    let p = p.to_string();
                    if !self.have.contains(&p) {
                        self.have.push(p);
                    }
                }
                None => self.unplatformed += 1,
            }
        }
        let mut have = self.have.clone();
        if self.unplatformed > 0 {
            have.push(format!(
                "{} manifest(s) with no platform in their descriptor",
                self.unplatformed
            ));
        }
        Err(Error::Invalid(format!(
            "the image index has no image for {} (it has: {}); choose one with --platform",
            self.want,
            if have.is_empty() {
                "nothing".to_owned()
            } else {
                have.join(", ")
            }
        )))
    }

    /// The `manifests` of the index the last [`SearchStep::Open`] named.
    pub fn enter(&mut self, manifests: Vec<Descriptor>) {
        self.stack.push(manifests.into_iter());
    }
}

/// The manifest for `want` in an index holding `manifests`, opening nested
/// indexes with `open` (see [`PlatformSearch`]).
pub fn choose_platform(
    manifests: &[Descriptor],
    want: Option<&Platform>,
    mut open: impl FnMut(&Descriptor) -> Result<Vec<Descriptor>>,
) -> Result<Descriptor> {
    let mut search = PlatformSearch::new(manifests.to_vec(), want);
    loop {
        match search.next_step()? {
            SearchStep::Found(d) => return Ok(d),
            SearchStep::Open(index) => {
                let children = open(&index)?;
                search.enter(children);
            }
        }
    }
}

/// GOARCH name of the building machine's architecture.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// The image creation time: the spec's, else `SOURCE_DATE_EPOCH`, else
/// 1970-01-01T00:00:01Z. Never the wall clock.
pub fn created_time(spec_created: Option<&str>) -> Result<String> {
    if let Some(c) = spec_created {
        if !is_rfc3339(c) {
            return Err(Error::Invalid(format!(
                "created {c:?} is not an RFC 3339 time like 2024-01-31T12:00:00Z"
            )));
        }
        return Ok(c.to_owned());
    }
    Ok(format_epoch(crate::tar::default_mtime()?))
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since 1970 (UTC).
pub fn format_epoch(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Civil date from day count (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// An RFC 3339 `date-time` as Go's `time.Time` reads it (skopeo, umoci,
/// podman): an upper-case `T` and `Z`, and no leap second (`:60`), which
/// RFC 3339 allows and Go refuses.
pub(crate) fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> u32 {
        std::str::from_utf8(&b[r])
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(u32::MAX)
    };
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    if b.len() < 20
        || !digits(0..4)
        || b[4] != b'-'
        || !digits(5..7)
        || b[7] != b'-'
        || !digits(8..10)
        || b[10] != b'T'
        || !digits(11..13)
        || b[13] != b':'
        || !digits(14..16)
        || b[16] != b':'
        || !digits(17..19)
    {
        return false;
    }
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    if day == 0 || day > days_in_month || num(11..13) > 23 || num(14..16) > 59 || num(17..19) > 59 {
        return false;
    }
    let mut rest = &b[19..];
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return false;
        }
        rest = &rest[1 + n..];
    }
    matches!(rest, [b'Z'])
        || (rest.len() == 6
            && matches!(rest[0], b'+' | b'-')
            && rest[1..3].iter().all(u8::is_ascii_digit)
            && rest[3] == b':'
            && rest[4..6].iter().all(u8::is_ascii_digit)
            && (rest[1] - b'0') * 10 + (rest[2] - b'0') < 24
            && (rest[4] - b'0') * 10 + (rest[5] - b'0') < 60)
}

/// Merge `patch` into `base`: objects recursively, anything else replaced.
fn merge(base: &mut Json, patch: &Json) {
    match (base, patch) {
        (Json::Object(b), Json::Object(p)) => {
            for (k, v) in p {
                match b.get_mut(k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// The image config document for `spec` over layers with these diff_ids,
/// and the platform it declares.
pub fn config_document(spec: &ImageSpec, diff_ids: &[Sha256Digest]) -> Result<(Json, Platform)> {
    let created = created_time(spec.created.as_deref())?;
    for (field, value) in [
        ("architecture", &spec.architecture),
        ("os", &spec.os),
        ("variant", &spec.variant),
    ] {
        if let Some(v) = value {
            if v.is_empty()
                || !v
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(Error::Invalid(format!(
                    "{field} {v:?} is not a platform name like amd64, arm64, linux or v8"
                )));
            }
        }
    }
    let mut base = json!({
        "architecture": spec.architecture.as_deref().unwrap_or(host_architecture()),
        "os": spec.os.as_deref().unwrap_or("linux"),
        "created": created,
        "config": serde_json::to_value(&spec.config).expect("config serialises"),
        "rootfs": {
            "type": "layers",
            "diff_ids": diff_ids.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        },
        "history": diff_ids.iter().map(|_| json!({"created": created, "created_by": "nixoci"})).collect::<Vec<_>>(),
    });
    let obj = base.as_object_mut().expect("an object");
    if let Some(v) = &spec.variant {
        obj.insert("variant".into(), json!(v));
    }
    if let Some(a) = &spec.author {
        obj.insert("author".into(), json!(a));
    }
    let (doc, value) = merge_extra(
        &base,
        spec.extra_config.as_ref(),
        "extraConfig",
        &["rootfs"],
    )?;
    validate_config(&value).map_err(|m| {
        Error::Invalid(format!(
            "the image config is not valid: {m} (check extraConfig)"
        ))
    })?;
    let parsed: oci_spec::image::ImageConfiguration =
        serde_json::from_value(value).map_err(|e| {
            Error::Invalid(format!(
                "the image config is not valid (check extraConfig): {e}"
            ))
        })?;
    let platform = Platform {
        architecture: parsed.architecture().to_string(),
        os: parsed.os().to_string(),
        variant: parsed.variant().clone(),
        os_version: parsed.os_version().clone(),
        os_features: parsed.os_features().clone(),
    };
    Ok((doc, platform))
}

/// Merge user-given `extra` into `base`, refusing the fields nixoci
/// computes: the document (numbers of `extra` as written), and the same as
/// a `Value` for the checks.
fn merge_extra(
    base: &Value,
    extra: Option<&JsonObject>,
    what: &str,
    computed: &[&str],
) -> Result<(Json, Value)> {
    let mut doc = Json::from_value(base);
    if let Some(extra) = extra {
        if let Some(k) = computed.iter().find(|k| extra.contains_key(**k)) {
            return Err(Error::Invalid(format!(
                "{what} may not set {k:?}: nixoci computes it"
            )));
        }
        merge(&mut doc, &Json::Object(extra.clone()));
    }
    let value = doc.to_value();
    Ok((doc, value))
}

/// An image manifest over a config and layers; `extra` (e.g. `artifactType`,
/// `subject`) is merged in last.
pub fn manifest_document(
    config: &Descriptor,
    layers: &[Descriptor],
    annotations: &BTreeMap<String, String>,
    extra: Option<&JsonObject>,
) -> Result<Json> {
    let mut base = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": config,
        "layers": layers,
    });
    if !annotations.is_empty() {
        base["annotations"] = json!(annotations);
    }
    let (doc, value) = merge_extra(
        &base,
        extra,
        "extraManifest",
        &["schemaVersion", "mediaType", "config", "layers"],
    )?;
    validate_manifest(&value).map_err(|m| {
        Error::Invalid(format!(
            "the image manifest is not valid: {m} (check extraManifest)"
        ))
    })?;
    serde_json::from_value::<oci_spec::image::ImageManifest>(value)
        .map_err(|e| Error::Invalid(format!("the image manifest is not valid: {e}")))?;
    Ok(doc)
}

/// An image index over descriptors; `extra` is merged in last.
pub fn index_document(
    manifests: &[Descriptor],
    annotations: &BTreeMap<String, String>,
    extra: Option<&JsonObject>,
) -> Result<Json> {
    let mut base = json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_INDEX,
        "manifests": manifests,
    });
    if !annotations.is_empty() {
        base["annotations"] = json!(annotations);
    }
    let (doc, value) = merge_extra(
        &base,
        extra,
        "extraIndex",
        &["schemaVersion", "mediaType", "manifests"],
    )?;
    validate_index(&value).map_err(|m| {
        Error::Invalid(format!(
            "the image index is not valid: {m} (check extraIndex)"
        ))
    })?;
    serde_json::from_value::<oci_spec::image::ImageIndex>(value)
        .map_err(|e| Error::Invalid(format!("the image index is not valid: {e}")))?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_formatting() {
        assert_eq!(format_epoch(1), "1970-01-01T00:00:01Z");
        assert_eq!(format_epoch(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_epoch(1_700_000_000), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn rfc3339_check() {
        for good in ["2024-01-31T12:00:00Z", "2024-01-31T12:00:00.123+02:00"] {
            assert!(is_rfc3339(good), "{good}");
        }
        for bad in [
            "2024-01-31",
            "2024-01-31 12:00:00Z",
            "2024-01-31T12:00:00",
            "2024-01-31T12:00:00.Z",
            "1970-01-01t00:00:01z",
            "2016-12-31T23:59:60Z",
        ] {
            assert!(!is_rfc3339(bad), "{bad}");
        }
    }

    #[test]
    fn extra_config_merges_and_cannot_touch_rootfs() {
        let mut spec = ImageSpec {
            architecture: Some("arm64".into()),
            ..Default::default()
        };
        spec.config.env = Some(vec!["A=1".into()]);
        let extra = |v: Value| match Json::from_value(&v) {
            Json::Object(m) => Some(m),
            _ => unreachable!(),
        };
        spec.extra_config = extra(
            json!({"config": {"Env": ["B=2"], "Healthcheck": {"Test": ["NONE"]}}, "os.features": ["x"]}),
        );
        let (doc, platform) = config_document(&spec, &[]).unwrap();
        let doc = doc.to_value();
        assert_eq!(doc["config"]["Env"], json!(["B=2"]));
        assert_eq!(doc["config"]["Healthcheck"]["Test"], json!(["NONE"]));
        assert_eq!(platform.architecture, "arm64");
        spec.extra_config = extra(json!({"rootfs": {}}));
        assert!(config_document(&spec, &[])
            .unwrap_err()
            .to_string()
            .contains("rootfs"));
    }
}

//! The fields the OCI image spec (`config.md`, `manifest.md`,
//! `image-index.md`, `descriptor.md`) and Docker's image spec define in
//! each document, for checking what a user merges into one
//! (`extraConfig`, `extraManifest`, `extraIndex`): a key neither defines,
//! such as `Healthcheck` at the top of a config (it belongs in `config`)
//! or a misspelt `archtecture`, would be written and read by no runtime.
//! It is refused with the nearest known name. A deliberate extension is
//! named in reverse-domain notation (`com.example.field`), as OCI names
//! annotation keys, and is passed through.

use serde_json::Value;

/// What a field holds, as far as its keys are checked.
enum Shape {
    /// Anything (its own type is [`crate::oci::validate`]'s to check).
    Leaf,
    /// An object with these fields.
    Object(&'static Known),
    /// A list of objects with these fields.
    ListOf(&'static Known),
}

/// The fields of one object, and fields known to belong elsewhere
/// (`Healthcheck` -> `config.Healthcheck`).
struct Known {
    fields: &'static [(&'static str, Shape)],
    elsewhere: &'static [(&'static str, &'static str)],
}

use Shape::{Leaf, ListOf, Object};

const HEALTHCHECK: Known = Known {
    fields: &[
        ("Test", Leaf),
        ("Interval", Leaf),
        ("Timeout", Leaf),
        ("StartPeriod", Leaf),
        ("StartInterval", Leaf),
        ("Retries", Leaf),
    ],
    elsewhere: &[],
};

/// The `config` object: OCI's fields, then Docker's (moby's container
/// `Config`).
const CONTAINER: Known = Known {
    fields: &[
        ("User", Leaf),
        ("ExposedPorts", Leaf),
        ("Env", Leaf),
        ("Entrypoint", Leaf),
        ("Cmd", Leaf),
        ("Volumes", Leaf),
        ("WorkingDir", Leaf),
        ("Labels", Leaf),
        ("StopSignal", Leaf),
        ("ArgsEscaped", Leaf),
        ("Memory", Leaf),
        ("MemorySwap", Leaf),
        ("CpuShares", Leaf),
        ("Healthcheck", Object(&HEALTHCHECK)),
        ("Shell", Leaf),
        ("OnBuild", Leaf),
        ("Hostname", Leaf),
        ("Domainname", Leaf),
        ("AttachStdin", Leaf),
        ("AttachStdout", Leaf),
        ("AttachStderr", Leaf),
        ("Tty", Leaf),
        ("OpenStdin", Leaf),
        ("StdinOnce", Leaf),
        ("Image", Leaf),
        ("NetworkDisabled", Leaf),
        ("MacAddress", Leaf),
        ("StopTimeout", Leaf),
    ],
    elsewhere: &[],
};

const HISTORY: Known = Known {
    fields: &[
        ("created", Leaf),
        ("author", Leaf),
        ("created_by", Leaf),
        ("comment", Leaf),
        ("empty_layer", Leaf),
    ],
    elsewhere: &[],
};

/// An image config: OCI's fields, then Docker's (moby's image `V1Image`).
const CONFIG: Known = Known {
    fields: &[
        ("created", Leaf),
        ("author", Leaf),
        ("architecture", Leaf),
        ("os", Leaf),
        ("os.version", Leaf),
        ("os.features", Leaf),
        ("variant", Leaf),
        ("config", Object(&CONTAINER)),
        ("rootfs", Leaf),
        ("history", ListOf(&HISTORY)),
        ("id", Leaf),
        ("parent", Leaf),
        ("comment", Leaf),
        ("container", Leaf),
        ("container_config", Leaf),
        ("docker_version", Leaf),
        ("size", Leaf),
    ],
    elsewhere: &[
        ("User", "config.User"),
        ("ExposedPorts", "config.ExposedPorts"),
        ("Env", "config.Env"),
        ("Entrypoint", "config.Entrypoint"),
        ("Cmd", "config.Cmd"),
        ("Volumes", "config.Volumes"),
        ("WorkingDir", "config.WorkingDir"),
        ("Labels", "config.Labels"),
        ("StopSignal", "config.StopSignal"),
        ("Healthcheck", "config.Healthcheck"),
        ("Shell", "config.Shell"),
        ("OnBuild", "config.OnBuild"),
    ],
};

const PLATFORM: Known = Known {
    fields: &[
        ("architecture", Leaf),
        ("os", Leaf),
        ("os.version", Leaf),
        ("os.features", Leaf),
        ("variant", Leaf),
        ("features", Leaf),
    ],
    elsewhere: &[],
};

const DESCRIPTOR: Known = Known {
    fields: &[
        ("mediaType", Leaf),
        ("digest", Leaf),
        ("size", Leaf),
        ("urls", Leaf),
        ("annotations", Leaf),
        ("data", Leaf),
        ("artifactType", Leaf),
        ("platform", Object(&PLATFORM)),
    ],
    elsewhere: &[],
};

/// An image manifest (the fields nixoci writes are refused before this).
const MANIFEST: Known = Known {
    fields: &[
        ("schemaVersion", Leaf),
        ("mediaType", Leaf),
        ("artifactType", Leaf),
        ("config", Leaf),
        ("layers", Leaf),
        ("subject", Object(&DESCRIPTOR)),
        ("annotations", Leaf),
    ],
    elsewhere: &[],
};

/// An image index.
const INDEX: Known = Known {
    fields: &[
        ("schemaVersion", Leaf),
        ("mediaType", Leaf),
        ("artifactType", Leaf),
        ("manifests", Leaf),
        ("subject", Object(&DESCRIPTOR)),
        ("annotations", Leaf),
    ],
    elsewhere: &[],
};

/// Which document an `extra*` object is merged into.
#[derive(Clone, Copy, Debug)]
pub enum Document {
    Config,
    Manifest,
    Index,
}

/// Whether `key` names an extension: reverse-domain notation, three or
/// more lower-case components joined by dots (`com.example.field`,
/// `moby.buildkit.buildinfo.v1`). `os.version` has two, so a misspelt
/// field is never taken for one.
pub fn is_extension(key: &str) -> bool {
    let parts: Vec<&str> = key.split('.').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}

/// Check every key of `extra`, the object merged into `document`, against
/// the fields the OCI and Docker specs define there; `what` names it in
/// the message (`extraConfig`).
pub fn check_extra_keys(extra: &Value, document: Document, what: &str) -> Result<(), String> {
    let known = match document {
        Document::Config => &CONFIG,
        Document::Manifest => &MANIFEST,
        Document::Index => &INDEX,
    };
    check(extra, known, what)
}

fn check(v: &Value, known: &Known, at: &str) -> Result<(), String> {
    let Value::Object(map) = v else {
        return Ok(());
    };
    for (key, value) in map {
        match known.fields.iter().find(|(k, _)| k == key) {
            Some((_, Leaf)) => {}
            Some((_, Object(inner))) => check(value, inner, &format!("{at}.{key}"))?,
            Some((_, ListOf(inner))) => {
                for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                    check(item, inner, &format!("{at}.{key}[{i}]"))?;
                }
            }
            None if is_extension(key) => {}
            None => return Err(unknown(key, known, at)),
        }
    }
    Ok(())
}

/// The message for an unknown key: the nearest known name when one is
/// close enough to be a misspelling of it (letter case ignored), else the
/// list of fields.
fn unknown(key: &str, known: &Known, at: &str) -> String {
    let lower = key.to_ascii_lowercase();
    let candidates = known
        .fields
        .iter()
        .map(|(k, _)| (*k, k.to_string()))
        .chain(known.elsewhere.iter().map(|(k, w)| (*k, w.to_string())));
    let best = candidates
        .map(|(k, name)| (strsim::levenshtein(&lower, &k.to_ascii_lowercase()), name))
        .min_by_key(|(d, _)| *d);
    let limit = match key.len() {
        0..6 => 1,
        6..12 => 2,
        _ => 3,
    };
    let hint = match best {
        Some((d, name)) if d <= limit => format!("did you mean {at}.{name}?"),
        _ => format!(
            "its fields: {}",
            known
                .fields
                .iter()
                .map(|(k, _)| *k)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "{at}.{key} is not a field the OCI image spec or Docker defines there; {hint} \
         (a deliberate extension is named in reverse-domain notation, like \"com.example.field\")"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_keys_are_refused_with_the_nearest_name() {
        let err = |v: Value| check_extra_keys(&v, Document::Config, "extraConfig").unwrap_err();
        assert!(
            err(json!({"Healthcheck": {"Test": ["NONE"]}}))
                .contains("extraConfig.Healthcheck is not a field the OCI image spec or Docker defines there; did you mean extraConfig.config.Healthcheck?"),
        );
        assert!(
            err(json!({"archtecture": "amd64"})).contains("did you mean extraConfig.architecture?")
        );
        assert!(err(json!({"config": {"Entrypiont": []}}))
            .contains("extraConfig.config.Entrypiont is not a field"));
        assert!(err(json!({"config": {"Entrypiont": []}}))
            .contains("did you mean extraConfig.config.Entrypoint?"));
        assert!(err(json!({"history": [{}, {"createdby": "x"}]}))
            .contains("did you mean extraConfig.history[1].created_by?"));
        assert!(err(json!({"zzzzzzzz": 1})).contains("its fields: created, author"));
        let m = check_extra_keys(
            &json!({"artifactTyp": "x"}),
            Document::Manifest,
            "extraManifest",
        )
        .unwrap_err();
        assert!(
            m.contains("did you mean extraManifest.artifactType?"),
            "{m}"
        );
        let i = check_extra_keys(
            &json!({"subject": {"digst": "x"}}),
            Document::Index,
            "extraIndex",
        )
        .unwrap_err();
        assert!(i.contains("did you mean extraIndex.subject.digest?"), "{i}");
    }

    #[test]
    fn known_fields_and_extensions_pass() {
        let ok = json!({
            "config": {"Healthcheck": {"Test": ["NONE"], "Interval": 1}, "StopTimeout": 3},
            "history": [{"created_by": "x"}],
            "os.features": ["x"],
            "moby.buildkit.buildinfo.v1": "e30=",
            "com.example.field": {"Anything": 1}
        });
        assert_eq!(
            check_extra_keys(&ok, Document::Config, "extraConfig"),
            Ok(())
        );
        assert!(!is_extension("os.version"));
        assert!(!is_extension("Com.Example.Field"));
        assert!(is_extension("com.example.field"));
    }
}

//! The deserializers every spec shares: modes as octal strings, structs
//! from JSON objects only, and errors that name the field at fault.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::oci::json::at_path;

pub(super) fn deserialize_mode<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<u32>, D::Error> {
    use serde::de::Error as _;
    let v = Option::<Value>::deserialize(d)?;
    let mode = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| (b'0'..=b'7').contains(&b)) =>
        {
            u32::from_str_radix(&s, 8).map_err(D::Error::custom)?
        }
        // A JSON number would be decimal: 755 would mean 0o1363. Refused
        // rather than guessed.
        Some(other) => {
            return Err(D::Error::custom(format!(
                "mode must be an octal string like \"0755\", not {other}"
            )))
        }
    };
    if mode > 0o7777 {
        return Err(D::Error::custom(format!(
            "mode {mode:o} (octal) has bits beyond 07777"
        )));
    }
    Ok(Some(mode))
}

/// A struct from a JSON object only: serde would also take a positional
/// array, which would get around the refusal of unknown fields.
pub(super) fn object<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> std::result::Result<T, D::Error> {
    use serde::de::Error as _;
    match Value::deserialize(d)? {
        v @ Value::Object(_) => from_value_at(v).map_err(D::Error::custom),
        other => Err(D::Error::custom(format!(
            "expected an object, found {other}"
        ))),
    }
}

/// `T` from a JSON value; an error leads with the path of the field at
/// fault inside it (`files[0].uid: invalid type ...`).
pub(super) fn from_value_at<T: serde::de::DeserializeOwned>(
    v: Value,
) -> std::result::Result<T, String> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let at = e.path().to_string();
        at_path(&at, &e.into_inner().to_string())
    })
}

/// The `files` list, each entry from a JSON object only (see [`object`]).
pub(super) fn objects<'de, D: Deserializer<'de>, T: serde::de::DeserializeOwned>(
    d: D,
) -> std::result::Result<Vec<T>, D::Error> {
    use serde::de::Error as _;
    let items = Vec::<Value>::deserialize(d)?;
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            v @ Value::Object(_) => {
                from_value_at(v).map_err(|e| D::Error::custom(format!("[{i}].{e}")))
            }
            other => Err(D::Error::custom(format!(
                "[{i}]: expected an object, found {other}"
            ))),
        })
        .collect()
}

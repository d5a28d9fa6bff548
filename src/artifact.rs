//! Names of files in artifacts (ORAS style: a blob per file, named by its
//! `org.opencontainers.image.title` annotation). A name is a name, never a
//! path: it lands directly in the target directory or is refused.

use crate::error::{Error, Result};

/// The annotation that names an artifact file.
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";

/// Check an artifact file name: not empty, at most 255 bytes, no `/`, `\`,
/// NUL or other control character, not `.` or `..` (nor containing `..`),
/// no leading or trailing space.
pub fn validate_name(name: &str) -> Result<()> {
    let bad = |why: &str| Err(Error::Invalid(format!("artifact file name {name:?} {why}")));
    if name.is_empty() {
        return bad("is empty");
    }
    if name.len() > 255 {
        return bad("is longer than 255 bytes");
    }
    if name.contains(['/', '\\']) {
        return bad("contains a path separator; a name is not a path");
    }
    if name.contains("..") || name == "." {
        return bad("contains '..' or is '.'");
    }
    if name.chars().any(char::is_control) {
        return bad("contains a NUL or control character");
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return bad("starts or ends with white space");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["config.json", "a b", "x.tar.gz", "é", &"n".repeat(255)] {
            validate_name(good).unwrap_or_else(|e| panic!("{good:?}: {e}"));
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "../x",
            "x..y",
            "a\0b",
            " x",
            "x ",
            "\tx",
            &"n".repeat(256),
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}

//! The `Link` header of a paged answer (RFC 8288 §3, the form the
//! distribution spec gives for tag lists and the referrers API): the
//! target of its `rel="next"` link, the next page.
//!
//! A hand-written reader, and a small one: the grammar is a list of
//! `<URI-Reference>` each with `;`-separated parameters, whose values may
//! be quoted. The crate that reads it (`parse_link_header` 0.4) splits the
//! header at every comma, also inside a URI, refuses a query part without
//! `=`, and does not split a `rel` of several relation types.

/// The URI-Reference of the first link of `values` (the header's values,
/// in order) whose relation types include `next` (case-insensitive; only
/// a link's first `rel` counts, as RFC 8288 §3.3 says), `None` when none
/// has. A value that does not follow the grammar is an error, in words.
pub(super) fn next_target<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> std::result::Result<Option<String>, String> {
    for value in values {
        for (target, rel) in links(value)? {
            let next = rel.is_some_and(|r| {
                r.split_ascii_whitespace()
                    .any(|t| t.eq_ignore_ascii_case("next"))
            });
            if next {
                return Ok(Some(target));
            }
        }
    }
    Ok(None)
}

/// The links of one header value: each target, and its first `rel`.
fn links(value: &str) -> std::result::Result<Vec<(String, Option<String>)>, String> {
    let malformed = |why: &str| format!("the Link header {value:?} {why}");
    let mut out = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if rest.is_empty() {
            return Ok(out);
        }
        let Some(inner) = rest.strip_prefix('<') else {
            return Err(malformed("has a link that does not start with <"));
        };
        let Some((target, after)) = inner.split_once('>') else {
            return Err(malformed("has a link whose < is not closed by >"));
        };
        rest = after;
        let mut rel = None;
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace());
            match rest.strip_prefix(';') {
                Some(r) => rest = r.trim_start_matches(|c: char| c.is_ascii_whitespace()),
                None if rest.is_empty() || rest.starts_with(',') => break,
                None => return Err(malformed("has text between its links' parameters")),
            }
            let end = rest
                .find(|c: char| matches!(c, '=' | ';' | ',') || c.is_ascii_whitespace())
                .unwrap_or(rest.len());
            let name = &rest[..end];
            rest = rest[end..].trim_start_matches(|c: char| c.is_ascii_whitespace());
            let mut param = None;
            if let Some(r) = rest.strip_prefix('=') {
                let (v, after) = param_value(r.trim_start())
                    .ok_or_else(|| malformed("has a quoted parameter that is not closed"))?;
                param = Some(v);
                rest = after;
            }
            if name.eq_ignore_ascii_case("rel") && rel.is_none() {
                rel = Some(param.unwrap_or_default());
            }
        }
        out.push((target.trim().to_owned(), rel));
    }
}

/// A parameter's value at the start of `text` (a quoted string, its
/// backslash escapes undone, or a token), and what follows it; `None`
/// for a quoted string that is not closed.
fn param_value(text: &str) -> Option<(String, &str)> {
    let Some(quoted) = text.strip_prefix('"') else {
        let end = text
            .find(|c: char| matches!(c, ';' | ',') || c.is_ascii_whitespace())
            .unwrap_or(text.len());
        return Some((text[..end].to_owned(), &text[end..]));
    };
    let mut value = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => value.extend(chars.next().map(|(_, c)| c)),
            '"' => return Some((value, &quoted[i + 1..])),
            c => value.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next(values: &[&str]) -> Option<String> {
        next_target(values.iter().copied()).unwrap()
    }

    #[test]
    fn the_next_link_among_others_in_any_form() {
        let d = "/v2/a/referrers/sha256:ab?n=2&last=sha256:cd";
        assert_eq!(next(&[&format!("<{d}>; rel=\"next\"")]).as_deref(), Some(d));
        assert_eq!(next(&[&format!("<{d}>;rel=next")]).as_deref(), Some(d));
        // Other links first, commas inside a URI, several relation types,
        // the relation's case, a parameter without a value, a quoted
        // comma and semicolon.
        let header =
            format!(r#"</x?a,b>; rel="prev"; title="a, b; c", <{d}> ; anchor ; rel="last NEXT""#);
        assert_eq!(next(&[&header]).as_deref(), Some(d));
        // In a second header value.
        assert_eq!(
            next(&["</x>; rel=prev", "<?page=2>; rel=next"]).as_deref(),
            Some("?page=2")
        );
        // Only the first rel of a link counts (RFC 8288 §3.3).
        assert_eq!(next(&["</x>; rel=prev; rel=next"]), None);
        assert_eq!(next(&["</x>; title=next"]), None);
        assert_eq!(next(&[""]), None);
        assert_eq!(next(&[]), None);
    }

    #[test]
    fn a_header_off_the_grammar_is_an_error() {
        for bad in [
            "/v2/a; rel=next",
            "</v2/a; rel=next",
            r#"</v2/a>; rel="next"#,
            "</v2/a> rel=next",
        ] {
            let err = next_target([bad]).unwrap_err();
            assert!(err.starts_with("the Link header"), "{bad}: {err}");
        }
    }
}

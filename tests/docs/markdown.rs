//! What tests/docs.rs reads from a Markdown page, with pulldown-cmark (the
//! CommonMark parser mdBook renders the guide with): its fenced code blocks
//! and what their info strings mark (docs/tests.md, "Examples in the
//! guide"), its links and images, and the ids of its headings.

use std::collections::HashSet;

use pulldown_cmark::{CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd};

/// A fenced code block: the line of its opening fence, its info string and
/// its text.
pub struct Block {
    pub line: usize,
    pub info: String,
    pub text: String,
}

/// What a block's info string asks of the runner.
#[derive(Debug, PartialEq)]
pub enum Kind {
    /// Not marked: output, a fragment, a synopsis. Never run.
    Illustration,
    /// `LANG file=NAME`: the text is written to NAME for the blocks after it.
    File(String),
    /// `sh example` (or `bash example`): run as a `bash -euo pipefail` script.
    Sh,
    /// `nix example`: a function of `{ pkgs }`, built; `./result` links it.
    Nix,
}

/// A link or an image: the line it is on and its destination as written.
pub struct Link {
    pub line: usize,
    pub dest: String,
}

/// A heading: its line, its text (what GitHub and mdBook make its id
/// from) and an id written as `{#id}`, if any.
pub struct Heading {
    pub line: usize,
    pub text: String,
    pub explicit_id: Option<String>,
}

fn parser(text: &str) -> pulldown_cmark::OffsetIter<'_, pulldown_cmark::DefaultBrokenLinkCallback> {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_HEADING_ATTRIBUTES;
    Parser::new_ext(text, options).into_offset_iter()
}

/// The 1-based line of byte `offset` of `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The fenced code blocks of a page, in page order (indented code blocks
/// are never examples).
pub fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (event, range) in parser(text) {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                current = Some(Block {
                    line: line_of(text, range.start),
                    info: info.to_string(),
                    text: String::new(),
                });
            }
            Event::Text(t) => {
                if let Some(b) = current.as_mut() {
                    b.text.push_str(&t);
                }
            }
            Event::End(TagEnd::CodeBlock) => out.extend(current.take()),
            _ => {}
        }
    }
    out
}

/// What the info string `info` marks, or why the runner cannot run it.
pub fn kind(info: &str) -> Result<Kind, String> {
    let mut words = info
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|w| !w.is_empty());
    let lang = words.next().unwrap_or("");
    let rest: Vec<&str> = words.collect();
    let example = rest.contains(&"example");
    let files: Vec<&str> = rest
        .iter()
        .filter_map(|w| w.strip_prefix("file="))
        .collect();
    if !example && files.is_empty() {
        return Ok(Kind::Illustration);
    }
    if let Some(w) = rest
        .iter()
        .find(|w| **w != "example" && !w.starts_with("file="))
    {
        return Err(format!(
            "unknown attribute `{w}` in a marked block (`{info}`): a marked block takes `example` or `file=NAME` after its language"
        ));
    }
    if example && !files.is_empty() {
        return Err(format!(
            "`{info}` is both an example and a file: a `file=NAME` block is written for the blocks after it, an `example` block is run; write two blocks"
        ));
    }
    if let [name] = files[..] {
        let path = std::path::Path::new(name);
        let plain = !name.is_empty()
            && path
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if !plain {
            return Err(format!(
                "`file={name}` must name a file inside the page's working directory (a relative path without `..`)"
            ));
        }
        return Ok(Kind::File(name.to_owned()));
    }
    if !files.is_empty() {
        return Err(format!(
            "`{info}` names more than one file: one `file=NAME` per block"
        ));
    }
    match lang {
        "sh" | "bash" => Ok(Kind::Sh),
        "nix" => Ok(Kind::Nix),
        other => Err(format!(
            "cannot run a `{other} example` block: the runner runs `sh example` and `nix example` blocks (write other text with `{other} file=NAME` for the blocks after it)"
        )),
    }
}

/// The links and images of a page (inline, reference and autolinks), in
/// page order.
pub fn links(text: &str) -> Vec<Link> {
    let mut out = Vec::new();
    for (event, range) in parser(text) {
        if let Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) = event {
            out.push(Link {
                line: line_of(text, range.start),
                dest: dest_url.to_string(),
            });
        }
    }
    out
}

/// The headings of a page, with their text as rendered (code spans'
/// text, no markup).
pub fn headings(text: &str) -> Vec<Heading> {
    let mut out = Vec::new();
    let mut current: Option<Heading> = None;
    for (event, range) in parser(text) {
        match event {
            Event::Start(Tag::Heading { id, .. }) => {
                current = Some(Heading {
                    line: line_of(text, range.start),
                    text: String::new(),
                    explicit_id: id.map(|i| i.to_string()),
                });
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = current.as_mut() {
                    h.text.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => out.extend(current.take()),
            _ => {}
        }
    }
    out
}

/// The ids given in raw HTML (`<a id="x">`, `<a name="x">`), which links
/// may name too.
pub fn html_ids(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (event, _) in parser(text) {
        if let Event::Html(h) | Event::InlineHtml(h) = event {
            for attr in ["id=\"", "name=\""] {
                let mut rest: &str = &h;
                while let Some(at) = rest.find(attr) {
                    rest = &rest[at + attr.len()..];
                    if let Some(end) = rest.find('"') {
                        out.push(rest[..end].to_owned());
                    }
                }
            }
        }
    }
    out
}

/// A heading's id as GitHub makes it: lowercased; letters, marks, numbers,
/// connector punctuation (`_`), `-` and spaces kept, each space a `-`.
pub fn github_id(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            // Combining marks and connector punctuation beyond `_`:
            // GitHub keeps them, mdBook drops them (a difference the
            // heading check reports).
            '\u{300}'..='\u{36f}'
            | '\u{203f}'
            | '\u{2040}'
            | '\u{2054}'
            | '\u{fe33}'
            | '\u{fe34}'
            | '\u{fe4d}'..='\u{fe4f}'
            | '\u{ff3f}' => Some(c),
            _ => None,
        })
        .collect()
}

/// A heading's id as mdBook 0.5 makes it (mdbook-html's
/// `id_from_content`): lowercased; alphanumerics, `_` and `-` kept, each
/// whitespace character a `-`.
pub fn mdbook_id(text: &str) -> String {
    text.trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '_' || c == '-' {
                Some(c)
            } else if c.is_whitespace() {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// The ids of a page's headings as both make them (a repeated id gets
/// `-1`, `-2`, ... in both) and its HTML ids, with the headings whose ids
/// differ between GitHub and mdBook (a link to them would work on one
/// only), each with its line.
pub fn heading_ids(text: &str) -> (HashSet<String>, Vec<(usize, String)>) {
    let mut github = HashSet::new();
    let mut mdbook = HashSet::new();
    let mut ids = HashSet::new();
    let mut differ = Vec::new();
    for h in headings(text) {
        if let Some(id) = h.explicit_id {
            ids.insert(id);
            continue;
        }
        let g = unique(github_id(&h.text), &mut github);
        let m = unique(mdbook_id(&h.text), &mut mdbook);
        if g != m {
            differ.push((
                h.line,
                format!(
                    "heading `{}` gets the id `{g}` on GitHub but `{m}` in mdBook: reword it or give it an id ({{#ID}})",
                    h.text
                ),
            ));
        }
        ids.insert(m);
    }
    ids.extend(html_ids(text));
    (ids, differ)
}

/// `id`, or the first of `id-1`, `id-2`, ... not yet in `used`.
pub fn unique(id: String, used: &mut HashSet<String>) -> String {
    if used.insert(id.clone()) {
        return id;
    }
    let mut n = 1;
    loop {
        let candidate = format!("{id}-{n}");
        if used.insert(candidate.clone()) {
            return candidate;
        }
        n += 1;
    }
}

/// The pages a summary (`docs/SUMMARY.md`) lists, as written, each with
/// the part (`# Guide`, `# Reference`, ...) it is listed under ("" before
/// the first part).
pub fn summary_entries(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut part = String::new();
    let mut in_part_title = false;
    for (event, _) in parser(text) {
        match event {
            Event::Start(Tag::Heading {
                level: HeadingLevel::H1,
                ..
            }) => {
                in_part_title = true;
                part.clear();
            }
            Event::End(TagEnd::Heading(HeadingLevel::H1)) => in_part_title = false,
            Event::Text(t) if in_part_title => part.push_str(&t),
            Event::Start(Tag::Link { dest_url, .. }) => {
                out.push((part.clone(), dest_url.to_string()));
            }
            _ => {}
        }
    }
    out
}

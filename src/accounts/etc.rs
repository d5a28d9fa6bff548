//! The lines of `/etc/passwd`, `/etc/group` and `/etc/shadow`: read
//! strictly (an entry, or nothing), written in one form.

/// A `passwd` entry, as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pw {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
    pub shell: String,
}

/// A `group` entry, as compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Gr {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The lines of a file: `\n`-separated, the empty text after a final
/// newline left out. Numbered from 1.
pub(super) fn lines(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    body.split(|&b| b == b'\n')
        .enumerate()
        .filter(move |_| !bytes.is_empty())
        .map(|(i, l)| (i + 1, l))
}

fn fields(line: &[u8], count: usize) -> Option<Vec<&str>> {
    let text = std::str::from_utf8(line).ok()?;
    if text.starts_with('#') || text.trim() != text {
        return None;
    }
    let fields: Vec<&str> = text.split(':').collect();
    (fields.len() == count).then_some(fields)
}

fn id(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A `passwd` line as an entry: seven fields, decimal ids.
pub(super) fn parse_passwd(line: &[u8]) -> Option<Pw> {
    let f = fields(line, 7)?;
    Some(Pw {
        name: f[0].to_owned(),
        uid: id(f[2])?,
        gid: id(f[3])?,
        home: f[5].to_owned(),
        shell: f[6].to_owned(),
    })
}

/// A `group` line as an entry: four fields, a decimal gid.
pub(super) fn parse_group(line: &[u8]) -> Option<Gr> {
    let f = fields(line, 4)?;
    Some(Gr {
        name: f[0].to_owned(),
        gid: id(f[2])?,
        members: f[3]
            .split(',')
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// The name of a `shadow` line (its first field), if it has one.
pub(super) fn shadow_name(line: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(line).ok()?;
    let (name, _) = text.split_once(':')?;
    (!name.is_empty() && !name.starts_with('#')).then_some(name)
}

/// The first field of any line, for listing names leniently.
pub(super) fn first_field(line: &[u8]) -> Option<&str> {
    shadow_name(line)
}

pub(super) fn passwd_line(p: &Pw) -> String {
    format!("{}:x:{}:{}::{}:{}\n", p.name, p.uid, p.gid, p.home, p.shell)
}

pub(super) fn group_line(g: &Gr) -> String {
    format!("{}:x:{}:{}\n", g.name, g.gid, g.members.join(","))
}

pub(super) fn shadow_line(name: &str) -> String {
    format!("{name}:*:::::::\n")
}

/// `base` with `new` appended: a newline first when `base` is not empty
/// and does not end with one.
pub(super) fn append(base: &[u8], new: &str) -> Vec<u8> {
    let mut out = base.to_vec();
    if !new.is_empty() && !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    out.extend_from_slice(new.as_bytes());
    out
}

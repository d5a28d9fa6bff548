//! A layer spec's `perms` rules: the mode and owner of entries already
//! placed, chosen by an anchored regex over their full path in the image.

use super::*;

/// One `perms` rule.
#[derive(Clone, Debug)]
pub struct PermRule<'a> {
    /// The entries considered: this absolute path and everything under it.
    pub path: &'a str,
    /// Matched, anchored at both ends, against `/` and the entry's path.
    pub regex: &'a str,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// How messages name the rule (`perms[0]`).
    pub label: String,
}

/// The fields a rule sets, in the order of [`Setting`]'s slots.
const FIELDS: [&str; 3] = ["modes", "owners (uid)", "groups (gid)"];

/// For one entry, each field's value and the rule that set it.
type Setting = [Option<(u64, usize)>; 3];

impl Tree {
    /// Apply `rules` to the entries placed so far (not to whiteouts). Every
    /// rule must match at least one entry, and two rules may not set one
    /// field of an entry to different values, so the result does not
    /// depend on the rules' order. A symbolic link keeps mode 0777 (Linux
    /// has no mode for links); its owner is set.
    pub fn apply_perms(&mut self, rules: &[PermRule]) -> Result<()> {
        let mut set: BTreeMap<Vec<u8>, Setting> = BTreeMap::new();
        for (i, r) in rules.iter().enumerate() {
            let values = [
                r.mode.map(u64::from),
                r.uid.map(u64::from),
                r.gid.map(u64::from),
            ];
            if values.iter().all(Option::is_none) {
                return Err(Error::Invalid(format!(
                    "{} sets nothing: give \"mode\", \"uid\" or \"gid\"",
                    r.label
                )));
            }
            let (root, _) = parse_destination(r.path).map_err(|e| e.within(r.label.clone()))?;
            let re = regex::bytes::Regex::new(&format!("^(?:{})$", r.regex)).map_err(|e| {
                Error::Invalid(format!(
                    "{}: regex {:?} is not valid: {e}",
                    r.label, r.regex
                ))
            })?;
            let root = root.as_bytes();
            let mut matched = false;
            for (p, e) in &self.entries {
                let under = root.is_empty()
                    || p == root
                    || (p.starts_with(root) && p.get(root.len()) == Some(&b'/'));
                if e.removes.is_some() || !under {
                    continue;
                }
                let mut full = Vec::with_capacity(p.len() + 1);
                full.push(b'/');
                full.extend_from_slice(p);
                if !re.is_match(&full) {
                    continue;
                }
                matched = true;
                let slots = set.entry(p.clone()).or_default();
                for (k, v) in values.iter().enumerate() {
                    let Some(v) = *v else { continue };
                    match slots[k] {
                        Some((old, j)) if old != v => {
                            let show = |x: u64| {
                                if k == 0 {
                                    format!("{x:o}")
                                } else {
                                    x.to_string()
                                }
                            };
                            return Err(Error::Invalid(format!(
                                "{}: {} and {} set different {} ({} and {}); make the rules agree or not overlap",
                                display(p),
                                rules[j].label,
                                r.label,
                                FIELDS[k],
                                show(old),
                                show(v)
                            )));
                        }
                        _ => slots[k] = Some((v, i)),
                    }
                }
            }
            if !matched {
                return Err(Error::Invalid(format!(
                    "{}: regex {:?} matches no entry of this layer at or under {}",
                    r.label, r.regex, r.path
                )));
            }
        }
        for (p, [mode, uid, gid]) in set {
            let Some(e) = self.entries.get_mut(&p) else {
                continue;
            };
            if let Some((m, _)) = mode {
                if !matches!(e.kind, Kind::Symlink(_)) {
                    e.mode = m as u32;
                }
            }
            if let Some((u, _)) = uid {
                e.uid = u;
            }
            if let Some((g, _)) = gid {
                e.gid = g;
            }
            // Asked for: a base image's directory no longer replaces it.
            e.implicit = false;
        }
        Ok(())
    }
}

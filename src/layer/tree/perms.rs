//! `perms` rules: the mode and owner of entries already placed, chosen by
//! an anchored regex over their full path in the image. A layer spec
//! applies its rules to its one layer; `nixoci layers` applies its rules to
//! every layer it writes, and a rule need only match in one of them.

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

/// A rule, checked: its path as a tree key, its regex compiled, the
/// values it sets.
struct Checked<'a> {
    rule: PermRule<'a>,
    root: Vec<u8>,
    re: regex::bytes::Regex,
    values: [Option<u64>; 3],
}

/// `perms` rules, checked, and which of them have matched an entry in the
/// trees they were applied to so far. Every rule must match at least one
/// entry of those trees ([`Perms::check_matched`]), and two rules may not
/// set one field of an entry to different values, so the result does not
/// depend on the rules' order. A symbolic link keeps mode 0777 (Linux has
/// no mode for links); its owner is set.
pub struct Perms<'a> {
    rules: Vec<Checked<'a>>,
    matched: Vec<bool>,
}

impl<'a> Perms<'a> {
    /// Check `rules`: each sets something, at an absolute path, with a
    /// valid regex.
    pub fn new(rules: &[PermRule<'a>]) -> Result<Self> {
        let mut checked = Vec::with_capacity(rules.len());
        for r in rules {
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
            checked.push(Checked {
                rule: r.clone(),
                root: root.into_bytes(),
                re,
                values,
            });
        }
        let matched = vec![false; checked.len()];
        Ok(Perms {
            rules: checked,
            matched,
        })
    }

    /// Set the mode and owner the rules give on the entries of `tree`
    /// placed so far (not on whiteouts). On an error (two rules disagree),
    /// `tree` is left as it was.
    pub fn apply(&mut self, tree: &mut Tree) -> Result<()> {
        let mut set: BTreeMap<Vec<u8>, Setting> = BTreeMap::new();
        let mut matched = self.matched.clone();
        for (i, r) in self.rules.iter().enumerate() {
            let root = &r.root[..];
            for (p, e) in &tree.entries {
                let under = root.is_empty()
                    || p == root
                    || (p.starts_with(root) && p.get(root.len()) == Some(&b'/'));
                if e.removes.is_some() || !under {
                    continue;
                }
                let mut full = Vec::with_capacity(p.len() + 1);
                full.push(b'/');
                full.extend_from_slice(p);
                if !r.re.is_match(&full) {
                    continue;
                }
                matched[i] = true;
                let slots = set.entry(p.clone()).or_default();
                for (k, v) in r.values.iter().enumerate() {
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
                                self.rules[j].rule.label,
                                r.rule.label,
                                FIELDS[k],
                                show(old),
                                show(v)
                            )));
                        }
                        _ => slots[k] = Some((v, i)),
                    }
                }
            }
        }
        self.matched = matched;
        for (p, [mode, uid, gid]) in set {
            let Some(e) = tree.entries.get_mut(&p) else {
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

    /// An error naming the first rule that matched no entry of the trees
    /// it was applied to; `scope` says which they were (`this layer`,
    /// `any layer`).
    pub fn check_matched(&self, scope: &str) -> Result<()> {
        match self.rules.iter().zip(&self.matched).find(|(_, m)| !**m) {
            None => Ok(()),
            Some((r, _)) => Err(Error::Invalid(format!(
                "{}: regex {:?} matches no entry of {scope} at or under {}",
                r.rule.label, r.rule.regex, r.rule.path
            ))),
        }
    }
}

impl Tree {
    /// Apply `rules` to the entries placed so far, as [`Perms`] says; a
    /// rule must match in this tree.
    pub fn apply_perms(&mut self, rules: &[PermRule]) -> Result<()> {
        let mut perms = Perms::new(rules)?;
        perms.apply(self)?;
        perms.check_matched("this layer")
    }
}

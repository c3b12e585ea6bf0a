//! Who a newsletter is for: the lists, a segment (`--where`) and the lists nobody on which gets
//! it (`--exclude`) — from the flags, else the newsletter's front matter `audience:`.
//!
//! The audience is installed on the lists' [`Sources`] as a filter, so every pass (check,
//! preview, preflight, send, `lists`) makes the same decision. A campaign remembers its
//! audience in its fingerprint: resuming with a different one is refused like a changed
//! newsletter.

pub(crate) mod lang;
mod segment;
pub(crate) mod survey;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Result;
use sha2::{Digest, Sha256};

use crate::list::{Item, KeyHash, Skip, Sources, key_hash};
use crate::newsletter::AudienceFront;
pub(crate) use segment::Segment;

/// The resolved audience of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Audience {
    pub lists: Vec<PathBuf>,
    /// The `--where` expression.
    pub segment: Option<String>,
    pub exclude: Vec<PathBuf>,
}

/// What the flags said; empty parts fall back to the front matter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags<'a> {
    pub lists: &'a [PathBuf],
    pub segment: Option<&'a str>,
    pub exclude: &'a [PathBuf],
    /// `--format`: read every list as this export layout instead of recognising it.
    pub format: Option<crate::list::Format>,
}

/// Separates the newsletter's part of a campaign fingerprint from the audience's.
const AUDIENCE_MARK: &str = "+audience:";

impl Audience {
    /// Flags override the front matter part by part; front-matter paths are resolved with
    /// `project` (relative to the folder of `bulletin.toml`).
    pub(crate) fn resolve(
        flags: Flags<'_>,
        front: Option<&AudienceFront>,
        project: impl Fn(&Path) -> PathBuf,
    ) -> Audience {
        let front = front.cloned().unwrap_or_default();
        let from_front = |paths: Vec<PathBuf>| paths.iter().map(|p| project(p)).collect();
        Audience {
            lists: if flags.lists.is_empty() {
                from_front(front.lists)
            } else {
                flags.lists.to_vec()
            },
            segment: flags
                .segment
                .map(str::to_owned)
                .or(front.segment)
                .filter(|s| !s.trim().is_empty()),
            exclude: if flags.exclude.is_empty() {
                from_front(front.exclude)
            } else {
                flags.exclude.to_vec()
            },
        }
    }

    /// Compiles the segment against the lists' fields and reads the excluded lists, then makes
    /// `sources` leave out everyone outside the audience. `Err(message)` for a segment that
    /// cannot work (a preflight error); unreadable excluded lists are errors too.
    pub(crate) fn install(&self, sources: &mut Sources) -> Result<Result<(), String>> {
        let segment = match &self.segment {
            None => None,
            Some(expr) => match Segment::compile(expr, &sources.fields) {
                Ok(s) => Some(s),
                Err(message) => return Ok(Err(message)),
            },
        };
        let excluded = read_excluded(&self.exclude)?;
        if segment.is_none() && excluded.is_empty() {
            return Ok(Ok(()));
        }
        sources.set_filter(Box::new(move |r| {
            let hash = key_hash(r.email.key());
            if let Some((_, by)) = excluded.iter().find(|(set, _)| set.contains(&hash)) {
                return Ok(Some(Skip::Excluded { by: by.clone() }));
            }
            match &segment {
                Some(s) if !s.matches(r)? => Ok(Some(Skip::Outside)),
                _ => Ok(None),
            }
        }));
        Ok(Ok(()))
    }

    /// The campaign fingerprint for `newsletter`'s: the same when the audience is everyone on
    /// the lists (journals from before segments still match), else with the segment and the
    /// excluded lists folded in. The lists themselves are not part of it: fixing a row or
    /// adding a list to a campaign under way is ordinary.
    pub(crate) fn fingerprint(&self, newsletter: &str) -> String {
        if self.segment.is_none() && self.exclude.is_empty() {
            return newsletter.to_owned();
        }
        let mut h = Sha256::new();
        h.update(self.segment.as_deref().unwrap_or("").as_bytes());
        let mut exclude: Vec<String> = self.exclude.iter().map(|p| p.display().to_string()).collect();
        exclude.sort();
        for p in exclude {
            h.update(b"\0");
            h.update(p.as_bytes());
        }
        let digest: String = h.finalize()[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("{newsletter}{AUDIENCE_MARK}{digest}")
    }
}

/// What differs between a campaign's recorded fingerprint and this run's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Changed {
    Newsletter,
    Audience,
    Both,
}

/// Compares two fingerprints made by [`Audience::fingerprint`]; `None` when equal.
pub(crate) fn changed(recorded: &str, now: &str) -> Option<Changed> {
    let split = |f: &str| match f.split_once(AUDIENCE_MARK) {
        Some((n, a)) => (n.to_owned(), a.to_owned()),
        None => (f.to_owned(), String::new()),
    };
    let ((n0, a0), (n1, a1)) = (split(recorded), split(now));
    match (n0 != n1, a0 != a1) {
        (false, false) => None,
        (true, false) => Some(Changed::Newsletter),
        (false, true) => Some(Changed::Audience),
        (true, true) => Some(Changed::Both),
    }
}

/// The addresses on each excluded list (any row with a valid address, whatever its status),
/// with the list's path.
fn read_excluded(lists: &[PathBuf]) -> Result<Vec<(HashSet<KeyHash>, PathBuf)>> {
    let mut out = Vec::new();
    for path in lists {
        let sources = Sources::open(std::slice::from_ref(path), &[])?;
        let mut set = HashSet::new();
        for item in sources.stream() {
            let key = match item? {
                Item::Member(r) => Some(r.email.key().to_owned()),
                Item::Skipped(s) => s.key,
            };
            if let Some(k) = key {
                set.insert(key_hash(&k));
            }
        }
        out.push((set, path.clone()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_front_matter_part_by_part() {
        let front = AudienceFront {
            lists: vec!["lists/members.csv".into()],
            segment: Some("city == \"Salinas\"".into()),
            exclude: vec!["lists/staff.csv".into()],
        };
        let project = |p: &Path| Path::new("/proj").join(p);
        let a = Audience::resolve(Flags::default(), Some(&front), project);
        assert_eq!(a.lists, [PathBuf::from("/proj/lists/members.csv")]);
        assert_eq!(a.exclude, [PathBuf::from("/proj/lists/staff.csv")]);
        let lists = [PathBuf::from("x.csv")];
        let flags = Flags {
            lists: &lists,
            segment: Some("\"a\" in tags"),
            exclude: &[],
            format: None,
        };
        let a = Audience::resolve(flags, Some(&front), project);
        assert_eq!(a.lists, lists);
        assert_eq!(a.segment.as_deref(), Some("\"a\" in tags"));
        assert_eq!(a.exclude, [PathBuf::from("/proj/lists/staff.csv")]);
    }

    #[test]
    fn the_fingerprint_keeps_the_newsletter_part_and_tells_which_changed() {
        let everyone = Audience::default();
        assert_eq!(everyone.fingerprint("abc"), "abc");
        let seg = Audience {
            segment: Some("city == \"Salinas\"".into()),
            ..Audience::default()
        };
        let other = Audience {
            segment: Some("city == \"Oakland\"".into()),
            ..Audience::default()
        };
        assert_eq!(changed("abc", &everyone.fingerprint("abc")), None);
        assert_eq!(changed(&seg.fingerprint("abc"), &seg.fingerprint("abc")), None);
        assert_eq!(changed("abc", &seg.fingerprint("abc")), Some(Changed::Audience));
        assert_eq!(
            changed(&seg.fingerprint("abc"), &other.fingerprint("abc")),
            Some(Changed::Audience)
        );
        assert_eq!(
            changed(&seg.fingerprint("abc"), &seg.fingerprint("abd")),
            Some(Changed::Newsletter)
        );
        assert_eq!(changed("abc", &seg.fingerprint("abd")), Some(Changed::Both));
    }
}

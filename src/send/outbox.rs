//! Where built messages go when they are not sent: the dry run's outbox, beside SMTP
//! ([`super::Delivery`]). An outbox takes each member's finished message in list order; today
//! one writes a folder of `.eml` files, one per member, readable by the owner only.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::list::Recipient;
use crate::message::Letterhead;
use crate::private::{private_dir, private_file};
use crate::render::Compiled;

/// Takes built messages.
pub trait Outbox {
    /// Takes the `n`th message of the run (from 1), addressed to `r`.
    fn put(&mut self, n: usize, r: &Recipient, message: &[u8]) -> Result<()>;
}

/// A folder with one `NNNNNN-address.eml` file per member.
pub struct EmlFolder {
    dir: PathBuf,
}

impl EmlFolder {
    /// Creates `dir` (mode 0700) for the messages.
    pub fn create(dir: &Path) -> Result<EmlFolder> {
        private_dir(dir)?;
        Ok(EmlFolder { dir: dir.to_owned() })
    }
}

impl Outbox for EmlFolder {
    fn put(&mut self, n: usize, r: &Recipient, message: &[u8]) -> Result<()> {
        let name: String = r
            .email
            .key()
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || "@.-_+".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        private_file(&self.dir.join(format!("{n:06}-{name}.eml")), message)
    }
}

/// Builds every member's message and puts it in `outbox`; returns how many. Preflight has
/// rendered each member already, so an error here means a list changed in between.
pub fn fill(
    outbox: &mut impl Outbox,
    members: impl Iterator<Item = Result<Recipient>>,
    compiled: &Compiled,
    letterhead: &Letterhead,
) -> Result<usize> {
    let mut n = 0;
    for r in members {
        let r = r?;
        let content = compiled
            .personalise(&r)
            .map_err(|e| anyhow::anyhow!("{}: {}", r.location(), e.message))?;
        let message = letterhead.build(&r, &content, letterhead.message_id())?;
        n += 1;
        outbox.put(n, &r, &message.formatted())?;
    }
    Ok(n)
}

//! `--shard K/N`: split one list across N machines (or N relays) so each sends to the members
//! whose normalised address hashes to its shard — the same split on every run and every
//! machine, since it depends on nothing but the address.

use std::fmt;

use anyhow::{Result, bail};
use sha2::{Digest, Sha256};

/// Shard `index` (1-based) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// Parses `K/N` with 1 ≤ K ≤ N.
    pub fn parse(s: &str) -> Result<Shard> {
        let Some((k, n)) = s.split_once('/') else {
            bail!("{s:?}: write it as K/N, e.g. 2/4 for the second of four shards");
        };
        let (Ok(index), Ok(count)) = (k.trim().parse::<u32>(), n.trim().parse::<u32>()) else {
            bail!("{s:?}: K and N must be whole numbers");
        };
        if count == 0 || index == 0 || index > count {
            bail!("{s:?}: K must be between 1 and N");
        }
        Ok(Shard { index, count })
    }

    /// Does the member with this normalised address belong to this shard?
    pub fn contains(&self, key: &str) -> bool {
        shard_of(key, self.count) == self.index
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The 1-based shard of `key` among `count`: SHA-256, so stable everywhere and evenly spread.
pub(crate) fn shard_of(key: &str, count: u32) -> u32 {
    let digest = Sha256::digest(key.as_bytes());
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    (n % u64::from(count)) as u32 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_address_is_in_exactly_one_shard_and_the_split_is_even() {
        let shards: Vec<Shard> = (1..=4).map(|k| Shard::parse(&format!("{k}/4")).unwrap()).collect();
        let mut sizes = [0usize; 4];
        for i in 0..4000 {
            let key = format!("member{i}@example.org");
            let hits: Vec<usize> = (0..4).filter(|&s| shards[s].contains(&key)).collect();
            assert_eq!(hits.len(), 1);
            sizes[hits[0]] += 1;
        }
        assert!(sizes.iter().all(|&n| (850..=1150).contains(&n)), "{sizes:?}");
    }

    #[test]
    fn the_split_never_changes() {
        // Pinned (computed independently with Python's hashlib): a machine running another
        // build must put each member in the same shard.
        let got: Vec<u32> = [
            "a@example.org",
            "b@example.org",
            "c@example.org",
            "ana.lopez@example.org",
        ]
        .iter()
        .map(|k| shard_of(k, 7))
        .collect();
        assert_eq!(got, [1, 7, 1, 4]);
    }

    #[test]
    fn parses_and_refuses() {
        assert_eq!(Shard::parse("2/4").unwrap(), Shard { index: 2, count: 4 });
        for bad in ["0/4", "5/4", "1/0", "x/2", "3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
    }
}

//! DKIM: load the signing key named in `bulletin.toml` (PEM as openssl writes it) into lettre's
//! signer, and generate new key pairs with the DNS record to publish.
//!
//! lettre 0.11 wants RSA keys as PKCS#1 PEM and Ed25519 keys as a base64 raw seed, and its
//! default configuration (simple header canonicalisation) produces signatures that fail once a
//! relay re-folds a header; so keys are converted here and signing is always relaxed/relaxed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm, DkimSigningKey,
};
use lettre::message::header::HeaderName;
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::EncodePublicKey as _;
use rsa::traits::PublicKeyParts as _;

use crate::secret::Secret;

/// Smallest RSA key accepted: Gmail and Yahoo ignore shorter ones.
const MIN_RSA_BITS: usize = 2048;

/// Which kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

/// A loaded signing key, ready to build lettre configurations.
#[derive(Debug)]
pub struct Key {
    /// PKCS#1 PEM (RSA) or base64 seed (Ed25519): what lettre takes.
    pem_or_seed: Secret,
    pub algorithm: Algorithm,
    pub domain: String,
    pub selector: String,
}

impl Key {
    /// Reads `path`: RSA as PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8, Ed25519 as PKCS#8
    /// (`BEGIN PRIVATE KEY`).
    pub fn load(path: &Path, domain: &str, selector: &str) -> Result<Key> {
        let pem =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the DKIM key {}", path.display()))?;
        let (pem_or_seed, algorithm) = if pem.contains("BEGIN RSA PRIVATE KEY") {
            let key = <rsa::RsaPrivateKey as rsa::pkcs1::DecodeRsaPrivateKey>::from_pkcs1_pem(&pem)
                .map_err(|e| anyhow::anyhow!("{}: not a valid RSA key: {e}", path.display()))?;
            check_rsa_size(&key, path)?;
            (pem, Algorithm::Rsa)
        } else if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem) {
            (
                base64::engine::general_purpose::STANDARD.encode(key.to_bytes()),
                Algorithm::Ed25519,
            )
        } else if let Ok(key) = rsa::RsaPrivateKey::from_pkcs8_pem(&pem) {
            check_rsa_size(&key, path)?;
            let pkcs1 = key
                .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            (pkcs1.to_string(), Algorithm::Rsa)
        } else {
            bail!(
                "{}: not a private key bulletin can use: give an RSA key (PKCS#1 or PKCS#8 PEM, 2048 bits or more) \
                 or an Ed25519 key (PKCS#8 PEM), e.g. from `bulletin dkim keygen`",
                path.display()
            );
        };
        Ok(Key {
            pem_or_seed: Secret::new(pem_or_seed),
            algorithm,
            domain: domain.to_owned(),
            selector: selector.to_owned(),
        })
    }

    /// A lettre signer covering `headers` (those the messages actually carry).
    pub fn config(&self, headers: &[&'static str]) -> Result<DkimConfig> {
        let algorithm = match self.algorithm {
            Algorithm::Rsa => DkimSigningAlgorithm::Rsa,
            Algorithm::Ed25519 => DkimSigningAlgorithm::Ed25519,
        };
        let key = DkimSigningKey::new(self.pem_or_seed.expose(), algorithm)
            .map_err(|e| anyhow::anyhow!("DKIM key: {e:?}"))?;
        let headers = headers.iter().map(|h| HeaderName::new_from_ascii_str(h)).collect();
        let relaxed = DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        };
        Ok(DkimConfig::new(
            self.selector.clone(),
            self.domain.clone(),
            key,
            headers,
            relaxed,
        ))
    }
}

impl Key {
    /// The TXT record value that publishes this key's public half.
    pub fn dns_record(&self) -> Result<String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(match self.algorithm {
            Algorithm::Rsa => {
                let key =
                    <rsa::RsaPrivateKey as rsa::pkcs1::DecodeRsaPrivateKey>::from_pkcs1_pem(self.pem_or_seed.expose())
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                let spki = key
                    .to_public_key()
                    .to_public_key_der()
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                format!("v=DKIM1; k=rsa; p={}", b64.encode(spki.as_bytes()))
            }
            Algorithm::Ed25519 => {
                let seed: [u8; 32] = b64
                    .decode(self.pem_or_seed.expose())?
                    .try_into()
                    .map_err(|_| anyhow::anyhow!("Ed25519 seed is not 32 bytes"))?;
                let key = ed25519_dalek::SigningKey::from_bytes(&seed);
                format!("v=DKIM1; k=ed25519; p={}", b64.encode(key.verifying_key().to_bytes()))
            }
        })
    }
}

fn check_rsa_size(key: &rsa::RsaPrivateKey, path: &Path) -> Result<()> {
    let bits = key.size() * 8;
    if bits < MIN_RSA_BITS {
        bail!(
            "{}: the RSA key has {bits} bits; mailbox providers want {MIN_RSA_BITS} or more",
            path.display()
        );
    }
    Ok(())
}

/// A new key pair: the private key file written and the TXT record to publish.
pub struct Generated {
    pub path: PathBuf,
    pub record_name: String,
    pub record_value: String,
}

/// Writes a new private key (mode 0600) to `dir/<selector>.<domain>.pem`.
pub fn keygen(dir: &Path, selector: &str, domain: &str, algorithm: Algorithm) -> Result<Generated> {
    let path = dir.join(format!("{selector}.{domain}.pem"));
    if path.exists() {
        bail!(
            "{} already exists: keygen never overwrites a key; pick another selector",
            path.display()
        );
    }
    let mut rng = rand_core::OsRng;
    let (pem, public) = match algorithm {
        Algorithm::Rsa => {
            let key = rsa::RsaPrivateKey::new(&mut rng, MIN_RSA_BITS).context("cannot generate an RSA key")?;
            let pem = key
                .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .to_string();
            let spki = key
                .to_public_key()
                .to_public_key_der()
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            (
                pem,
                format!(
                    "v=DKIM1; k=rsa; p={}",
                    base64::engine::general_purpose::STANDARD.encode(spki.as_bytes())
                ),
            )
        }
        Algorithm::Ed25519 => {
            let key = ed25519_dalek::SigningKey::generate(&mut rng);
            let pem = key
                .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let public = base64::engine::general_purpose::STANDARD.encode(key.verifying_key().to_bytes());
            (pem.to_string(), format!("v=DKIM1; k=ed25519; p={public}"))
        }
    };
    crate::cmd::private_dir(dir)?;
    crate::cmd::private_file(&path, pem.as_bytes())?;
    Ok(Generated {
        path,
        record_name: format!("{selector}._domainkey.{domain}"),
        record_value: public,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_back_and_sign() {
        let dir = tempfile::tempdir().unwrap();
        for algorithm in [Algorithm::Ed25519, Algorithm::Rsa] {
            let g = keygen(
                dir.path(),
                "s1",
                &format!("{algorithm:?}.example.org").to_lowercase(),
                algorithm,
            )
            .unwrap();
            assert!(g.record_value.starts_with("v=DKIM1; k="));
            let key = Key::load(&g.path, "example.org", "s1").unwrap();
            assert_eq!(key.algorithm, algorithm);
            assert_eq!(key.dns_record().unwrap(), g.record_value);
            key.config(&["From", "To", "Subject"]).unwrap();
        }
        let g = keygen(dir.path(), "s1", "ed25519.example.org", Algorithm::Ed25519);
        assert!(g.is_err(), "never overwrites");
    }

    #[test]
    fn rsa_pkcs8_is_converted_and_small_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand_core::OsRng;
        let big = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let p8 = rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&big, rsa::pkcs8::LineEnding::LF).unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, p8.as_bytes()).unwrap();
        assert_eq!(Key::load(&path, "example.org", "s").unwrap().algorithm, Algorithm::Rsa);
        let small = rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap();
        std::fs::write(
            &path,
            small.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        assert!(
            Key::load(&path, "example.org", "s")
                .unwrap_err()
                .to_string()
                .contains("1024 bits")
        );
        std::fs::write(&path, "not a key").unwrap();
        assert!(
            Key::load(&path, "example.org", "s")
                .unwrap_err()
                .to_string()
                .contains("not a private key")
        );
    }
}

//! DKIM: load the signing key named in `bulletin.toml` (PEM as openssl writes it), sign with it
//! ([`sign`]), and generate new key pairs with the DNS record to publish.

mod sign;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use rsa::pkcs1::EncodeRsaPrivateKey as _;
use rsa::pkcs8::EncodePublicKey as _;
use rsa::traits::PublicKeyParts as _;

pub use sign::Signer;
use sign::SigningKey;

/// Smallest RSA key accepted: receivers ignore shorter ones (RFC 8301 §3.2).
const MIN_RSA_BITS: usize = 1024;
/// Size of the RSA keys `keygen` makes, and below which `check` and `doctor` warn: Gmail
/// advises 2048 bits.
pub const GOOD_RSA_BITS: usize = 2048;
/// Largest RSA key accepted: receivers need only verify keys up to 4096 bits (RFC 8301 §3.2),
/// and ring signs with no larger ones.
const MAX_RSA_BITS: usize = 4096;

/// Which kind of key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Algorithm {
    Rsa,
    Ed25519,
}

/// A loaded signing key.
pub struct Key {
    key: SigningKey,
    /// What the DNS record publishes: the SubjectPublicKeyInfo DER for RSA, the 32-byte public
    /// key for Ed25519.
    public: Vec<u8>,
    pub algorithm: Algorithm,
    /// Key size: the RSA modulus, 256 for Ed25519.
    pub bits: usize,
    pub domain: String,
    pub selector: String,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("algorithm", &self.algorithm)
            .field("domain", &self.domain)
            .field("selector", &self.selector)
            .finish_non_exhaustive()
    }
}

impl Key {
    /// Reads `path`: RSA as PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8, Ed25519 as PKCS#8
    /// (`BEGIN PRIVATE KEY`).
    pub fn load(path: &Path, domain: &str, selector: &str) -> Result<Key> {
        let pem =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the DKIM key {}", path.display()))?;
        let (key, public, algorithm, bits) = if pem.contains("BEGIN RSA PRIVATE KEY") {
            let key = <rsa::RsaPrivateKey as rsa::pkcs1::DecodeRsaPrivateKey>::from_pkcs1_pem(&pem)
                .map_err(|e| anyhow::anyhow!("{}: not a valid RSA key: {e}", path.display()))?;
            rsa_signing_key(&key, path)?
        } else if let Ok(key) = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem) {
            let public = key.verifying_key().to_bytes().to_vec();
            (SigningKey::Ed25519(key), public, Algorithm::Ed25519, 256)
        } else if let Ok(key) = rsa::RsaPrivateKey::from_pkcs8_pem(&pem) {
            rsa_signing_key(&key, path)?
        } else {
            bail!(
                "{}: not a private key bulletin can use: give an RSA key (PKCS#1 or PKCS#8 PEM, 1024 to 4096 bits; 2048 advised) \
                 or an Ed25519 key (PKCS#8 PEM), e.g. from `bulletin dkim keygen`",
                path.display()
            );
        };
        Ok(Key {
            key,
            public,
            algorithm,
            bits,
            domain: domain.to_owned(),
            selector: selector.to_owned(),
        })
    }

    /// A signer covering `headers` (those the messages actually carry).
    pub fn signer(self, headers: &[&str]) -> Signer {
        Signer::new(self.key, &self.domain, &self.selector, headers)
    }

    /// The TXT record value that publishes this key's public half.
    pub fn dns_record(&self) -> String {
        let k = match self.algorithm {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        };
        let p = base64::engine::general_purpose::STANDARD.encode(&self.public);
        format!("v=DKIM1; k={k}; p={p}")
    }
}

/// The RSA key as ring takes it, and its public half as the DNS record publishes it.
fn rsa_signing_key(key: &rsa::RsaPrivateKey, path: &Path) -> Result<(SigningKey, Vec<u8>, Algorithm, usize)> {
    check_rsa_size(key, path)?;
    let spki = key
        .to_public_key()
        .to_public_key_der()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let bits = key.size() * 8;
    if bits < GOOD_RSA_BITS {
        // ring signs with 2048 bits and more only.
        key.validate()
            .map_err(|e| anyhow::anyhow!("{}: not a valid RSA key: {e}", path.display()))?;
        let signing = SigningKey::ShortRsa(Box::new(key.clone()));
        return Ok((signing, spki.as_bytes().to_vec(), Algorithm::Rsa, bits));
    }
    let der = key.to_pkcs1_der().map_err(|e| anyhow::anyhow!("{e}"))?;
    let pair = ring::signature::RsaKeyPair::from_der(der.as_bytes()).map_err(|e| {
        anyhow::anyhow!(
            "{}: cannot sign with this RSA key ({e}): it must have two primes and a public exponent of 65537 or more, \
             as openssl and `bulletin dkim keygen` make them",
            path.display()
        )
    })?;
    let signing = SigningKey::Rsa(pair);
    // ring checks some of the key only when signing: sign once now, so that a bad key is
    // reported here and not in the middle of a send.
    signing
        .sign(b"", &ring::rand::SystemRandom::new())
        .with_context(|| format!("{}: the RSA key does not sign", path.display()))?;
    Ok((signing, spki.as_bytes().to_vec(), Algorithm::Rsa, bits))
}

fn check_rsa_size(key: &rsa::RsaPrivateKey, path: &Path) -> Result<()> {
    let bits = key.size() * 8;
    if bits < MIN_RSA_BITS {
        bail!(
            "{}: the RSA key has {bits} bits; receivers ignore keys under {MIN_RSA_BITS} bits (RFC 8301), \
             and Gmail advises {GOOD_RSA_BITS}",
            path.display()
        );
    }
    if bits > MAX_RSA_BITS {
        bail!(
            "{}: the RSA key has {bits} bits; receivers need only verify keys of up to {MAX_RSA_BITS} bits \
             (RFC 8301), so bulletin signs with no larger ones",
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
            let key = rsa::RsaPrivateKey::new(&mut rng, GOOD_RSA_BITS).context("cannot generate an RSA key")?;
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
    crate::private::private_dir(dir)?;
    crate::private::private_file(&path, pem.as_bytes())?;
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
            assert_eq!(key.dns_record(), g.record_value);
            let mut message = lettre::Message::builder()
                .from("news@example.org".parse().unwrap())
                .to("member@example.net".parse().unwrap())
                .body(String::from("Hello\r\n"))
                .unwrap();
            key.signer(&["From", "To"]).sign(&mut message).unwrap();
            let signature = message.headers().get_raw("DKIM-Signature").unwrap();
            let a = match algorithm {
                Algorithm::Rsa => "a=rsa-sha256;",
                Algorithm::Ed25519 => "a=ed25519-sha256;",
            };
            assert!(signature.contains(a) && signature.contains("h=from:to;"), "{signature}");
        }
        let g = keygen(dir.path(), "s1", "ed25519.example.org", Algorithm::Ed25519);
        assert!(g.is_err(), "never overwrites");
    }

    #[test]
    fn rsa_pkcs8_is_converted_and_unusable_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = rand_core::OsRng;
        let big = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let p8 = rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(&big, rsa::pkcs8::LineEnding::LF).unwrap();
        let path = dir.path().join("k.pem");
        std::fs::write(&path, p8.as_bytes()).unwrap();
        assert_eq!(Key::load(&path, "example.org", "s").unwrap().algorithm, Algorithm::Rsa);
        // 1024 bits: accepted (receivers verify it; check and doctor warn), 1016: refused.
        let short = rsa::RsaPrivateKey::new(&mut rng, 1024).unwrap();
        std::fs::write(
            &path,
            short.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        assert_eq!(Key::load(&path, "example.org", "s").unwrap().bits, 1024);
        let small = rsa::RsaPrivateKey::new(&mut rng, 1016).unwrap();
        std::fs::write(
            &path,
            small.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        let err = Key::load(&path, "example.org", "s").unwrap_err().to_string();
        assert!(err.contains("1016 bits") && err.contains("under 1024"), "{err}");
        // ring signs with neither keys over 4096 bits nor public exponents under 65537.
        let big = rsa::RsaPrivateKey::new(&mut rng, 4104).unwrap();
        std::fs::write(&path, big.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap().as_bytes()).unwrap();
        let err = Key::load(&path, "example.org", "s").unwrap_err().to_string();
        assert!(err.contains("4104 bits") && err.contains("RFC 8301"), "{err}");
        let three = rsa::RsaPrivateKey::new_with_exp(&mut rng, 2048, &rsa::BigUint::from(3u8)).unwrap();
        std::fs::write(
            &path,
            three.to_pkcs1_pem(rsa::pkcs1::LineEnding::LF).unwrap().as_bytes(),
        )
        .unwrap();
        let err = Key::load(&path, "example.org", "s").unwrap_err().to_string();
        assert!(
            err.contains("cannot sign with this RSA key") && err.contains("65537"),
            "{err}"
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

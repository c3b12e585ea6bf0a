//! The mailbox providers whose bulk-sender rules apply — Gmail and Yahoo/AOL since February
//! 2024, Microsoft's Outlook.com since May 2025 — recognised by the address's domain: their
//! consumer domains (`gmail.com`, `yahoo.co.uk`, `hotmail.fr`, …). A custom domain whose mail
//! Google Workspace or Microsoft 365 hosts is not recognised: that would take a DNS (MX)
//! lookup per domain.

/// A provider with bulk-sender rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provider {
    Gmail,
    YahooAol,
    Microsoft,
}

/// Domains of each provider that are not `BRAND.TLD`.
const GMAIL: [&str; 2] = ["gmail.com", "googlemail.com"];
/// Verizon's addresses have been AOL Mail accounts since 2017.
const YAHOO_AOL: [&str; 5] = ["ymail.com", "rocketmail.com", "myyahoo.com", "aim.com", "verizon.net"];
const MICROSOFT: [&str; 3] = ["msn.com", "passport.com", "windowslive.com"];

/// Brands whose consumer domains are the brand under `.com` or a country (`yahoo.fr`,
/// `yahoo.com.mx`, `hotmail.co.uk`, `live.com.ar`, `aol.de`, `outlook.es`).
const BRANDS: [(&str, Provider); 5] = [
    ("yahoo", Provider::YahooAol),
    ("aol", Provider::YahooAol),
    ("outlook", Provider::Microsoft),
    ("hotmail", Provider::Microsoft),
    ("live", Provider::Microsoft),
];

impl Provider {
    /// The provider whose consumer domain `domain` is (any case), if any.
    pub(crate) fn of(domain: &str) -> Option<Provider> {
        let d = domain.trim_end_matches('.');
        let is = |list: &[&str]| list.iter().any(|x| d.eq_ignore_ascii_case(x));
        if is(&GMAIL) {
            return Some(Provider::Gmail);
        }
        if is(&YAHOO_AOL) {
            return Some(Provider::YahooAol);
        }
        if is(&MICROSOFT) {
            return Some(Provider::Microsoft);
        }
        let (brand, rest) = d.split_once('.')?;
        if !com_or_country(rest) {
            return None;
        }
        BRANDS
            .iter()
            .find(|(b, _)| brand.eq_ignore_ascii_case(b))
            .map(|&(_, p)| p)
    }
}

/// `com`, a country (`fr`), or `co.`/`com.` and a country (`co.uk`, `com.mx`).
fn com_or_country(rest: &str) -> bool {
    let country = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_alphabetic());
    rest.eq_ignore_ascii_case("com")
        || country(rest)
        || rest.split_once('.').is_some_and(|(second, cc)| {
            (second.eq_ignore_ascii_case("co") || second.eq_ignore_ascii_case("com")) && country(cc)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_domains_by_provider() {
        use Provider::*;
        let cases = [
            ("gmail.com", Some(Gmail)),
            ("GoogleMail.com", Some(Gmail)),
            ("yahoo.com", Some(YahooAol)),
            ("yahoo.co.uk", Some(YahooAol)),
            ("yahoo.com.mx", Some(YahooAol)),
            ("yahoo.fr", Some(YahooAol)),
            ("ymail.com", Some(YahooAol)),
            ("rocketmail.com", Some(YahooAol)),
            ("aol.com", Some(YahooAol)),
            ("aol.de", Some(YahooAol)),
            ("aim.com", Some(YahooAol)),
            ("outlook.com", Some(Microsoft)),
            ("outlook.es", Some(Microsoft)),
            ("hotmail.com", Some(Microsoft)),
            ("hotmail.co.uk", Some(Microsoft)),
            ("live.com", Some(Microsoft)),
            ("live.com.mx", Some(Microsoft)),
            ("msn.com", Some(Microsoft)),
            ("passport.com", Some(Microsoft)),
            ("example.org", None),
            ("gmail.example.org", None),
            ("live.org", None),
            ("mail.yahoo.com", None),
            ("notyahoo.com", None),
        ];
        for (domain, want) in cases {
            assert_eq!(Provider::of(domain), want, "{domain}");
        }
    }
}

//! The fixed words of the layout (footer, link list) and the date format, per language: a
//! Spanish variant of a newsletter gets a Spanish footer. Unknown languages get English.

/// The words one language uses.
#[derive(Debug)]
pub struct Words {
    pub lang: &'static str,
    pub unsubscribe: &'static str,
    /// Heading of the text part's numbered link list.
    pub links: &'static str,
    months: [&'static str; 12],
    /// `{d}`, `{m}` (month name) and `{y}`.
    date: &'static str,
}

const EN: Words = Words {
    lang: "en",
    unsubscribe: "Unsubscribe",
    links: "Links",
    months: [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    date: "{m} {d}, {y}",
};

const ES: Words = Words {
    lang: "es",
    unsubscribe: "Cancelar la suscripción",
    links: "Enlaces",
    months: [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ],
    date: "{d} de {m} de {y}",
};

/// The words for a BCP 47 tag (`es-MX` → Spanish), English when there is no table for it.
pub fn words(lang: &str) -> &'static Words {
    let primary = lang.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
    match primary.as_str() {
        "es" => &ES,
        _ => &EN,
    }
}

impl Words {
    /// `2024-03-01` (or a timestamp starting with one) as this language writes it; anything
    /// else unchanged.
    pub fn date(&self, value: &str) -> String {
        let v = value.trim();
        let parts: Vec<&str> = v.get(..10).unwrap_or("").split('-').collect();
        let parsed = match parts.as_slice() {
            [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => y
                .parse::<u32>()
                .ok()
                .zip(m.parse::<usize>().ok())
                .zip(d.parse::<u32>().ok()),
            _ => None,
        };
        match parsed {
            Some(((y, m @ 1..=12), d @ 1..=31)) => self
                .date
                .replace("{d}", &d.to_string())
                .replace("{m}", self.months[m - 1])
                .replace("{y}", &y.to_string()),
            _ => value.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_words_and_dates_follow_the_language() {
        assert_eq!(words("es-MX").unsubscribe, "Cancelar la suscripción");
        assert_eq!(words("EN").links, "Links");
        assert_eq!(words("fr").lang, "en");
        assert_eq!(words("es").date("2024-03-01"), "1 de marzo de 2024");
        assert_eq!(words("en").date("2024-03-01 10:00:00"), "March 1, 2024");
        assert_eq!(words("en").date("soon"), "soon");
        assert_eq!(words("en").date("2024-13-01"), "2024-13-01");
    }
}

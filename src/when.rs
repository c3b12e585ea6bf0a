//! Instants as bulletin writes them: RFC 3339 in UTC for files (suppression rows, the archive,
//! the feed), and the local date and time for people (resume hints, `campaigns`).

/// A Unix-ms instant in RFC 3339, UTC, to the second: `2026-12-02T05:00:00Z`.
pub(crate) fn rfc3339(unix_ms: i64) -> String {
    let t =
        time::OffsetDateTime::from_unix_timestamp(unix_ms.div_euclid(1000)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Now, as [`rfc3339`] writes it.
pub(crate) fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc();
    rfc3339(i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
}

/// `YYYY-MM-DD HH:MM` local time (UTC when the offset is unknown) for a Unix-ms instant.
pub(crate) fn local_time(unix_ms: i64) -> String {
    let utc = time::OffsetDateTime::from_unix_timestamp(unix_ms / 1000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let t = time::UtcOffset::current_local_offset()
        .map(|o| utc.to_offset(o))
        .unwrap_or(utc);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_to_the_second() {
        assert_eq!(rfc3339(1_764_651_600_999), "2025-12-02T05:00:00Z");
        assert!(now_rfc3339().ends_with('Z'));
    }
}

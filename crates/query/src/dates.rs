//! Dates as users type them: `2026-03-01` means the end of that day in `--tz` (UTC by default);
//! a full RFC 3339 time means that instant.

use crate::QueryError;
use chrono::{DateTime, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

pub fn parse_tz(name: &str) -> Result<Tz, QueryError> {
    name.parse::<Tz>().map_err(|_| QueryError::BadInput {
        input: format!("--tz {name}"),
        fix: "use an IANA time zone name such as UTC, Asia/Tokyo or Europe/Berlin".into(),
    })
}

/// The instant `input` names: the last microsecond of a date in `tz`, or an RFC 3339 time.
pub fn end_of(input: &str, flag: &str, tz: Tz) -> Result<DateTime<Utc>, QueryError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(input) {
        return Ok(t.with_timezone(&Utc));
    }
    let date = NaiveDate::parse_from_str(input, "%Y-%m-%d").map_err(|_| QueryError::BadInput {
        input: format!("{flag} {input}"),
        fix: "write a date as YYYY-MM-DD (or an RFC 3339 time such as 2026-03-01T09:00:00+09:00)".into(),
    })?;
    let last = NaiveTime::from_hms_micro_opt(23, 59, 59, 999_999).unwrap_or(NaiveTime::MIN);
    tz.from_local_datetime(&date.and_time(last))
        .latest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| QueryError::BadInput { input: format!("{flag} {input}"), fix: "that local time does not exist in --tz".into() })
}

/// The start of a date in `tz` (for `--from` of ranges), or an RFC 3339 instant.
pub fn start_of(input: &str, flag: &str, tz: Tz) -> Result<DateTime<Utc>, QueryError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(input) {
        return Ok(t.with_timezone(&Utc));
    }
    let end = end_of(input, flag, tz)?;
    Ok(end - chrono::Duration::microseconds(86_400_000_000 - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_ends_of_days_in_the_zone() {
        let utc = end_of("2026-03-01", "--as-of", parse_tz("UTC").expect("utc")).expect("date");
        assert_eq!(utc.to_rfc3339(), "2026-03-01T23:59:59.999999+00:00");
        let tokyo = end_of("2026-03-01", "--as-of", parse_tz("Asia/Tokyo").expect("tz")).expect("date");
        assert_eq!(tokyo.to_rfc3339(), "2026-03-01T14:59:59.999999+00:00");
        let start = start_of("2026-03-01", "--from", parse_tz("Asia/Tokyo").expect("tz")).expect("date");
        assert_eq!(start.to_rfc3339(), "2026-02-28T15:00:00+00:00");
        assert!(end_of("01/03/2026", "--as-of", chrono_tz::UTC).is_err());
        assert!(parse_tz("Mars/Olympus").is_err());
        assert_eq!(end_of("2026-03-01T09:00:00+09:00", "--as-of", chrono_tz::UTC).expect("instant").to_rfc3339(), "2026-03-01T00:00:00+00:00");
    }
}

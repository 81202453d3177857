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

/// The first instant of local date `date` in `tz` (§5.1): midnight, or when a zone skips
/// midnight, the first valid minute after it.
fn first_instant(date: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
    (0..=180).find_map(|minutes| {
        let local = date.and_time(NaiveTime::MIN) + chrono::Duration::minutes(minutes);
        tz.from_local_datetime(&local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
    })
}

fn parse_date(input: &str, flag: &str) -> Result<NaiveDate, QueryError> {
    NaiveDate::parse_from_str(input, "%Y-%m-%d").map_err(|_| QueryError::BadInput {
        input: format!("{flag} {input}"),
        fix: "write a date as YYYY-MM-DD (or an RFC 3339 time such as 2026-03-01T09:00:00+09:00)"
            .into(),
    })
}

fn out_of_range(input: &str, flag: &str) -> QueryError {
    QueryError::BadInput {
        input: format!("{flag} {input}"),
        fix: "give a date between 1900 and 9999".into(),
    }
}

/// The instant `input` names (§5.1): the last microsecond of a date in `tz` (the day may have
/// 23 or 25 hours), or an RFC 3339 time.
pub fn end_of(input: &str, flag: &str, tz: Tz) -> Result<DateTime<Utc>, QueryError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(input) {
        return Ok(t.with_timezone(&Utc));
    }
    let next = parse_date(input, flag)?
        .succ_opt()
        .ok_or_else(|| out_of_range(input, flag))?;
    Ok(
        first_instant(next, tz).ok_or_else(|| out_of_range(input, flag))?
            - chrono::Duration::microseconds(1),
    )
}

/// The start of a date in `tz` (for `--from` of ranges, §5.3), or an RFC 3339 instant.
pub fn start_of(input: &str, flag: &str, tz: Tz) -> Result<DateTime<Utc>, QueryError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(input) {
        return Ok(t.with_timezone(&Utc));
    }
    first_instant(parse_date(input, flag)?, tz).ok_or_else(|| out_of_range(input, flag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_ends_of_days_in_the_zone() {
        let utc = end_of("2026-03-01", "--as-of", parse_tz("UTC").expect("utc")).expect("date");
        assert_eq!(utc.to_rfc3339(), "2026-03-01T23:59:59.999999+00:00");
        let tokyo =
            end_of("2026-03-01", "--as-of", parse_tz("Asia/Tokyo").expect("tz")).expect("date");
        assert_eq!(tokyo.to_rfc3339(), "2026-03-01T14:59:59.999999+00:00");
        let start =
            start_of("2026-03-01", "--from", parse_tz("Asia/Tokyo").expect("tz")).expect("date");
        assert_eq!(start.to_rfc3339(), "2026-02-28T15:00:00+00:00");
        assert!(end_of("01/03/2026", "--as-of", chrono_tz::UTC).is_err());
        assert!(parse_tz("Mars/Olympus").is_err());
        assert_eq!(
            end_of("2026-03-01T09:00:00+09:00", "--as-of", chrono_tz::UTC)
                .expect("instant")
                .to_rfc3339(),
            "2026-03-01T00:00:00+00:00"
        );
    }

    /// Regression: `start_of` was `end_of - 24 h`, wrong on the 23- and 25-hour days of DST.
    #[test]
    fn dst_days_have_23_and_25_hours() {
        let ny = parse_tz("America/New_York").expect("tz");
        let length = |d: &str| {
            end_of(d, "--as-of", ny).expect("end") - start_of(d, "--from", ny).expect("start")
        };
        assert_eq!(length("2026-03-08").num_minutes(), 23 * 60 - 1);
        assert_eq!(length("2026-11-01").num_minutes(), 25 * 60 - 1);
        assert_eq!(
            start_of("2026-03-08", "--from", ny)
                .expect("start")
                .to_rfc3339(),
            "2026-03-08T05:00:00+00:00"
        );
        assert_eq!(
            end_of("2026-11-01", "--to", ny).expect("end").to_rfc3339(),
            "2026-11-02T04:59:59.999999+00:00"
        );
    }
}

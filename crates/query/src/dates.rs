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

/// The instant of an as-of (see [`end_of`]), refused when it lies in the future: a date
/// whose day has not begun in `tz` at `now`, or a time after `now`. Findings open at the
/// instant are measured to it (§8.2), so a future one would report days no one has lived.
pub fn as_of_instant(
    input: &str,
    flag: &str,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, QueryError> {
    let instant = end_of(input, flag, tz)?;
    if start_of(input, flag, tz)? > now {
        return Err(QueryError::BadInput {
            input: format!("{flag} {input}"),
            fix: format!(
                "that is in the future (now is {} in {tz}); give a date up to today",
                now.with_timezone(&tz).format("%Y-%m-%d %H:%M")
            ),
        });
    }
    Ok(instant)
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
    fn an_as_of_in_the_future_is_refused_today_is_not() {
        let now = "2026-12-06T13:00:00Z"
            .parse::<DateTime<Utc>>()
            .expect("now");
        let tokyo: Tz = "Asia/Tokyo".parse().expect("tz");
        assert!(as_of_instant("2026-12-06", "--as-of", chrono_tz::UTC, now).is_ok());
        // 22:00 in Tokyo: the 7th has not begun there
        assert!(as_of_instant("2026-12-07", "--as-of", tokyo, now).is_err());
        let e = as_of_instant("2027-12-01", "--as-of", chrono_tz::UTC, now).expect_err("future");
        assert!(e.to_string().contains("--as-of 2027-12-01"), "{e}");
        assert!(as_of_instant("2026-12-06T13:00:01Z", "--as-of", chrono_tz::UTC, now).is_err());
        assert!(as_of_instant("2026-12-06T12:59:59Z", "--as-of", chrono_tz::UTC, now).is_ok());
    }

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

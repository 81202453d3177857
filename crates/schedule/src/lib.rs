//! EventBridge Scheduler expressions — `rate(...)`, `cron(...)`, `at(...)` — and their next run
//! times in a time zone, so that the local scheduler and the CloudFormation schedule accept the
//! same strings and mean the same instants.
//!
//! `cron(minutes hours day-of-month month day-of-week year)` follows EventBridge: day-of-week 1-7
//! is SUN-SAT, exactly one of day-of-month and day-of-week is `?`, `L`, `W` and `#` are allowed
//! where EventBridge allows them. Errors name the field that is wrong.

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use std::collections::BTreeSet;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("schedule expression '{expression}': {reason}")]
pub struct ScheduleError {
    pub expression: String,
    pub reason: String,
}

/// A parsed schedule expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    Rate(Duration),
    Cron(Box<Cron>),
    At(NaiveDateTime),
}

/// Day-of-month specifications.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfMonth {
    Any,
    Days(BTreeSet<u32>),
    Last,
    NearestWeekday(u32),
}

/// Day-of-week specifications (weekday numbers 1 = Sunday … 7 = Saturday).
#[derive(Debug, Clone, PartialEq, Eq)]
enum DayOfWeek {
    Any,
    Days(BTreeSet<u32>),
    /// `6L`: the last such weekday of the month.
    Last(u32),
    /// `6#3`: the third such weekday of the month.
    Nth(u32, u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: BTreeSet<u32>,
    hours: BTreeSet<u32>,
    day_of_month: DayOfMonth,
    months: BTreeSet<u32>,
    day_of_week: DayOfWeek,
    years: BTreeSet<u32>,
}

const FIELD_NAMES: [&str; 6] = [
    "minutes",
    "hours",
    "day-of-month",
    "month",
    "day-of-week",
    "year",
];
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

struct Field<'a> {
    index: usize,
    text: &'a str,
    min: u32,
    max: u32,
    names: &'a [&'a str],
}

impl Field<'_> {
    fn error(&self, why: &str) -> String {
        format!(
            "field {} ({}) '{}' {why}",
            self.index + 1,
            FIELD_NAMES[self.index],
            self.text
        )
    }

    fn value(&self, token: &str) -> Result<u32, String> {
        let upper = token.to_ascii_uppercase();
        if let Some(i) = self.names.iter().position(|n| *n == upper) {
            return Ok(i as u32 + self.min);
        }
        let v: u32 = token
            .parse()
            .map_err(|_| self.error(&format!("has '{token}', which is not a number")))?;
        if v < self.min || v > self.max {
            return Err(self.error(&format!("is out of range {}-{}", self.min, self.max)));
        }
        Ok(v)
    }

    /// `*`, `a`, `a-b`, `a/b`, `*/b`, `a-b/c` and comma lists of them.
    fn set(&self) -> Result<BTreeSet<u32>, String> {
        let mut out = BTreeSet::new();
        for part in self.text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s.parse().map_err(|_| {
                        self.error(&format!("has step '{s}', which is not a number"))
                    })?;
                    if step == 0 {
                        return Err(self.error("has a step of 0"));
                    }
                    (r, step)
                }
                None => (part, 1),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(self.error(&format!("has range {a}-{b}, which runs backwards")));
                }
                (a, b)
            } else {
                let a = self.value(range)?;
                (a, if part.contains('/') { self.max } else { a })
            };
            out.extend((lo..=hi).step_by(step as usize));
        }
        Ok(out)
    }
}

fn parse_cron(body: &str) -> Result<Cron, String> {
    let fields: Vec<&str> = body.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(format!(
            "cron needs 6 fields (minutes hours day-of-month month day-of-week year), got {}",
            fields.len()
        ));
    }
    let field = |index: usize, min: u32, max: u32, names: &'static [&'static str]| Field {
        index,
        text: fields[index],
        min,
        max,
        names,
    };
    let minutes = field(0, 0, 59, &[]).set()?;
    let hours = field(1, 0, 23, &[]).set()?;
    let months = field(3, 1, 12, &MONTHS).set()?;
    let years = field(5, 1970, 2199, &[]).set()?;
    let dom_field = field(2, 1, 31, &[]);
    let day_of_month = match fields[2] {
        "?" => DayOfMonth::Any,
        "L" => DayOfMonth::Last,
        t if t.ends_with('W') => DayOfMonth::NearestWeekday(dom_field.value(&t[..t.len() - 1])?),
        _ => DayOfMonth::Days(dom_field.set()?),
    };
    let dow_field = field(4, 1, 7, &WEEKDAYS);
    let day_of_week = match fields[4] {
        "?" => DayOfWeek::Any,
        t if t.ends_with('L') && t.len() > 1 => {
            DayOfWeek::Last(dow_field.value(&t[..t.len() - 1])?)
        }
        t if t.contains('#') => {
            let (d, n) = t.split_once('#').unwrap_or((t, "1"));
            let n: u32 = n
                .parse()
                .ok()
                .filter(|n| (1..=5).contains(n))
                .ok_or_else(|| dow_field.error("needs #1 to #5 after the weekday"))?;
            DayOfWeek::Nth(dow_field.value(d)?, n)
        }
        _ => DayOfWeek::Days(dow_field.set()?),
    };
    match (&day_of_month, &day_of_week) {
        (DayOfMonth::Any, DayOfWeek::Any) => {
            return Err("day-of-month (field 3) and day-of-week (field 5) cannot both be '?': set one of them".into());
        }
        (DayOfMonth::Any, _) | (_, DayOfWeek::Any) => {}
        _ => {
            return Err("one of day-of-month (field 3) and day-of-week (field 5) must be '?', e.g. cron(0 9 ? * MON *)".into());
        }
    }
    Ok(Cron {
        minutes,
        hours,
        day_of_month,
        months,
        day_of_week,
        years,
    })
}

fn parse_rate(body: &str) -> Result<Duration, String> {
    let parts: Vec<&str> = body.split_whitespace().collect();
    let [value, unit] = parts.as_slice() else {
        return Err("rate needs a value and a unit, e.g. rate(7 days)".into());
    };
    let n: i64 = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
        format!(
            "rate value '{value}' must be a positive whole number of at most {MAX_RATE_DAYS} days"
        )
    })?;
    let (singular, minutes_per) = match *unit {
        "minute" | "minutes" => ("minute", 1_i64),
        "hour" | "hours" => ("hour", 60),
        "day" | "days" => ("day", 1_440),
        other => {
            return Err(format!(
                "rate unit '{other}' must be minute(s), hour(s) or day(s)"
            ));
        }
    };
    if (n == 1) != (*unit == singular) {
        return Err(format!(
            "rate({n} {unit}): use '{singular}' for 1 and '{singular}s' above 1"
        ));
    }
    // Checked: a value that overflows, or an interval beyond the cap, is an error, never a wrap.
    n.checked_mul(minutes_per)
        .filter(|m| *m <= MAX_RATE_DAYS * 1_440)
        .map(Duration::minutes)
        .ok_or_else(|| format!("rate({n} {unit}) is longer than {MAX_RATE_DAYS} days; use a shorter interval or at(...)"))
}

/// The longest interval a rate may have (about ten years): longer ones would never run.
pub const MAX_RATE_DAYS: i64 = 3_660;

impl Schedule {
    pub fn parse(expression: &str) -> Result<Schedule, ScheduleError> {
        let fail = |reason: String| ScheduleError {
            expression: expression.to_string(),
            reason,
        };
        let e = expression.trim();
        let body = |prefix: &str| e.strip_prefix(prefix).and_then(|r| r.strip_suffix(')'));
        if let Some(b) = body("rate(") {
            parse_rate(b).map(Schedule::Rate).map_err(fail)
        } else if let Some(b) = body("cron(") {
            parse_cron(b)
                .map(|c| Schedule::Cron(Box::new(c)))
                .map_err(fail)
        } else if let Some(b) = body("at(") {
            NaiveDateTime::parse_from_str(b, "%Y-%m-%dT%H:%M:%S")
                .map(Schedule::At)
                .map_err(|_| {
                    fail("at() needs yyyy-mm-ddThh:mm:ss, e.g. at(2026-12-01T09:00:00)".into())
                })
        } else {
            Err(fail("use rate(N unit), cron(min hour day-of-month month day-of-week year) or at(yyyy-mm-ddThh:mm:ss)".into()))
        }
    }

    /// The first run strictly after `after`. Rates count from `anchor` (when the schedule
    /// started); cron and at are read in `tz`.
    pub fn next_after(
        &self,
        after: DateTime<Utc>,
        anchor: DateTime<Utc>,
        tz: Tz,
    ) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Rate(every) => {
                if after < anchor {
                    return Some(anchor);
                }
                let elapsed = (after - anchor).num_milliseconds();
                let step = every.num_milliseconds().max(1);
                let offset = (elapsed / step).checked_add(1)?.checked_mul(step)?;
                anchor.checked_add_signed(Duration::try_milliseconds(offset)?)
            }
            Schedule::At(local) => local_to_utc(tz, *local).filter(|t| *t > after),
            Schedule::Cron(cron) => cron.next_after(after, tz),
        }
    }

    /// The next `n` runs after `after`.
    pub fn upcoming(
        &self,
        after: DateTime<Utc>,
        anchor: DateTime<Utc>,
        tz: Tz,
        n: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n);
        let mut t = after;
        while out.len() < n {
            match self.next_after(t, anchor, tz) {
                Some(next) => {
                    out.push(next);
                    t = next;
                }
                None => break,
            }
        }
        out
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Rate(d) => write!(f, "every {} minutes", d.num_minutes()),
            Schedule::Cron(_) => write!(f, "cron"),
            Schedule::At(t) => write!(f, "once at {t}"),
        }
    }
}

/// A local wall-clock time in `tz`; skipped times (DST gaps) have none, repeated ones the first.
fn local_to_utc(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

fn last_day_of_month(year: i32, month: u32) -> u32 {
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    next.and_then(|d| d.pred_opt())
        .map(|d| d.day())
        .unwrap_or(28)
}

/// EventBridge weekday number (1 = Sunday … 7 = Saturday).
fn weekday_number(d: NaiveDate) -> u32 {
    d.weekday().num_days_from_sunday() + 1
}

impl Cron {
    fn day_matches(&self, d: NaiveDate) -> bool {
        if !self.years.contains(&(d.year() as u32)) || !self.months.contains(&d.month()) {
            return false;
        }
        let last = last_day_of_month(d.year(), d.month());
        let dom_ok = match &self.day_of_month {
            DayOfMonth::Any => true,
            DayOfMonth::Days(days) => days.contains(&d.day()),
            DayOfMonth::Last => d.day() == last,
            DayOfMonth::NearestWeekday(target) => {
                let target = (*target).min(last);
                let t = NaiveDate::from_ymd_opt(d.year(), d.month(), target).unwrap_or(d);
                let nearest = match t.weekday() {
                    Weekday::Sat if target == 1 => t + Duration::days(2),
                    Weekday::Sat => t - Duration::days(1),
                    Weekday::Sun if target == last => t - Duration::days(2),
                    Weekday::Sun => t + Duration::days(1),
                    _ => t,
                };
                nearest == d
            }
        };
        let dow_ok = match &self.day_of_week {
            DayOfWeek::Any => true,
            DayOfWeek::Days(days) => days.contains(&weekday_number(d)),
            DayOfWeek::Last(w) => weekday_number(d) == *w && d.day() + 7 > last,
            DayOfWeek::Nth(w, n) => weekday_number(d) == *w && (d.day() - 1) / 7 + 1 == *n,
        };
        dom_ok && dow_ok
    }

    fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let start = after.with_timezone(&tz).date_naive() - Duration::days(1);
        let last_year = *self.years.iter().next_back()? as i32;
        let mut day = start;
        while day.year() <= last_year {
            if self.day_matches(day) {
                for h in &self.hours {
                    for m in &self.minutes {
                        let local = day.and_time(NaiveTime::from_hms_opt(*h, *m, 0)?);
                        if let Some(t) = local_to_utc(tz, local).filter(|t| *t > after) {
                            return Some(t);
                        }
                    }
                }
            }
            day = day.succ_opt()?;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    }

    fn next5(expr: &str, after: &str, tz: &str) -> Vec<String> {
        let s = Schedule::parse(expr).expect("valid");
        let tz: Tz = tz.parse().expect("tz");
        s.upcoming(utc(after), utc(after), tz, 5)
            .iter()
            .map(|t| t.to_rfc3339())
            .collect()
    }

    /// Examples from the EventBridge Scheduler documentation, with next runs worked out by hand.
    #[test]
    fn documented_examples() {
        // 09:00 every Monday in Tokyo = 00:00 UTC Monday.
        assert_eq!(
            next5("cron(0 9 ? * MON *)", "2026-11-28T00:00:00Z", "Asia/Tokyo"),
            [
                "2026-11-30T00:00:00+00:00",
                "2026-12-07T00:00:00+00:00",
                "2026-12-14T00:00:00+00:00",
                "2026-12-21T00:00:00+00:00",
                "2026-12-28T00:00:00+00:00"
            ]
        );
        // 10:15 UTC every day.
        assert_eq!(
            next5("cron(15 10 * * ? *)", "2026-11-28T11:00:00Z", "UTC")[0],
            "2026-11-29T10:15:00+00:00"
        );
        // 18:00 Monday to Friday.
        assert_eq!(
            next5("cron(0 18 ? * MON-FRI *)", "2026-11-27T19:00:00Z", "UTC")[..2],
            ["2026-11-30T18:00:00+00:00", "2026-12-01T18:00:00+00:00"]
        );
        // 08:00 on the first day of every month.
        assert_eq!(
            next5("cron(0 8 1 * ? *)", "2026-11-28T00:00:00Z", "UTC")[0],
            "2026-12-01T08:00:00+00:00"
        );
        // every 10 minutes on weekdays.
        assert_eq!(
            next5("cron(0/10 * ? * MON-FRI *)", "2026-11-27T23:55:00Z", "UTC")[..2],
            ["2026-11-30T00:00:00+00:00", "2026-11-30T00:10:00+00:00"]
        );
        // every 5 minutes between 08:00 and 17:55 on weekdays.
        assert_eq!(
            next5(
                "cron(0/5 8-17 ? * MON-FRI *)",
                "2026-11-30T17:56:00Z",
                "UTC"
            )[0],
            "2026-12-01T08:00:00+00:00"
        );
        // 09:00 on the first Monday of each month.
        assert_eq!(
            next5("cron(0 9 ? * 2#1 *)", "2026-11-28T00:00:00Z", "UTC")[0],
            "2026-12-07T09:00:00+00:00"
        );
        // the last day of the month, and the last Friday.
        assert_eq!(
            next5("cron(0 0 L * ? *)", "2026-02-01T00:00:00Z", "UTC")[0],
            "2026-02-28T00:00:00+00:00"
        );
        assert_eq!(
            next5("cron(0 0 ? * 6L *)", "2026-11-01T00:00:00Z", "UTC")[0],
            "2026-11-27T00:00:00+00:00"
        );
        // the weekday nearest the 15th (2026-11-15 is a Sunday).
        assert_eq!(
            next5("cron(0 0 15W * ? *)", "2026-11-01T00:00:00Z", "UTC")[0],
            "2026-11-16T00:00:00+00:00"
        );
    }

    #[test]
    fn rates_count_from_the_start() {
        let s = Schedule::parse("rate(7 days)").expect("valid");
        let start = utc("2026-11-28T01:00:00Z");
        let runs = s.upcoming(start, start, chrono_tz::UTC, 3);
        assert_eq!(runs[0].to_rfc3339(), "2026-12-05T01:00:00+00:00");
        assert_eq!(runs[2].to_rfc3339(), "2026-12-19T01:00:00+00:00");
        assert_eq!(
            Schedule::parse("rate(1 minute)").expect("valid"),
            Schedule::Rate(Duration::minutes(1))
        );
        assert_eq!(
            Schedule::parse("rate(5 hours)").expect("valid"),
            Schedule::Rate(Duration::hours(5))
        );
    }

    #[test]
    fn daylight_saving_gaps_are_skipped() {
        // 02:30 does not exist in New York on 2026-03-08.
        let runs = next5(
            "cron(30 2 * * ? *)",
            "2026-03-07T12:00:00Z",
            "America/New_York",
        );
        assert_eq!(runs[0], "2026-03-09T06:30:00+00:00");
    }

    #[test]
    fn invalid_expressions_name_the_bad_field() {
        let err = |e: &str| Schedule::parse(e).expect_err(e).to_string();
        assert!(err("cron(0 25 * * ? *)").contains("field 2 (hours) '25' is out of range 0-23"));
        assert!(err("cron(0 9 * * MON *)").contains("must be '?'"));
        assert!(err("cron(0 9 ? * ? *)").contains("cannot both be '?'"));
        assert!(err("cron(0 9 ? * FOO *)").contains("field 5 (day-of-week)"));
        assert!(err("cron(0 9 ? * MON)").contains("6 fields"));
        assert!(err("cron(*/0 9 ? * MON *)").contains("step of 0"));
        assert!(err("rate(1 minutes)").contains("use 'minute' for 1"));
        assert!(err("rate(0 days)").contains("positive"));
        assert!(err("rate(7 weeks)").contains("minute(s), hour(s) or day(s)"));
        assert!(err("every monday").contains("use rate(N unit)"));
        assert!(err("cron(0 9 ? 13 MON *)").contains("field 4 (month)"));
    }

    proptest::proptest! {
        /// No input makes the parser or the next-run arithmetic panic, and every accepted rate
        /// runs strictly later than it is asked, within its interval.
        #[test]
        fn any_expression_is_an_answer_or_an_error(text in "\\PC{0,40}", n in proptest::num::u64::ANY, unit in 0usize..6) {
            let units = ["minute", "minutes", "hours", "days", "day", "weeks"];
            for expression in [text.clone(), format!("rate({n} {})", units[unit]), format!("cron({text})"), format!("at({text})")] {
                if let Ok(schedule) = Schedule::parse(&expression) {
                    let now = Utc.with_ymd_and_hms(2026, 11, 28, 0, 0, 0).single().expect("time");
                    let next = schedule.upcoming(now, now, chrono_tz::UTC, 3);
                    proptest::prop_assert!(next.windows(2).all(|w| w[0] < w[1]));
                    proptest::prop_assert!(next.iter().all(|t| *t > now || (*t == now && matches!(schedule, Schedule::Rate(_)))));
                }
            }
        }
    }

    #[test]
    fn huge_rates_are_errors_not_wraps() {
        for e in [
            "rate(100000000 days)",
            "rate(4294967297 minutes)",
            "rate(9223372036854775807 days)",
        ] {
            let err = Schedule::parse(e).expect_err(e).to_string();
            assert!(
                err.contains("longer than") || err.contains("positive whole number"),
                "{e}: {err}"
            );
        }
        assert!(Schedule::parse("rate(3660 days)").is_ok());
    }
}

//! Writing the status page: every string that comes from configuration, a peer or an error
//! goes through [`Text`], which escapes it for HTML text and attribute values; the page has no
//! script, no external asset and one inline style sheet, which [`HEADERS`] allow and nothing
//! else.

use std::fmt::{self, Write};
use std::time::{Duration, SystemTime};

/// How often the page reloads itself (`<meta http-equiv="refresh">`), in seconds.
pub(crate) const REFRESH_SECONDS: u32 = 5;

/// The response headers of the page: nothing may load or run but the page's own inline style.
pub(crate) const HEADERS: &[(&str, &str)] = &[
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
];

/// The `Content-Type` of the page.
pub(crate) const CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// A string escaped for HTML text and double- or single-quoted attribute values.
pub(crate) struct Text<'a>(pub &'a str);

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            let escaped = match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            };
            f.write_str(escaped)?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

const STYLE: &str =
    "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1b1f24;background:#fff}\
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.6em 0 .4em}\
p.meta{color:#57606a;margin:0 0 1em}\
table{border-collapse:collapse;min-width:40em}\
th,td{border:1px solid #d0d7de;padding:.3em .6em;text-align:right;vertical-align:top}\
td{white-space:nowrap}th{background:#f6f8fa;font-weight:600}\
td.name,th.name,td.text{text-align:left}td.name{font-weight:600}\
td.text{white-space:normal;min-width:14em;max-width:32em;overflow-wrap:anywhere}\
.ok{color:#1a7f37}.bad{color:#cf222e}.warn{color:#9a6700}.muted{color:#57606a}\
ul.plain{list-style:none;margin:0;padding:0}";

/// The whole document around `body` (already escaped HTML).
pub(crate) fn page(title: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 1024);
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
<title>{}</title><style>{STYLE}</style></head><body>\n{body}</body></html>\n",
        Text(title)
    );
    out
}

/// `2026-12-05 01:02:03 UTC` (whole seconds; `—` before the epoch).
pub(crate) fn utc(at: SystemTime) -> String {
    let Ok(since) = at.duration_since(SystemTime::UNIX_EPOCH) else {
        return "—".to_owned();
    };
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX));
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// A latency for humans: `850 µs`, `12.5 ms`, `2.50 s`.
pub(crate) fn latency(d: Duration) -> String {
    let micros = d.as_micros();
    if micros < 1_000 {
        format!("{micros} µs")
    } else if micros < 1_000_000 {
        format!("{:.1} ms", d.as_secs_f64() * 1e3)
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}

/// Seconds since the Unix epoch, as the JSON views carry times (0 before the epoch).
pub(crate) fn unix(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The time `secs` seconds after the Unix epoch.
pub(crate) fn at_unix(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// A latency in seconds for humans, `—` when there is none (no request in the window).
pub(crate) fn optional_latency(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "—".to_owned(), |s| latency(Duration::from_secs_f64(s)))
}

/// A byte count for humans: `512 B`, `1.5 KiB`, `3.2 MiB`, `1.1 GiB`.
pub(crate) fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// How long until `at` from `now`, for humans: `in 59 min`, `expired 3 s ago`.
pub(crate) fn until(at: SystemTime, now: SystemTime) -> String {
    match at.duration_since(now) {
        Ok(left) => format!("in {}", span(left)),
        Err(e) => format!("expired {} ago", span(e.duration())),
    }
}

/// How long ago `at` was, for humans: `4 s ago`.
pub(crate) fn ago(at: SystemTime, now: SystemTime) -> String {
    match now.duration_since(at) {
        Ok(past) => format!("{} ago", span(past)),
        Err(_) => "just now".to_owned(),
    }
}

fn span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min", s / 60),
        7200..=172_799 => format!("{} h", s / 3600),
        _ => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escapes_markup_and_both_quotes() {
        assert_eq!(
            Text("<script>alert('x') & \"y\"</script>").to_string(),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        assert_eq!(Text("plain-name_1.x").to_string(), "plain-name_1.x");
        assert_eq!(Text("é<").to_string(), "é&lt;");
    }

    #[test]
    fn the_page_has_no_script_and_refreshes() {
        let html = page("a <b>", "<p>x</p>");
        assert!(html.contains("<title>a &lt;b&gt;</title>"));
        assert!(html.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        assert!(!html.contains("<script"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }

    #[test]
    fn utc_dates_match_known_days() {
        assert_eq!(utc(SystemTime::UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_210_096);
        assert_eq!(utc(at), "2024-02-29 12:34:56 UTC");
    }

    #[test]
    fn human_units() {
        assert_eq!(latency(Duration::from_micros(850)), "850 µs");
        assert_eq!(latency(Duration::from_micros(12_500)), "12.5 ms");
        assert_eq!(latency(Duration::from_millis(2_500)), "2.50 s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024), "3.0 MiB");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(until(now + Duration::from_secs(3540), now), "in 59 min");
        assert_eq!(until(now - Duration::from_secs(3), now), "expired 3 s ago");
        assert_eq!(ago(now - Duration::from_secs(4), now), "4 s ago");
    }
}

//! Seek validation and the HTTP byte-range rules: what to ask for (`Range`, `If-Range`)
//! and what an answer (`200`, `206`, `416`, `Content-Range`, validators) allows.
//!
//! Everything here is pure: no I/O, so every rule is unit-tested on its own.

use std::io::SeekFrom;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use url::Url;

use crate::FileError;

/// Where a seek lands, following `std::io::Seek`: a result below zero is an
/// `InvalidInput` error, past a known size is [`FileError::InvalidSeekPosition`], and
/// `End` needs a known size ([`FileError::SeekNotSupported`] otherwise).
pub(crate) fn resolve_seek(
    from: SeekFrom,
    position: u64,
    size: Option<u64>,
) -> Result<u64, SeekTargetError> {
    let target: i128 = match from {
        SeekFrom::Start(offset) => i128::from(offset),
        SeekFrom::Current(delta) => i128::from(position) + i128::from(delta),
        SeekFrom::End(delta) => match size {
            Some(size) => i128::from(size) + i128::from(delta),
            None => return Err(SeekTargetError::File(FileError::SeekNotSupported)),
        },
    };
    if target < 0 {
        return Err(SeekTargetError::BeforeStart);
    }
    let target = u64::try_from(target).unwrap_or(u64::MAX);
    check_within(target, size).map_err(SeekTargetError::File)
}

/// Where [`FileSession::seek_bytes`](crate::FileSession::seek_bytes) lands: a negative
/// position clamps to 0; past a known size is [`FileError::InvalidSeekPosition`].
pub(crate) fn resolve_seek_bytes(position: i64, size: Option<u64>) -> Result<u64, FileError> {
    check_within(u64::try_from(position).unwrap_or(0), size)
}

fn check_within(target: u64, size: Option<u64>) -> Result<u64, FileError> {
    match size {
        Some(size) if target > size => Err(FileError::InvalidSeekPosition {
            position: target,
            size,
        }),
        _ => Ok(target),
    }
}

/// Why an `io::Seek` target was refused.
#[derive(Debug)]
pub(crate) enum SeekTargetError {
    /// The target is negative: std's `InvalidInput`, not a `FileError`.
    BeforeStart,
    File(FileError),
}

/// The `Range` header for bytes `start..end` (`end` exclusive; `None` = to the end).
pub(crate) fn range_header(start: u64, end: Option<u64>) -> String {
    match end {
        Some(end) => format!("bytes={start}-{}", end - 1),
        None => format!("bytes={start}-"),
    }
}

/// A parsed `Content-Range` header (RFC 9110 §14.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentRange {
    /// `bytes first-last/total`; `total` is `None` for `*`.
    Bytes {
        first: u64,
        last: u64,
        total: Option<u64>,
    },
    /// `bytes */total`, sent with 416.
    Unsatisfied { total: u64 },
}

/// Parses a `Content-Range` value; `Err` says what is malformed.
pub(crate) fn parse_content_range(value: &str) -> Result<ContentRange, String> {
    let malformed = || format!("malformed Content-Range {value:?}");
    let rest = value.trim().strip_prefix("bytes").ok_or_else(malformed)?;
    if !rest.starts_with([' ', '\t']) {
        return Err(malformed());
    }
    let (range, total) = rest.trim_start().split_once('/').ok_or_else(malformed)?;
    let number = |s: &str| -> Result<u64, String> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed());
        }
        s.parse().map_err(|_| malformed())
    };
    let total = match total {
        "*" => None,
        digits => Some(number(digits)?),
    };
    if range == "*" {
        return total
            .map(|total| ContentRange::Unsatisfied { total })
            .ok_or_else(malformed);
    }
    let (first, last) = range.split_once('-').ok_or_else(malformed)?;
    let (first, last) = (number(first)?, number(last)?);
    if last < first || total.is_some_and(|total| last >= total) {
        return Err(malformed());
    }
    Ok(ContentRange::Bytes { first, last, total })
}

/// The identity of the first version of a resource, pinned when the session opens and
/// checked against every later response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub size: Option<u64>,
}

impl Validators {
    /// The `If-Range` value: the strong ETag, else Last-Modified (RFC 9110 §13.1.5
    /// forbids weak ETags there).
    pub(crate) fn if_range(&self) -> Option<&str> {
        match &self.etag {
            Some(etag) if !etag.starts_with("W/") => Some(etag),
            _ => self.last_modified.as_deref(),
        }
    }

    /// Why `later` is not the same version as `self`, if it is not.
    pub(crate) fn mismatch(&self, later: &Validators) -> Option<String> {
        if self.etag.is_some() && self.etag != later.etag {
            return Some(format!(
                "ETag was {:?}, now {:?}",
                self.etag.as_deref().unwrap_or(""),
                later.etag.as_deref().unwrap_or("")
            ));
        }
        if self.last_modified.is_some()
            && later.last_modified.is_some()
            && self.last_modified != later.last_modified
        {
            return Some(format!(
                "Last-Modified was {:?}, now {:?}",
                self.last_modified.as_deref().unwrap_or(""),
                later.last_modified.as_deref().unwrap_or("")
            ));
        }
        match (self.size, later.size) {
            (Some(was), Some(now)) if was != now => {
                Some(format!("length was {was} bytes, now {now}"))
            }
            _ => None,
        }
    }
}

/// The parts of a response that decide where its bytes go.
#[derive(Debug, Clone, Default)]
pub(crate) struct ResponseHead {
    pub status: u16,
    pub content_range: Option<String>,
    pub content_length: Option<u64>,
    pub content_encoding: Option<String>,
    pub content_type: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub retry_after: Option<String>,
}

/// What the driver asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Requested {
    pub start: u64,
    /// Exclusive end, for a bounded request.
    pub end: Option<u64>,
    /// Whether a `Range` header was sent.
    pub ranged: bool,
}

/// How to use a response's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    /// Body bytes belong at `start..`; the first `skip` bytes are discarded first (a `200`
    /// full body answering a request that starts later). `end` is the offset after the
    /// last byte the body carries, when known.
    Body {
        start: u64,
        skip: u64,
        end: Option<u64>,
        /// The full length of the resource, when this response tells it.
        total: Option<u64>,
        /// Whether the server honoured the Range request.
        ranged: bool,
    },
    /// The requested start is at or past the end (`416` with a matching length).
    EndOfFile { size: u64 },
}

/// What a response that cannot be used means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Retry later (after `Retry-After` when given).
    Transient {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// Never retried.
    Fatal(FileError),
}

/// HTTP statuses worth retrying (RFC 9110 plus the gateway family).
pub(crate) fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Decides how a response to `requested` may be used, checking it against the pinned
/// validators (`None` for the first response of a session).
pub(crate) fn plan_response(
    requested: Requested,
    head: &ResponseHead,
    pinned: Option<&Validators>,
    url: &str,
) -> Result<Plan, Refusal> {
    let fatal = |err| Err(Refusal::Fatal(err));
    if let Some(coding) = &head.content_encoding {
        if !coding.eq_ignore_ascii_case("identity") {
            return fatal(FileError::Protocol(format!(
                "the server applied Content-Encoding {coding:?}; byte offsets would be meaningless"
            )));
        }
    }
    match head.status {
        206 => plan_partial(requested, head, pinned),
        200 => plan_full(requested, head, pinned),
        416 => plan_unsatisfiable(requested, head, pinned),
        status if is_transient_status(status) => Err(Refusal::Transient {
            status,
            retry_after: head.retry_after.as_deref().and_then(parse_retry_after),
        }),
        status if (200..300).contains(&status) => fatal(FileError::Protocol(format!(
            "unexpected success status {status}"
        ))),
        status => fatal(FileError::HttpStatus {
            status,
            url: url.to_string(),
        }),
    }
}

fn plan_partial(
    requested: Requested,
    head: &ResponseHead,
    pinned: Option<&Validators>,
) -> Result<Plan, Refusal> {
    let protocol = |msg: String| Err(Refusal::Fatal(FileError::Protocol(msg)));
    if !requested.ranged {
        return protocol("206 Partial Content without a Range request".into());
    }
    let Some(value) = head.content_range.as_deref() else {
        return protocol("206 Partial Content without Content-Range".into());
    };
    let (first, last, total) = match parse_content_range(value) {
        Ok(ContentRange::Bytes { first, last, total }) => (first, last, total),
        Ok(ContentRange::Unsatisfied { .. }) => {
            return protocol(format!("206 with an unsatisfied Content-Range {value:?}"))
        }
        Err(msg) => return protocol(msg),
    };
    if first != requested.start {
        return protocol(format!(
            "asked for bytes from {}, the server sent from {first}",
            requested.start
        ));
    }
    // A Content-Length that disagrees is not trusted: the body is read up to the
    // Content-Range end, and one that stops short of it is a transient truncation.
    let seen = validators_of(head, total);
    if let Some(reason) = pinned.and_then(|p| p.mismatch(&seen)) {
        return Err(Refusal::Fatal(FileError::ResourceChanged(reason)));
    }
    Ok(Plan::Body {
        start: first,
        skip: 0,
        end: Some(last + 1),
        total,
        ranged: true,
    })
}

fn plan_full(
    requested: Requested,
    head: &ResponseHead,
    pinned: Option<&Validators>,
) -> Result<Plan, Refusal> {
    let seen = validators_of(head, head.content_length);
    if let Some(reason) = pinned.and_then(|p| p.mismatch(&seen)) {
        return Err(Refusal::Fatal(FileError::ResourceChanged(reason)));
    }
    let total = head.content_length;
    if let Some(total) = total {
        if requested.start > total {
            return Err(Refusal::Fatal(FileError::Protocol(format!(
                "asked for bytes from {}, the full body has only {total}",
                requested.start
            ))));
        }
    }
    Ok(Plan::Body {
        start: 0,
        skip: requested.start,
        end: total,
        total,
        ranged: false,
    })
}

fn plan_unsatisfiable(
    requested: Requested,
    head: &ResponseHead,
    pinned: Option<&Validators>,
) -> Result<Plan, Refusal> {
    let known = pinned.and_then(|p| p.size);
    let reported = match head.content_range.as_deref().map(parse_content_range) {
        Some(Ok(ContentRange::Unsatisfied { total })) => Some(total),
        Some(Ok(ContentRange::Bytes { .. })) | Some(Err(_)) => {
            return Err(Refusal::Fatal(FileError::Protocol(format!(
                "416 with a malformed Content-Range {:?}",
                head.content_range.as_deref().unwrap_or("")
            ))))
        }
        None => None,
    };
    match (reported, known) {
        (Some(now), Some(was)) if now != was => Err(Refusal::Fatal(FileError::ResourceChanged(
            format!("length was {was} bytes, now {now}"),
        ))),
        (Some(size), _) | (None, Some(size)) if requested.start >= size => {
            Ok(Plan::EndOfFile { size })
        }
        // Same length, yet a start inside the file refused: treating that as the end
        // would be a false EOF.
        (Some(size), _) | (None, Some(size)) => Err(Refusal::Fatal(FileError::Protocol(format!(
            "the server refused bytes from {} of a {size}-byte file",
            requested.start
        )))),
        (None, None) => Err(Refusal::Fatal(FileError::Protocol(
            "416 without Content-Range for a file of unknown length".into(),
        ))),
    }
}

/// The validators a response carries; `size` is the full length it tells, if any.
pub(crate) fn validators_of(head: &ResponseHead, size: Option<u64>) -> Validators {
    Validators {
        etag: head.etag.clone(),
        last_modified: head.last_modified.clone(),
        size,
    }
}

/// Where a redirect from `from` to `location` leads. Refused: a location that is not a
/// URL, a scheme other than http(s), and any step down from https to http (the request
/// would go out in the clear).
pub(crate) fn follow_redirect(from: &Url, location: &str) -> Result<Url, FileError> {
    let next = from
        .join(location)
        .map_err(|e| FileError::Protocol(format!("redirect to an invalid location: {e}")))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(FileError::Protocol(format!(
            "refused a redirect to the {} scheme",
            next.scheme()
        )));
    }
    if from.scheme() == "https" && next.scheme() != "https" {
        return Err(FileError::Protocol(
            "refused a redirect from https to http".into(),
        ));
    }
    Ok(next)
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(value)?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Parses the IMF-fixdate form, `Sun, 06 Nov 1994 08:49:37 GMT`, the only one senders
/// may generate (RFC 9110 §5.6.7).
pub(crate) fn parse_http_date(value: &str) -> Option<SystemTime> {
    let (_weekday, rest) = value.split_once(", ")?;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: u64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    let [hour, minute, second] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || year < 1970 || *hour > 23 || *minute > 59 || *second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// Days from 1970-01-01 to a Gregorian date (Howard Hinnant's civil-from-days inverse).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16) -> ResponseHead {
        ResponseHead {
            status,
            ..ResponseHead::default()
        }
    }

    const RANGED_FROM_100: Requested = Requested {
        start: 100,
        end: None,
        ranged: true,
    };

    #[test]
    fn range_headers() {
        assert_eq!(range_header(0, None), "bytes=0-");
        assert_eq!(range_header(5, Some(10)), "bytes=5-9");
    }

    #[test]
    fn well_formed_content_ranges() {
        assert_eq!(
            parse_content_range("bytes 0-99/1000"),
            Ok(ContentRange::Bytes {
                first: 0,
                last: 99,
                total: Some(1000)
            })
        );
        assert_eq!(
            parse_content_range("bytes 5-9/*"),
            Ok(ContentRange::Bytes {
                first: 5,
                last: 9,
                total: None
            })
        );
        assert_eq!(
            parse_content_range("bytes */1000"),
            Ok(ContentRange::Unsatisfied { total: 1000 })
        );
    }

    #[test]
    fn malformed_content_ranges() {
        for bad in [
            "",
            "bytes",
            "bytes=0-99/100",
            "items 0-9/10",
            "bytes 9-0/10",
            "bytes 0-10/10",
            "bytes -1-5/10",
            "bytes 0-5",
            "bytes */*",
            "bytes a-b/c",
            "bytes 0-99/1000 extra",
            "bytes +1-5/10",
            "bytes 0-99999999999999999999999/1",
        ] {
            assert!(parse_content_range(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn seeks_follow_std() {
        let size = Some(1000);
        assert_eq!(resolve_seek(SeekFrom::Start(10), 0, size).unwrap(), 10);
        assert_eq!(resolve_seek(SeekFrom::Current(-5), 10, size).unwrap(), 5);
        assert_eq!(resolve_seek(SeekFrom::End(-128), 0, size).unwrap(), 872);
        assert_eq!(resolve_seek(SeekFrom::End(0), 0, size).unwrap(), 1000);
        assert!(matches!(
            resolve_seek(SeekFrom::Current(-11), 10, size),
            Err(SeekTargetError::BeforeStart)
        ));
        assert!(matches!(
            resolve_seek(SeekFrom::Start(1001), 0, size),
            Err(SeekTargetError::File(FileError::InvalidSeekPosition {
                position: 1001,
                size: 1000
            }))
        ));
        assert!(matches!(
            resolve_seek(SeekFrom::End(0), 0, None),
            Err(SeekTargetError::File(FileError::SeekNotSupported))
        ));
        assert_eq!(
            resolve_seek(SeekFrom::Start(u64::MAX), 0, None).unwrap(),
            u64::MAX
        );
    }

    #[test]
    fn seek_bytes_clamps_below_zero_and_refuses_past_the_end() {
        assert_eq!(resolve_seek_bytes(-5, Some(10)).unwrap(), 0);
        assert_eq!(resolve_seek_bytes(10, Some(10)).unwrap(), 10);
        assert_eq!(
            resolve_seek_bytes(11, Some(10)),
            Err(FileError::InvalidSeekPosition {
                position: 11,
                size: 10
            })
        );
        assert_eq!(resolve_seek_bytes(1 << 40, None).unwrap(), 1 << 40);
    }

    #[test]
    fn partial_content_must_start_where_asked() {
        let mut h = head(206);
        h.content_range = Some("bytes 100-999/1000".into());
        assert_eq!(
            plan_response(RANGED_FROM_100, &h, None, "u"),
            Ok(Plan::Body {
                start: 100,
                skip: 0,
                end: Some(1000),
                total: Some(1000),
                ranged: true
            })
        );
        h.content_range = Some("bytes 0-999/1000".into());
        assert!(matches!(
            plan_response(RANGED_FROM_100, &h, None, "u"),
            Err(Refusal::Fatal(FileError::Protocol(_)))
        ));
        h.content_range = None;
        assert!(matches!(
            plan_response(RANGED_FROM_100, &h, None, "u"),
            Err(Refusal::Fatal(FileError::Protocol(_)))
        ));
    }

    #[test]
    fn a_different_total_or_etag_is_a_changed_resource() {
        let pinned = Validators {
            etag: Some("\"a\"".into()),
            last_modified: None,
            size: Some(1000),
        };
        let mut h = head(206);
        h.etag = Some("\"a\"".into());
        h.content_range = Some("bytes 100-1999/2000".into());
        assert!(matches!(
            plan_response(RANGED_FROM_100, &h, Some(&pinned), "u"),
            Err(Refusal::Fatal(FileError::ResourceChanged(_)))
        ));
        h.content_range = Some("bytes 100-999/1000".into());
        h.etag = Some("\"b\"".into());
        assert!(matches!(
            plan_response(RANGED_FROM_100, &h, Some(&pinned), "u"),
            Err(Refusal::Fatal(FileError::ResourceChanged(_)))
        ));
    }

    #[test]
    fn a_full_body_answering_a_range_is_skipped_never_spliced() {
        let pinned = Validators {
            etag: Some("\"a\"".into()),
            last_modified: None,
            size: Some(1000),
        };
        let mut h = head(200);
        h.etag = Some("\"a\"".into());
        h.content_length = Some(1000);
        assert_eq!(
            plan_response(RANGED_FROM_100, &h, Some(&pinned), "u"),
            Ok(Plan::Body {
                start: 0,
                skip: 100,
                end: Some(1000),
                total: Some(1000),
                ranged: false
            })
        );
        h.etag = Some("\"new\"".into());
        assert!(matches!(
            plan_response(RANGED_FROM_100, &h, Some(&pinned), "u"),
            Err(Refusal::Fatal(FileError::ResourceChanged(_)))
        ));
    }

    #[test]
    fn unsatisfiable_at_the_end_is_eof_otherwise_a_change() {
        let pinned = Validators {
            size: Some(1000),
            ..Validators::default()
        };
        let mut h = head(416);
        h.content_range = Some("bytes */1000".into());
        let at_end = Requested {
            start: 1000,
            end: None,
            ranged: true,
        };
        assert_eq!(
            plan_response(at_end, &h, Some(&pinned), "u"),
            Ok(Plan::EndOfFile { size: 1000 })
        );
        h.content_range = Some("bytes */500".into());
        assert!(matches!(
            plan_response(at_end, &h, Some(&pinned), "u"),
            Err(Refusal::Fatal(FileError::ResourceChanged(_)))
        ));
        h.content_range = Some("bytes */1000".into());
        assert!(matches!(
            plan_response(RANGED_FROM_100, &h, Some(&pinned), "u"),
            Err(Refusal::Fatal(FileError::Protocol(_)))
        ));
    }

    #[test]
    fn statuses() {
        let mut h = head(503);
        h.retry_after = Some("2".into());
        assert_eq!(
            plan_response(RANGED_FROM_100, &h, None, "u"),
            Err(Refusal::Transient {
                status: 503,
                retry_after: Some(Duration::from_secs(2))
            })
        );
        assert!(matches!(
            plan_response(RANGED_FROM_100, &head(404), None, "u"),
            Err(Refusal::Fatal(FileError::HttpStatus { status: 404, .. }))
        ));
        let mut gz = head(200);
        gz.content_encoding = Some("gzip".into());
        assert!(matches!(
            plan_response(RANGED_FROM_100, &gz, None, "u"),
            Err(Refusal::Fatal(FileError::Protocol(_)))
        ));
    }

    #[test]
    fn http_dates() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap().as_secs(), 784_111_777);
        assert!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT").is_none());
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("junk"), None);
    }

    #[test]
    fn redirects_resolve_relative_locations_and_never_downgrade() {
        let http: Url = "http://a.example/x/y".parse().unwrap();
        let https: Url = "https://a.example/x/y".parse().unwrap();
        assert_eq!(
            follow_redirect(&http, "/z").unwrap().as_str(),
            "http://a.example/z"
        );
        assert_eq!(
            follow_redirect(&http, "https://b.example/z")
                .unwrap()
                .as_str(),
            "https://b.example/z"
        );
        assert_eq!(
            follow_redirect(&https, "z").unwrap().as_str(),
            "https://a.example/x/z"
        );
        assert!(matches!(
            follow_redirect(&https, "http://a.example/z"),
            Err(FileError::Protocol(_))
        ));
        assert!(matches!(
            follow_redirect(&http, "ftp://a.example/z"),
            Err(FileError::Protocol(_))
        ));
    }

    #[test]
    fn if_range_prefers_a_strong_etag() {
        let mut v = Validators {
            etag: Some("W/\"weak\"".into()),
            last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
            size: None,
        };
        assert_eq!(v.if_range(), Some("Wed, 21 Oct 2015 07:28:00 GMT"));
        v.etag = Some("\"strong\"".into());
        assert_eq!(v.if_range(), Some("\"strong\""));
    }
}

//! Seek validation and the HTTP byte-range rules: what to ask for (`Range`, `If-Range`)
//! and what an answer (`200`, `206`, `416`, `Content-Range`, validators) allows.
//!
//! Everything here is pure: no I/O, so every rule is unit-tested on its own.

use std::io::SeekFrom;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use url::Url;

use crate::redact;
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

/// The largest length or offset a response may state: `i64::MAX`. Anything at or past it
/// cannot be a real file, would overflow offset arithmetic, or would collide with the
/// driver's "length unknown" marker (`u64::MAX`); such a response is a protocol error.
pub(crate) const MAX_LENGTH: u64 = i64::MAX as u64;

/// The `Range` header for bytes `start..end` (`end` exclusive; `None` = to the end). An
/// empty or inverted `end` asks for the single byte at `start` (callers never ask for
/// nothing: a fetch at its end is finished without a request).
pub(crate) fn range_header(start: u64, end: Option<u64>) -> String {
    match end {
        Some(end) => format!("bytes={start}-{}", end.saturating_sub(1).max(start)),
        None => format!("bytes={start}-"),
    }
}

/// A parsed `Content-Range` header (RFC 9110 §14.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentRange {
    /// `bytes first-last/total`; `total` is `None` for `*`. `last < MAX_LENGTH` and
    /// `total <= MAX_LENGTH`, so `last + 1` never overflows.
    Bytes {
        first: u64,
        last: u64,
        total: Option<u64>,
    },
    /// `bytes */total`, sent with 416.
    Unsatisfied { total: u64 },
}

impl ContentRange {
    /// The offset after the last byte of a `Bytes` range.
    pub(crate) fn end(&self) -> Option<u64> {
        match self {
            ContentRange::Bytes { last, .. } => last.checked_add(1),
            ContentRange::Unsatisfied { .. } => None,
        }
    }
}

/// A decimal number of at most `MAX_LENGTH`: digits only (no sign, no spaces).
fn length_number(s: &str) -> Result<u64, NumberError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberError::Malformed);
    }
    match s.parse::<u64>() {
        Ok(n) if n <= MAX_LENGTH => Ok(n),
        _ => Err(NumberError::TooLarge),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NumberError {
    Malformed,
    TooLarge,
}

/// Parses a `Content-Range` value; `Err` says what is malformed (with a short excerpt of
/// the value). Total: any input gives a value or an error.
pub(crate) fn parse_content_range(value: &str) -> Result<ContentRange, String> {
    let shown = redact::excerpt(value);
    let malformed = || format!("malformed Content-Range {shown}");
    let number = |s: &str| {
        length_number(s).map_err(|e| match e {
            NumberError::Malformed => malformed(),
            NumberError::TooLarge => {
                format!("Content-Range {shown} states an offset beyond {MAX_LENGTH}")
            }
        })
    };
    let value = value.trim();
    let unit_len = "bytes".len();
    let (unit, rest) = match (value.get(..unit_len), value.get(unit_len..)) {
        (Some(unit), Some(rest)) => (unit, rest),
        _ => return Err(malformed()),
    };
    if !unit.eq_ignore_ascii_case("bytes") || !rest.starts_with([' ', '\t']) {
        return Err(malformed());
    }
    let (range, total) = rest.trim_start().split_once('/').ok_or_else(malformed)?;
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
    if last >= MAX_LENGTH {
        return Err(format!(
            "Content-Range {shown} states an offset beyond {MAX_LENGTH}"
        ));
    }
    Ok(ContentRange::Bytes { first, last, total })
}

/// What a `Content-Length` header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentLength {
    /// No header.
    Absent,
    /// A length (at most [`MAX_LENGTH`]).
    Length(u64),
    /// Not a number, a negative or fractional one, conflicting values, or a length beyond
    /// [`MAX_LENGTH`]: the body's size cannot be trusted.
    Invalid,
}

/// Parses a `Content-Length` value (duplicate header lines joined with `,`, as HTTP
/// combines them): identical values are one length (RFC 9110 §8.6), anything else is
/// [`ContentLength::Invalid`]. Total.
pub(crate) fn parse_content_length(value: Option<&[u8]>) -> ContentLength {
    let Some(value) = value else {
        return ContentLength::Absent;
    };
    let Ok(text) = std::str::from_utf8(value) else {
        return ContentLength::Invalid;
    };
    let mut length = None;
    for part in text.split(',') {
        match (length_number(part.trim()), length) {
            (Ok(n), None) => length = Some(n),
            (Ok(n), Some(seen)) if n == seen => {}
            _ => return ContentLength::Invalid,
        }
    }
    length.map_or(ContentLength::Invalid, ContentLength::Length)
}

/// An entity tag if `value` is one (`"x"` or `W/"x"`, RFC 9110 §8.8.3), trimmed; anything
/// else (unquoted, two tags, control characters, non-UTF-8) is no usable validator. Total.
pub(crate) fn parse_etag(value: Option<&[u8]>) -> Option<String> {
    let text = std::str::from_utf8(value?).ok()?.trim();
    let opaque = text.strip_prefix("W/").unwrap_or(text);
    let inner = opaque.strip_prefix('"')?.strip_suffix('"')?;
    // etagc: %x21 / %x23-7E / obs-text (UTF-8 here); no quote inside.
    let valid = inner
        .chars()
        .all(|c| c == '\x21' || ('\x23'..='\x7e').contains(&c) || !c.is_ascii());
    (valid && text.len() <= MAX_VALIDATOR_LEN).then(|| text.to_string())
}

/// `Last-Modified` as a validator: the exact text (it goes back verbatim in `If-Range`)
/// when it is printable ASCII of sane length, else none. Total.
pub(crate) fn parse_last_modified(value: Option<&[u8]>) -> Option<String> {
    let text = std::str::from_utf8(value?).ok()?.trim();
    let printable = text.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    (printable && !text.is_empty() && text.len() <= MAX_VALIDATOR_LEN).then(|| text.to_string())
}

/// Validators longer than this are not used (they go back to the server in `If-Range`).
const MAX_VALIDATOR_LEN: usize = 256;

/// The identity of the first version of a resource, pinned when the session opens and
/// checked against every later response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub size: Option<u64>,
}

/// Whether an entity tag is strong (`"x"`, not `W/"x"`).
fn is_strong(etag: &str) -> bool {
    etag.starts_with('"')
}

impl Validators {
    /// The `If-Range` value: the strong ETag, else Last-Modified (RFC 9110 §13.1.5
    /// forbids weak ETags there).
    pub(crate) fn if_range(&self) -> Option<&str> {
        match &self.etag {
            Some(etag) if is_strong(etag) => Some(etag),
            _ => self.last_modified.as_deref(),
        }
    }

    /// Why `later` is not the same version as `self`, if it is not. All or nothing: a
    /// response must carry the validator this version was pinned with (its ETag, else its
    /// Last-Modified) and match it; one that drops it is a different version. A
    /// Last-Modified both sides carry must match too, and so must a length both know.
    pub(crate) fn mismatch(&self, later: &Validators) -> Option<String> {
        let shown = |v: &Option<String>| match v {
            Some(v) => redact::excerpt(v),
            None => "none".to_string(),
        };
        if self.etag.is_some() && self.etag != later.etag {
            return Some(format!(
                "ETag was {}, now {}",
                shown(&self.etag),
                shown(&later.etag)
            ));
        }
        let pinned_by_date = self.etag.is_none() && self.last_modified.is_some();
        let dates_differ = later.last_modified.is_some() || pinned_by_date;
        if self.last_modified.is_some() && dates_differ && self.last_modified != later.last_modified
        {
            return Some(format!(
                "Last-Modified was {}, now {}",
                shown(&self.last_modified),
                shown(&later.last_modified)
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

/// The parts of a response that decide where its bytes go, parsed from its raw headers
/// by [`ResponseHead::parse`].
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
    pub accept_ranges: Option<String>,
    /// Why the head cannot be trusted for placing bytes (an invalid or conflicting
    /// `Content-Length`, a non-text `Content-Range` or `Content-Encoding`).
    pub defect: Option<String>,
}

impl ResponseHead {
    /// Parses a response head from its status and a lookup that gives every value of a
    /// header (lower-case name), in order. Total: any bytes give a head; what cannot be
    /// used is left out or recorded as the `defect`.
    pub(crate) fn parse<'a>(status: u16, values: impl Fn(&str) -> Vec<&'a [u8]>) -> Self {
        let joined = |name: &str| -> Option<Vec<u8>> {
            let all = values(name);
            (!all.is_empty()).then(|| all.join(&b", "[..]))
        };
        let text = |name: &str| -> Result<Option<String>, String> {
            match joined(name) {
                None => Ok(None),
                Some(raw) => match String::from_utf8(raw) {
                    Ok(text) => Ok(Some(text.trim().to_string())),
                    Err(e) => Err(format!(
                        "a {name} header that is not text ({})",
                        redact::excerpt_bytes(e.as_bytes())
                    )),
                },
            }
        };
        let mut defect = None;
        let mut note = |d: String| {
            defect.get_or_insert(d);
        };
        let content_length = match parse_content_length(joined("content-length").as_deref()) {
            ContentLength::Absent => None,
            ContentLength::Length(n) => Some(n),
            ContentLength::Invalid => {
                note(format!(
                    "an invalid Content-Length {}",
                    redact::excerpt_bytes(&joined("content-length").unwrap_or_default())
                ));
                None
            }
        };
        let content_range = text("content-range").unwrap_or_else(|d| {
            note(d);
            None
        });
        let content_encoding = text("content-encoding").unwrap_or_else(|d| {
            note(d);
            None
        });
        let single = |name: &str| {
            let all = values(name);
            match all.as_slice() {
                [one] => Some(*one),
                _ => None,
            }
        };
        ResponseHead {
            status,
            content_range,
            content_length,
            content_encoding,
            content_type: text("content-type").ok().flatten(),
            // Two ETag or Last-Modified lines are no validator at all.
            etag: parse_etag(single("etag")),
            last_modified: parse_last_modified(single("last-modified")),
            retry_after: text("retry-after").ok().flatten(),
            accept_ranges: text("accept-ranges").ok().flatten(),
            defect,
        }
    }

    /// Whether the response says the server takes byte ranges (`Accept-Ranges: bytes`).
    pub(crate) fn advertises_byte_ranges(&self) -> bool {
        self.accept_ranges.as_deref().is_some_and(|value| {
            value
                .split(',')
                .any(|unit| unit.trim().eq_ignore_ascii_case("bytes"))
        })
    }

    fn is_html(&self) -> bool {
        self.content_type.as_deref().is_some_and(|t| {
            let t = t.trim_start().as_bytes();
            t.len() >= 9 && t[..9].eq_ignore_ascii_case(b"text/html")
        })
    }
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
    /// The requested start is at or past the end (`416` with a matching length, or a
    /// `416` to a range from byte 0: the resource is empty).
    EndOfFile { size: u64 },
}

/// What a response that cannot be used means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Retry later (after `Retry-After` when given).
    Transient {
        status: u16,
        retry_after: Option<RetryAfter>,
    },
    /// Never retried.
    Fatal(FileError),
}

/// HTTP statuses worth retrying (RFC 9110 plus the gateway family).
pub(crate) fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// Decides how a response to `requested` may be used, checking it against the pinned
/// validators (`None` for the first response of a session). Total: every head gives a
/// plan or a typed refusal.
pub(crate) fn plan_response(
    requested: Requested,
    head: &ResponseHead,
    pinned: Option<&Validators>,
    url: &str,
) -> Result<Plan, Refusal> {
    plan_response_at(requested, head, pinned, url, SystemTime::now())
}

/// [`plan_response`] with the clock given (a `Retry-After` date is relative to it).
pub(crate) fn plan_response_at(
    requested: Requested,
    head: &ResponseHead,
    pinned: Option<&Validators>,
    url: &str,
    now: SystemTime,
) -> Result<Plan, Refusal> {
    let fatal = |err| Err(Refusal::Fatal(err));
    let placing = matches!(head.status, 200 | 206 | 416);
    if placing {
        if let Some(coding) = &head.content_encoding {
            let applied = coding
                .split(',')
                .map(str::trim)
                .any(|c| !c.is_empty() && !c.eq_ignore_ascii_case("identity"));
            if applied {
                return fatal(FileError::Protocol(format!(
                    "the server applied Content-Encoding {} although only identity was \
                     accepted; byte offsets of a compressed body are meaningless",
                    redact::excerpt(coding)
                )));
            }
        }
        if let Some(defect) = &head.defect {
            return fatal(FileError::Protocol(format!(
                "{} answer with {defect}",
                head.status
            )));
        }
    }
    match head.status {
        206 => plan_partial(requested, head, pinned),
        200 => plan_full(requested, head, pinned),
        416 => plan_unsatisfiable(requested, head, pinned),
        status if is_transient_status(status) => Err(Refusal::Transient {
            status,
            retry_after: head
                .retry_after
                .as_deref()
                .and_then(|value| parse_retry_after(value, now)),
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
    let range = match parse_content_range(value) {
        Ok(range @ ContentRange::Bytes { .. }) => range,
        Ok(ContentRange::Unsatisfied { .. }) => {
            return protocol(format!(
                "206 with an unsatisfied Content-Range {}",
                redact::excerpt(value)
            ))
        }
        Err(msg) => return protocol(msg),
    };
    let ContentRange::Bytes { first, total, .. } = range else {
        return protocol(format!(
            "malformed Content-Range {}",
            redact::excerpt(value)
        ));
    };
    let Some(end) = range.end() else {
        return protocol(format!(
            "Content-Range {} cannot be represented",
            redact::excerpt(value)
        ));
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
        end: Some(end),
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
    let protocol = |msg: String| Err(Refusal::Fatal(FileError::Protocol(msg)));
    if !requested.ranged {
        return protocol("416 to a request without Range".into());
    }
    let known = pinned.and_then(|p| p.size);
    let reported = match head.content_range.as_deref().map(parse_content_range) {
        Some(Ok(ContentRange::Unsatisfied { total })) => Some(total),
        Some(Ok(ContentRange::Bytes { .. })) | Some(Err(_)) => {
            return protocol(format!(
                "416 with a malformed Content-Range {}",
                redact::excerpt(head.content_range.as_deref().unwrap_or(""))
            ))
        }
        None => None,
    };
    if requested.start == 0 {
        // A range from byte 0 is unsatisfiable only for an empty resource: many servers
        // (node http-server, Python RangeHTTPServer, S3 and its clones) answer it without
        // Content-Range, others with `bytes */0`.
        return match (reported, known) {
            (Some(size), _) if size > 0 => protocol(format!(
                "the server refused bytes from 0 of a {size}-byte file"
            )),
            (_, Some(was)) if was > 0 => Err(Refusal::Fatal(FileError::ResourceChanged(format!(
                "length was {was} bytes, now 0"
            )))),
            _ => Ok(Plan::EndOfFile { size: 0 }),
        };
    }
    match (reported, known) {
        (Some(now), Some(was)) if now != was => Err(Refusal::Fatal(FileError::ResourceChanged(
            format!("length was {was} bytes, now {now}"),
        ))),
        (Some(size), _) | (None, Some(size)) if requested.start >= size => {
            Ok(Plan::EndOfFile { size })
        }
        // Same length, yet a start inside the file refused: treating that as the end
        // would be a false EOF.
        (Some(size), _) | (None, Some(size)) => protocol(format!(
            "the server refused bytes from {} of a {size}-byte file",
            requested.start
        )),
        (None, None) => protocol("416 without Content-Range for a file of unknown length".into()),
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

/// Whether an answer to `requested` shows that the server does not do byte ranges, so
/// seeks must read and skip from now on. Only a `200` to a range that starts after byte 0
/// proves it, or a `200` to `bytes=0-` from a server that does not advertise
/// `Accept-Ranges: bytes` (Python's `http.server`). A `200` to `bytes=0-` with
/// `Accept-Ranges: bytes` is a valid whole-file answer (httpbin) and proves nothing.
pub(crate) fn refuses_ranges(requested: Requested, head: &ResponseHead) -> bool {
    // A 200 to a range from byte 0, bounded or not, is a valid whole-file answer and
    // proves nothing when the server advertises byte ranges (httpbin; a CDN on a miss);
    // only a 200 to a range from a later byte does.
    requested.ranged
        && head.status == 200
        && (requested.start > 0 || !head.advertises_byte_ranges())
}

/// Whether a response looks like a captive portal's login page rather than the file: a
/// `200` labelled `text/html`. A `206` whose `Content-Range` matched the bytes asked is
/// the file whatever its label (busybox httpd labels every 206 `text/html`).
pub(crate) fn looks_like_portal(head: &ResponseHead) -> bool {
    head.status == 200 && head.is_html()
}

/// The `Content-Type` a session reports for its first response: the response's own,
/// except that `text/html` on a `206` is not trusted (busybox httpd labels every 206 so;
/// a plain GET of the same file says `audio/mpeg`), and then the type is unknown.
pub(crate) fn trusted_content_type(head: &ResponseHead) -> Option<String> {
    if head.status == 206 && head.is_html() {
        return None;
    }
    head.content_type.clone()
}

/// A `206` body that ended before the end its `Content-Range` promised (the driver's
/// retry loop keeps a run of them; see `short_partials_verdict`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ShortPartial {
    /// Body bytes it delivered.
    pub delivered: u64,
    /// The validators it carried (passed the plan, so they did not contradict the pin).
    pub validators: Validators,
}

/// The verdict on a run of retries that all ended as short `206` bodies (nginx `slice`
/// whose origin changed answers each with 0 bytes): a [`FileError::ResourceChanged`] when
/// every attempt delivered nothing and the validators seen changed, against the pin (any
/// validator both sides carry) or from one attempt to the next. `None`: keep the
/// ordinary verdict (a network failure).
pub(crate) fn short_partials_verdict(
    pinned: Option<&Validators>,
    run: &[ShortPartial],
) -> Option<FileError> {
    if run.is_empty() || run.iter().any(|short| short.delivered > 0) {
        return None;
    }
    let differs = |a: &Validators, b: &Validators| {
        let both = |x: &Option<String>, y: &Option<String>| x.is_some() && y.is_some() && x != y;
        let sizes = matches!((a.size, b.size), (Some(x), Some(y)) if x != y);
        both(&a.etag, &b.etag) || both(&a.last_modified, &b.last_modified) || sizes
    };
    let against_pin = pinned.is_some_and(|p| run.iter().any(|s| differs(p, &s.validators)));
    let between = run
        .windows(2)
        .any(|w| differs(&w[0].validators, &w[1].validators));
    (against_pin || between).then(|| {
        FileError::ResourceChanged(format!(
            "{} ranged answers in a row carried no bytes and their validators changed",
            run.len()
        ))
    })
}

/// Where a redirect from `from` to `location` leads. Refused: a location that is not a
/// URL, a scheme other than http(s), and any step down from https to http (the request
/// would go out in the clear). Messages never quote the location (it may be a signed URL).
pub(crate) fn follow_redirect(from: &Url, location: &str) -> Result<Url, FileError> {
    let next = from
        .join(location.trim())
        .map_err(|e| FileError::Protocol(format!("redirect to an invalid location ({e})")))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(FileError::Protocol(format!(
            "refused a redirect to the {} scheme",
            redact::excerpt(next.scheme())
        )));
    }
    if from.scheme() == "https" && next.scheme() != "https" {
        return Err(FileError::Protocol(
            "refused a redirect from https to http".into(),
        ));
    }
    if next.host_str().is_none_or(str::is_empty) {
        return Err(FileError::Protocol("refused a redirect to no host".into()));
    }
    Ok(next)
}

/// What a `Retry-After` header asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RetryAfter {
    /// Wait this long.
    Delay(Duration),
    /// A delay or date too far ahead to represent: longer than any retry delay.
    TooFar,
}

/// `Retry-After`: delay-seconds or an HTTP date (RFC 9110 §10.2.3), relative to `now`.
/// `None` for anything else. Total: no input overflows or panics; a date beyond what a
/// clock can hold (any year) is [`RetryAfter::TooFar`].
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<RetryAfter> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(match value.parse::<u64>() {
            Ok(seconds) => RetryAfter::Delay(Duration::from_secs(seconds)),
            Err(_) => RetryAfter::TooFar,
        });
    }
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    match parse_http_date(value)? {
        HttpDate::At(at) => Some(RetryAfter::Delay(Duration::from_secs(
            at.saturating_sub(now),
        ))),
        HttpDate::Beyond => Some(RetryAfter::TooFar),
    }
}

/// How long to wait before the next retry, given the server's `Retry-After`, the
/// backoff and the longest delay allowed; `None`: the server asks for longer than the
/// longest delay, so the failure is surfaced now instead.
pub(crate) fn retry_delay(
    retry_after: Option<RetryAfter>,
    backoff: Duration,
    max: Duration,
) -> Option<Duration> {
    match retry_after {
        Some(RetryAfter::TooFar) => None,
        Some(RetryAfter::Delay(wait)) if wait > max => None,
        Some(RetryAfter::Delay(wait)) => Some(wait.max(backoff)),
        None => Some(backoff),
    }
}

/// A parsed HTTP date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HttpDate {
    /// Seconds since the Unix epoch.
    At(u64),
    /// A well-formed date past the year 9999 (no real server sends one): later than any
    /// clock or delay can hold.
    Beyond,
}

/// Parses the IMF-fixdate form, `Sun, 06 Nov 1994 08:49:37 GMT`, the only one senders
/// may generate (RFC 9110 §5.6.7). Total: the arithmetic is checked; years past 9999 are
/// [`HttpDate::Beyond`], years before 1970 are refused.
pub(crate) fn parse_http_date(value: &str) -> Option<HttpDate> {
    let (weekday, rest) = value.split_once(", ")?;
    if weekday.len() != 3 || !weekday.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let digits = |s: &str, len: std::ops::RangeInclusive<usize>| -> Option<u64> {
        (len.contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    let day = digits(day, 1..=2)?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    if year.is_empty() || !year.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hms: Vec<u64> = time
        .split(':')
        .map(|n| digits(n, 2..=2))
        .collect::<Option<_>>()?;
    let [hour, minute, second] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *hour > 23 || *minute > 59 || *second > 60 {
        return None;
    }
    let year = match digits(year, 4..=4) {
        Some(year) => year,
        None if year.trim_start_matches('0').len() > 4 => return Some(HttpDate::Beyond),
        None => digits(year.trim_start_matches('0'), 1..=4)?,
    };
    if year < 1970 {
        return None;
    }
    let days = days_from_civil(year, month, day)?;
    let seconds = days
        .checked_mul(86_400)?
        .checked_add(hour * 3600 + minute * 60 + second)?;
    Some(HttpDate::At(seconds))
}

/// Days from 1970-01-01 to a Gregorian date (Howard Hinnant's civil-from-days inverse),
/// for years from 1970 on; `None` if it does not fit.
fn days_from_civil(year: u64, month: u64, day: u64) -> Option<u64> {
    let year = if month <= 2 {
        year.checked_sub(1)?
    } else {
        year
    };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era.checked_mul(146_097)?
        .checked_add(day_of_era)?
        .checked_sub(719_468)
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
                retry_after: Some(RetryAfter::Delay(Duration::from_secs(2)))
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
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(HttpDate::At(784_111_777))
        );
        assert!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT").is_none());
        let now = SystemTime::now();
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(RetryAfter::Delay(Duration::ZERO))
        );
        assert_eq!(parse_retry_after("junk", now), None);
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

    // ---------------------------------------------------------------- hostile servers

    fn parsed(status: u16, headers: &[(&str, &[u8])]) -> ResponseHead {
        ResponseHead::parse(status, |name| {
            headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
                .collect()
        })
    }

    const FROM_0: Requested = Requested {
        start: 0,
        end: None,
        ranged: true,
    };

    #[test]
    fn content_range_arithmetic_never_overflows() {
        for bad in [
            "bytes 0-18446744073709551615/*",
            "bytes 18446744073709551615-18446744073709551615/*",
            "bytes 0-9223372036854775807/*",
            "bytes 0-1/18446744073709551615",
            "bytes */18446744073709551615",
            "bytes */9223372036854775808",
            "bytes 0-99999999999999999999999/*",
        ] {
            assert!(parse_content_range(bad).is_err(), "{bad:?} was accepted");
        }
        // The largest representable range still has an end.
        let top = parse_content_range("bytes 0-9223372036854775806/9223372036854775807").unwrap();
        assert_eq!(top.end(), Some(MAX_LENGTH));
        let mut h = head(206);
        h.content_range = Some("bytes 0-18446744073709551615/*".into());
        assert!(matches!(
            plan_response(FROM_0, &h, None, "u"),
            Err(Refusal::Fatal(FileError::Protocol(_)))
        ));
    }

    #[test]
    fn content_range_units_and_whitespace() {
        assert!(parse_content_range("  Bytes 0-0/1 ").is_ok());
        assert!(parse_content_range("BYTES\t0-0/1").is_ok());
        for bad in [
            "bytes  0 -0/1",
            "bytes 0-0 /1",
            "bytes 0-0/ 1",
            "bytesX0-0/1",
            "byte",
        ] {
            assert!(parse_content_range(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn content_lengths() {
        for (raw, want) in [
            (None, ContentLength::Absent),
            (Some(&b"0"[..]), ContentLength::Length(0)),
            (Some(b" 1000 "), ContentLength::Length(1000)),
            (Some(b"1000, 1000"), ContentLength::Length(1000)),
            (Some(b"1000, 999"), ContentLength::Invalid),
            (Some(b"-1"), ContentLength::Invalid),
            (Some(b"+1"), ContentLength::Invalid),
            (Some(b"1e3"), ContentLength::Invalid),
            (Some(b"1.0"), ContentLength::Invalid),
            (Some(b""), ContentLength::Invalid),
            (Some(b","), ContentLength::Invalid),
            (Some(b"18446744073709551615"), ContentLength::Invalid),
            (Some(b"9223372036854775808"), ContentLength::Invalid),
            (
                Some(b"9223372036854775807"),
                ContentLength::Length(MAX_LENGTH),
            ),
            (Some(b"99999999999999999999999"), ContentLength::Invalid),
            (Some(b"\xff1"), ContentLength::Invalid),
        ] {
            assert_eq!(parse_content_length(raw), want, "{raw:?}");
        }
        // Duplicate header lines are one list.
        let h = parsed(200, &[("content-length", b"10"), ("content-length", b"11")]);
        assert_eq!(h.content_length, None);
        assert!(matches!(
            plan_response(FROM_0, &h, None, "u"),
            Err(Refusal::Fatal(FileError::Protocol(_)))
        ));
        let h = parsed(200, &[("content-length", b"10"), ("content-length", b"10")]);
        assert_eq!(h.content_length, Some(10));
        assert!(h.defect.is_none());
    }

    #[test]
    fn etags_and_dates_as_validators() {
        for (raw, want) in [
            (&b"\"abc\""[..], Some("\"abc\"")),
            (b" W/\"abc\" ", Some("W/\"abc\"")),
            (b"\"\"", Some("\"\"")),
            (b"abc", None),
            (b"\"a\"b\"", None),
            (b"\"a\", \"b\"", None),
            (b"\"a\x01\"", None),
            (b"\"\xff\"", None),
            (b"W/abc", None),
            (b"\"", None),
        ] {
            assert_eq!(parse_etag(Some(raw)).as_deref(), want, "{raw:?}");
        }
        assert_eq!(parse_etag(None), None);
        assert_eq!(
            parse_etag(Some(format!("\"{}\"", "a".repeat(300)).as_bytes())),
            None
        );
        assert_eq!(
            parse_last_modified(Some(b" Wed, 21 Oct 2015 07:28:00 GMT ")).as_deref(),
            Some("Wed, 21 Oct 2015 07:28:00 GMT")
        );
        for bad in [&b""[..], b"   ", b"Wed\n21", b"\xc3\xa9t\xc3\xa9"] {
            assert_eq!(parse_last_modified(Some(bad)), None, "{bad:?}");
        }
        // Two ETag lines are no validator.
        let h = parsed(200, &[("etag", b"\"a\""), ("etag", b"\"a\"")]);
        assert_eq!(h.etag, None);
        assert!(Validators {
            etag: Some("W/\"w\"".into()),
            ..Validators::default()
        }
        .if_range()
        .is_none());
    }

    #[test]
    fn retry_after_of_any_size_is_a_typed_value() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
        for (value, want) in [
            ("0", Some(RetryAfter::Delay(Duration::ZERO))),
            (" 120 ", Some(RetryAfter::Delay(Duration::from_secs(120)))),
            (
                "18446744073709551615",
                Some(RetryAfter::Delay(Duration::from_secs(u64::MAX))),
            ),
            ("18446744073709551616", Some(RetryAfter::TooFar)),
            ("99999999999999999999999999", Some(RetryAfter::TooFar)),
            ("-1", None),
            ("+1", None),
            ("1.5", None),
            ("", None),
            (
                "Sun, 06 Nov 1994 08:49:37 GMT",
                Some(RetryAfter::Delay(Duration::ZERO)),
            ),
            (
                "Sun, 06 Nov 1994 08:50:37 GMT",
                Some(RetryAfter::Delay(Duration::from_secs(60))),
            ),
            (
                "Sun, 06 Nov 1994 08:48:37 GMT",
                Some(RetryAfter::Delay(Duration::ZERO)),
            ),
            (
                "Sun, 06 Nov 400000000000 08:49:37 GMT",
                Some(RetryAfter::TooFar),
            ),
            (
                "Sun, 06 Nov 99999999999999999999999 08:49:37 GMT",
                Some(RetryAfter::TooFar),
            ),
            // Checked separately below: representable, and far beyond any max delay.
            ("Sun, 06 Nov 09999 08:49:37 GMT", None),
            ("Sun, 06 Nov 1969 08:49:37 GMT", None),
            (
                "Sun, 31 Feb 1994 08:49:37 GMT",
                Some(RetryAfter::Delay(Duration::ZERO)),
            ),
            ("Sun, 06 Nov 1994 24:00:00 GMT", None),
            ("Sun, 06 Nov 1994 8:49:37 GMT", None),
            ("Sun, 06 Nov 1994 08:49:37 UTC", None),
            ("Sun, 06 Nov -1994 08:49:37 GMT", None),
        ] {
            if value.contains("09999") {
                let got = parse_retry_after(value, now);
                assert!(
                    matches!(got, Some(RetryAfter::Delay(d)) if d > Duration::from_secs(1 << 37)),
                    "{value}: {got:?}"
                );
                continue;
            }
            assert_eq!(parse_retry_after(value, now), want, "{value:?}");
        }
        // Today's panic: a far date on a 503 is refused at once, whatever the clock says.
        let mut h = head(503);
        h.retry_after = Some("Sun, 06 Nov 400000000000 08:49:37 GMT".into());
        let refusal = plan_response(RANGED_FROM_100, &h, None, "u").unwrap_err();
        let Refusal::Transient { retry_after, .. } = refusal else {
            panic!("{refusal:?}")
        };
        assert_eq!(
            retry_delay(retry_after, Duration::ZERO, Duration::from_secs(5)),
            None
        );
    }

    #[test]
    fn retry_delays() {
        let (backoff, max) = (Duration::from_millis(100), Duration::from_secs(5));
        for (after, want) in [
            (None, Some(backoff)),
            (Some(RetryAfter::Delay(Duration::ZERO)), Some(backoff)),
            (
                Some(RetryAfter::Delay(Duration::from_secs(2))),
                Some(Duration::from_secs(2)),
            ),
            (Some(RetryAfter::Delay(max)), Some(max)),
            (Some(RetryAfter::Delay(max + Duration::from_nanos(1))), None),
            (Some(RetryAfter::Delay(Duration::MAX)), None),
            (Some(RetryAfter::TooFar), None),
        ] {
            assert_eq!(retry_delay(after, backoff, max), want, "{after:?}");
        }
    }

    #[test]
    fn validators_are_all_or_nothing() {
        let etag = Validators {
            etag: Some("\"a\"".into()),
            last_modified: Some("Wed, 21 Oct 2015 07:28:00 GMT".into()),
            size: Some(1000),
        };
        let date_only = Validators {
            etag: None,
            ..etag.clone()
        };
        let v = |etag: Option<&str>, date: Option<&str>, size: Option<u64>| Validators {
            etag: etag.map(String::from),
            last_modified: date.map(String::from),
            size,
        };
        let date = Some("Wed, 21 Oct 2015 07:28:00 GMT");
        let later = Some("Thu, 22 Oct 2015 07:28:00 GMT");
        for (pinned, seen, same) in [
            (&etag, v(Some("\"a\""), date, Some(1000)), true),
            (&etag, v(Some("\"a\""), None, None), true),
            (&etag, v(None, date, Some(1000)), false),
            (&etag, v(Some("\"b\""), date, Some(1000)), false),
            (&etag, v(Some("W/\"a\""), date, Some(1000)), false),
            (&etag, v(Some("\"a\""), later, Some(1000)), false),
            (&etag, v(Some("\"a\""), date, Some(999)), false),
            (&date_only, v(None, date, Some(1000)), true),
            (&date_only, v(None, date, None), true),
            // Dropping the one validator it was pinned with: never spliced.
            (&date_only, v(None, None, Some(1000)), false),
            (&date_only, v(Some("\"new\""), None, Some(1000)), false),
            (&date_only, v(None, later, Some(1000)), false),
            (&Validators::default(), v(None, None, None), true),
            (
                &Validators::default(),
                v(Some("\"x\""), later, Some(5)),
                true,
            ),
        ] {
            assert_eq!(
                pinned.mismatch(&seen).is_none(),
                same,
                "{pinned:?} vs {seen:?}"
            );
        }
        // Through the plan: a 206 and a 200 that drop Last-Modified are a changed resource.
        for status in [206, 200] {
            let mut h = head(status);
            h.content_range = Some("bytes 100-999/1000".into());
            h.content_length = Some(1000);
            let plan = plan_response(RANGED_FROM_100, &h, Some(&date_only), "u");
            assert!(
                matches!(plan, Err(Refusal::Fatal(FileError::ResourceChanged(_)))),
                "{status}: {plan:?}"
            );
            h.last_modified = date.map(String::from);
            assert!(plan_response(RANGED_FROM_100, &h, Some(&date_only), "u").is_ok());
        }
    }

    #[test]
    fn a_416_to_a_range_from_0_is_an_empty_file() {
        let mut h = head(416);
        for content_range in [None, Some("bytes */0")] {
            h.content_range = content_range.map(String::from);
            assert_eq!(
                plan_response(FROM_0, &h, None, "u"),
                Ok(Plan::EndOfFile { size: 0 }),
                "{content_range:?}"
            );
            let bounded = Requested {
                end: Some(100),
                ..FROM_0
            };
            assert_eq!(
                plan_response(bounded, &h, None, "u"),
                Ok(Plan::EndOfFile { size: 0 })
            );
            let was = Validators {
                size: Some(10),
                ..Validators::default()
            };
            assert!(matches!(
                plan_response(FROM_0, &h, Some(&was), "u"),
                Err(Refusal::Fatal(FileError::ResourceChanged(_)))
            ));
        }
        h.content_range = Some("bytes */10".into());
        assert!(matches!(
            plan_response(FROM_0, &h, None, "u"),
            Err(Refusal::Fatal(FileError::Protocol(_)))
        ));
        // Past byte 0 the old rule holds: no length, no conclusion.
        h.content_range = None;
        assert!(matches!(
            plan_response(RANGED_FROM_100, &h, None, "u"),
            Err(Refusal::Fatal(FileError::Protocol(_)))
        ));
        let unranged = Requested {
            ranged: false,
            ..FROM_0
        };
        assert!(matches!(
            plan_response(unranged, &h, None, "u"),
            Err(Refusal::Fatal(FileError::Protocol(_)))
        ));
    }

    #[test]
    fn only_a_200_past_byte_0_or_without_accept_ranges_turns_ranges_off() {
        let advertised = parsed(200, &[("accept-ranges", b"bytes")]);
        let silent = parsed(200, &[]);
        let refusing = parsed(200, &[("accept-ranges", b"none")]);
        let partial = parsed(206, &[("content-range", b"bytes 100-199/200")]);
        let whole_small = parsed(
            200,
            &[("accept-ranges", b"bytes"), ("content-length", b"40")],
        );
        let whole_small_silent = parsed(200, &[("content-length", b"40")]);
        let whole_larger = parsed(
            200,
            &[("accept-ranges", b"bytes"), ("content-length", b"51")],
        );
        let unranged = Requested {
            ranged: false,
            ..FROM_0
        };
        let bounded = Requested {
            end: Some(50),
            ..FROM_0
        };
        for (requested, head, refused) in [
            (FROM_0, &advertised, false),
            (FROM_0, &silent, true),
            (FROM_0, &refusing, true),
            (RANGED_FROM_100, &advertised, true),
            (RANGED_FROM_100, &silent, true),
            // A bounded first request (a metered link) answered with the whole body.
            (bounded, &advertised, false),
            (bounded, &whole_small, false),
            (bounded, &whole_small_silent, true),
            (bounded, &whole_larger, false),
            (RANGED_FROM_100, &partial, false),
            (unranged, &silent, false),
        ] {
            assert_eq!(
                refuses_ranges(requested, head),
                refused,
                "{requested:?} {:?}",
                head.accept_ranges
            );
        }
        assert!(parsed(200, &[("accept-ranges", b"none, Bytes")]).advertises_byte_ranges());
    }

    #[test]
    fn html_on_a_206_is_the_file_html_on_a_200_a_portal() {
        let busybox = parsed(
            206,
            &[
                ("content-type", b"text/html"),
                ("content-range", b"bytes 0-9/10"),
            ],
        );
        assert!(!looks_like_portal(&busybox));
        assert_eq!(trusted_content_type(&busybox), None);
        assert!(plan_response(FROM_0, &busybox, None, "u").is_ok());
        let portal = parsed(200, &[("content-type", b" TEXT/HTML; charset=utf-8")]);
        assert!(looks_like_portal(&portal));
        assert_eq!(
            trusted_content_type(&portal).as_deref(),
            Some("TEXT/HTML; charset=utf-8")
        );
        let audio = parsed(206, &[("content-type", b"audio/mpeg")]);
        assert!(!looks_like_portal(&audio));
        assert_eq!(trusted_content_type(&audio).as_deref(), Some("audio/mpeg"));
        assert!(!looks_like_portal(&parsed(
            200,
            &[("content-type", b"text/htm")]
        )));
        assert!(!looks_like_portal(&parsed(
            200,
            &[("content-type", b"\xfftext/html")]
        )));
    }

    #[test]
    fn any_content_coding_is_refused_with_a_message_that_says_so() {
        for coding in [&b"gzip"[..], b"GZIP", b"identity, gzip", b"br", b"x-custom"] {
            let h = parsed(200, &[("content-encoding", coding)]);
            let Err(Refusal::Fatal(FileError::Protocol(message))) =
                plan_response(FROM_0, &h, None, "u")
            else {
                panic!("{coding:?} accepted")
            };
            assert!(message.contains("Content-Encoding"), "{message}");
            assert!(message.contains("identity"), "{message}");
            assert!(!message.to_lowercase().contains("protocol"), "{message}");
        }
        let two = parsed(
            200,
            &[
                ("content-encoding", b"identity"),
                ("content-encoding", b"gzip"),
            ],
        );
        assert!(plan_response(FROM_0, &two, None, "u").is_err());
        for fine in [&b"identity"[..], b"Identity", b""] {
            let h = parsed(200, &[("content-encoding", fine)]);
            assert!(plan_response(FROM_0, &h, None, "u").is_ok(), "{fine:?}");
        }
        let binary = parsed(206, &[("content-encoding", b"\xff")]);
        assert!(plan_response(FROM_0, &binary, None, "u").is_err());
    }

    #[test]
    fn short_206_bodies_with_changed_validators_are_a_changed_resource() {
        let pinned = Validators {
            etag: Some("\"a\"".into()),
            last_modified: None,
            size: Some(1000),
        };
        let seen = |etag: &str, date: Option<&str>, delivered| ShortPartial {
            delivered,
            validators: Validators {
                etag: Some(etag.into()),
                last_modified: date.map(String::from),
                size: Some(1000),
            },
        };
        let d1 = Some("Wed, 21 Oct 2015 07:28:00 GMT");
        let d2 = Some("Thu, 22 Oct 2015 07:28:00 GMT");
        for (run, changed) in [
            (vec![], false),
            // Same validators every time: nothing tells a change from a flaky link.
            (vec![seen("\"a\"", None, 0), seen("\"a\"", None, 0)], false),
            (vec![seen("\"a\"", d1, 0), seen("\"a\"", d2, 0)], true),
            (vec![seen("\"b\"", None, 0)], true),
            // Bytes arrived on some attempt: a truncating link, not a changed file.
            (vec![seen("\"a\"", d1, 0), seen("\"a\"", d2, 10)], false),
        ] {
            let verdict = short_partials_verdict(Some(&pinned), &run);
            assert_eq!(
                matches!(verdict, Some(FileError::ResourceChanged(_))),
                changed,
                "{run:?}"
            );
        }
    }

    #[test]
    fn redirect_errors_never_quote_the_location() {
        let from: Url = "https://a.example/x".parse().unwrap();
        for location in [
            "http://a.example/z?sig=SECRET",
            "ftp://u:SECRET@a.example/z",
            "SECRETSCHEME://x",
            "http://[::1/SECRET",
        ] {
            let err = follow_redirect(&from, location).unwrap_err();
            assert!(!err.to_string().contains("SECRET"), "{err}");
        }
        assert!(follow_redirect(&from, "  /z  ").is_ok());
    }

    // ---------------------------------------------------------------- property tests

    mod properties {
        use super::*;
        use proptest::prelude::*;

        const CASES: u32 = 10_000;

        /// Numbers as servers may write them: small, at the edges of u64 and i64, huge,
        /// negative, signed, with spaces or junk.
        fn number() -> impl Strategy<Value = String> {
            prop_oneof![
                (0u64..2000).prop_map(|n| n.to_string()),
                any::<u64>().prop_map(|n| n.to_string()),
                prop::sample::select(vec![
                    u64::MAX,
                    u64::MAX - 1,
                    i64::MAX as u64,
                    i64::MAX as u64 + 1,
                    i64::MAX as u64 - 1,
                    0,
                ])
                .prop_map(|n| n.to_string()),
                any::<i64>().prop_map(|n| n.to_string()),
                "[0-9]{19,40}",
                "[ +-]?[0-9]{0,5}[ .e,]?[0-9]{0,3}",
                Just(String::new()),
                Just("*".to_string()),
            ]
        }

        /// Arbitrary text: printable, whitespace, control characters, any char.
        fn junk() -> impl Strategy<Value = String> {
            prop_oneof![
                "[ -~]{0,40}",
                "[ \t\r\n,;/*=\"-]{0,10}",
                any::<String>(),
                prop::collection::vec(any::<u8>(), 0..40)
                    .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            ]
        }

        fn content_range() -> impl Strategy<Value = String> {
            prop_oneof![
                (
                    number(),
                    number(),
                    number(),
                    "[ \t]{0,2}",
                    "(bytes|BYTES|Bytes|items|)"
                )
                    .prop_map(|(a, b, c, ws, unit)| format!("{ws}{unit} {a}-{b}/{c}{ws}")),
                (number(), "(bytes|)").prop_map(|(c, unit)| format!("{unit} */{c}")),
                (number(), number()).prop_map(|(a, b)| format!("bytes {a}-{b}/*")),
                (number(), number(), number())
                    .prop_map(|(a, b, c)| { format!("bytes {a}-{b}/{c}, bytes {a}-{b}/{c}") }),
                junk(),
            ]
        }

        fn http_date() -> impl Strategy<Value = String> {
            prop_oneof![
                (
                    "(Sun|Mon|Xyz|S|Sunday)",
                    number(),
                    "(Jan|Feb|Nov|Dec|nov|)",
                    number(),
                    number(),
                    number(),
                    number(),
                    "(GMT|UTC| GMT|)"
                )
                    .prop_map(|(w, d, m, y, h, mi, s, z)| format!(
                        "{w}, {d} {m} {y} {h}:{mi}:{s} {z}"
                    )),
                (1970u64..=u64::MAX, 1u64..=31, 0u64..=23)
                    .prop_map(|(y, d, h)| { format!("Sun, {d:02} Nov {y} {h:02}:49:37 GMT") }),
                junk(),
            ]
        }

        /// Header values: text, binary, and near-misses of real values.
        fn header_value() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..48),
                content_range().prop_map(String::into_bytes),
                number().prop_map(String::into_bytes),
                http_date().prop_map(String::into_bytes),
                "(W/)?\"[ -~]{0,12}\"".prop_map(String::into_bytes),
                "(text/html|audio/mpeg|gzip|identity|bytes|none)[ ;,a-z=-]{0,12}"
                    .prop_map(String::into_bytes),
            ]
        }

        const NAMES: &[&str] = &[
            "content-range",
            "content-length",
            "content-encoding",
            "content-type",
            "etag",
            "last-modified",
            "retry-after",
            "accept-ranges",
            "location",
        ];

        /// A response head: a status (often an interesting one) and headers, some of
        /// them duplicated.
        fn response() -> impl Strategy<Value = (u16, Vec<(usize, Vec<u8>)>)> {
            (
                prop_oneof![
                    prop::sample::select(vec![200u16, 206, 416, 503, 429, 500, 404, 204, 304]),
                    any::<u16>(),
                ],
                prop::collection::vec((0..NAMES.len(), header_value()), 0..10),
            )
        }

        fn head_of(status: u16, headers: &[(usize, Vec<u8>)]) -> ResponseHead {
            ResponseHead::parse(status, |name| {
                headers
                    .iter()
                    .filter(|(i, _)| NAMES[*i] == name)
                    .map(|(_, v)| v.as_slice())
                    .collect()
            })
        }

        fn offset() -> impl Strategy<Value = u64> {
            prop_oneof![
                0u64..2000,
                any::<u64>(),
                prop::sample::select(vec![u64::MAX, u64::MAX - 1, MAX_LENGTH, MAX_LENGTH + 1]),
            ]
        }

        fn requested() -> impl Strategy<Value = Requested> {
            (offset(), prop::option::of(offset()), any::<bool>())
                .prop_map(|(start, end, ranged)| Requested { start, end, ranged })
        }

        fn validators() -> impl Strategy<Value = Option<Validators>> {
            prop::option::of(
                (
                    prop::option::of("(W/)?\"[a-c]{0,2}\""),
                    prop::option::of("(Wed|Thu), 2[12] Oct 2015 07:28:00 GMT"),
                    // Pinned lengths passed this module once: never past MAX_LENGTH.
                    prop::option::of(prop_oneof![0u64..2000, 0..=MAX_LENGTH]),
                )
                    .prop_map(|(etag, last_modified, size)| Validators {
                        etag,
                        last_modified,
                        size,
                    }),
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(CASES))]

            #[test]
            fn content_range_is_total(value in content_range()) {
                match parse_content_range(&value) {
                    Ok(ContentRange::Bytes { first, last, total }) => {
                        prop_assert!(first <= last && last < MAX_LENGTH);
                        prop_assert!(total.is_none_or(|t| last < t && t <= MAX_LENGTH));
                        let range = ContentRange::Bytes { first, last, total };
                        prop_assert_eq!(range.end(), Some(last + 1));
                    }
                    Ok(ContentRange::Unsatisfied { total }) => prop_assert!(total <= MAX_LENGTH),
                    Err(message) => prop_assert!(message.len() < 300, "{}", message),
                }
            }

            #[test]
            fn content_length_is_total(value in header_value(), absent in any::<bool>()) {
                let raw = (!absent).then_some(value.as_slice());
                match parse_content_length(raw) {
                    ContentLength::Length(n) => prop_assert!(n <= MAX_LENGTH),
                    ContentLength::Absent => prop_assert!(absent),
                    ContentLength::Invalid => prop_assert!(!absent),
                }
            }

            #[test]
            fn retry_after_is_total(value in prop_oneof![http_date(), number(), junk()], now in any::<u64>()) {
                let now = UNIX_EPOCH.checked_add(Duration::from_secs(now >> 20)).unwrap_or(UNIX_EPOCH);
                let parsed = parse_retry_after(&value, now);
                let delay = retry_delay(parsed, Duration::from_millis(100), Duration::from_secs(5));
                prop_assert!(delay.is_none_or(|d| d <= Duration::from_secs(5)));
                if parsed == Some(RetryAfter::TooFar) {
                    prop_assert_eq!(delay, None);
                }
            }

            #[test]
            fn http_date_is_total(value in http_date()) {
                if let Some(HttpDate::At(seconds)) = parse_http_date(&value) {
                    // Up to the end of year 9999.
                    prop_assert!(seconds < 253_402_300_800 + 86_400);
                }
            }

            #[test]
            fn validators_parse_totally(value in header_value()) {
                if let Some(etag) = parse_etag(Some(&value)) {
                    prop_assert!(etag.ends_with('"') && etag.len() <= MAX_VALIDATOR_LEN);
                }
                if let Some(date) = parse_last_modified(Some(&value)) {
                    prop_assert!(!date.is_empty() && date.is_ascii());
                }
            }

            #[test]
            fn redirects_are_total(location in prop_oneof![junk(), "(https?|ftp|data|javascript)://[ -~]{0,20}", "/[ -~]{0,20}"], https in any::<bool>()) {
                let from: Url = if https { "https://a.example/x/y?sig=1" } else { "http://a.example/x/y" }
                    .parse()
                    .unwrap();
                match follow_redirect(&from, &location) {
                    Ok(next) => {
                        prop_assert!(matches!(next.scheme(), "http" | "https"));
                        prop_assert!(!https || next.scheme() == "https");
                    }
                    Err(e) => prop_assert!(matches!(e, FileError::Protocol(_))),
                }
            }

            #[test]
            fn plans_are_total_and_typed(
                (status, headers) in response(),
                requested in requested(),
                pinned in validators(),
            ) {
                let head = head_of(status, &headers);
                let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
                match plan_response_at(requested, &head, pinned.as_ref(), "u", now) {
                    Ok(Plan::Body { start, skip, end, total, ranged }) => {
                        prop_assert!(matches!(status, 200 | 206));
                        prop_assert!(head.content_encoding.as_deref().is_none_or(|c| c.split(',').all(|c| c.trim().is_empty() || c.trim().eq_ignore_ascii_case("identity"))));
                        prop_assert!(total.is_none_or(|t| t <= MAX_LENGTH));
                        prop_assert!(end.is_none_or(|e| e <= MAX_LENGTH && e > start || (e == 0 && start == 0)));
                        if ranged {
                            prop_assert_eq!(status, 206);
                            prop_assert_eq!(start, requested.start);
                            prop_assert_eq!(skip, 0);
                        } else {
                            prop_assert_eq!(start, 0);
                            prop_assert_eq!(skip, requested.start);
                        }
                        let seen = validators_of(&head, total);
                        prop_assert!(pinned.as_ref().is_none_or(|p| p.mismatch(&seen).is_none()));
                    }
                    Ok(Plan::EndOfFile { size }) => {
                        prop_assert_eq!(status, 416);
                        prop_assert!(requested.start >= size && size <= MAX_LENGTH);
                    }
                    Err(Refusal::Transient { status: s, retry_after }) => {
                        prop_assert!(is_transient_status(s) && s == status);
                        let _ = retry_delay(retry_after, Duration::ZERO, Duration::from_secs(5));
                    }
                    Err(Refusal::Fatal(error)) => prop_assert!(
                        matches!(
                            error,
                            FileError::Protocol(_) | FileError::ResourceChanged(_) | FileError::HttpStatus { .. }
                        ),
                        "{:?}",
                        error
                    ),
                }
                let _ = refuses_ranges(requested, &head);
                let _ = looks_like_portal(&head);
                let _ = trusted_content_type(&head);
            }

            #[test]
            fn range_headers_and_seeks_are_total(start in offset(), end in prop::option::of(offset()), delta in any::<i64>(), size in prop::option::of(offset())) {
                let header = range_header(start, end);
                prop_assert!(header.starts_with("bytes="));
                for from in [SeekFrom::Start(start), SeekFrom::Current(delta), SeekFrom::End(delta)] {
                    match resolve_seek(from, start, size) {
                        Ok(target) => prop_assert!(size.is_none_or(|s| target <= s)),
                        Err(SeekTargetError::BeforeStart) => {}
                        Err(SeekTargetError::File(e)) => prop_assert!(
                            matches!(e, FileError::InvalidSeekPosition { .. } | FileError::SeekNotSupported),
                            "{:?}",
                            e
                        ),
                    }
                }
                let _ = resolve_seek_bytes(delta, size);
            }
        }
    }
}

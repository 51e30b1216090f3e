//! One HTTP request: the headers we send, redirects followed by hand (the final URL is
//! reused, https→http refused, credentials kept with their origin), and the answer's
//! head, checked by `range_policy` against the validators pinned on the first response.

use std::time::Instant;

use ureq::http::Response;
use ureq::{Agent, Body};
use url::Url;

use super::retry::{classify, open_timed_out, Failure, Transient};
use super::status::Status;
use crate::agent::build_agent;
use crate::range_policy::{
    follow_redirect, plan_response, range_header, validators_of, Plan, Refusal, Requested,
    ResponseHead, Validators,
};
use crate::redact::redact;
use crate::{FileError, FileSourceOptions};

/// The request side of a session: agent, where requests go, and the resource's identity.
pub(crate) struct Http {
    agent: Agent,
    options: FileSourceOptions,
    /// Where requests go: the URL the last redirect led to.
    url: Url,
    /// Credentials go only to the origin they were given for, whatever redirects did.
    origin: url::Origin,
    /// A body abandoned for a new fetch: closed after the new request went out, so the
    /// close (with megabytes unread) is off the seek's critical path.
    retired: Option<ureq::BodyReader<'static>>,
    /// The validators of the version this session serves.
    pub pinned: Option<Validators>,
    /// The pinned validators came from a partial cache file and await the server's word.
    pub pinned_from_cache: bool,
    /// The URL of the last request refused with a status, for `with_url_refresh`.
    refused: Option<Url>,
    /// A refreshed URL is in use and has not been answered yet: refused again, it fails.
    refreshing: bool,
    /// Validators to send as `If-None-Match` / `If-Modified-Since` (revalidation only).
    conditional: Option<Validators>,
}

/// What a revalidation found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// `304`, or the same validators: the cached body is the server's version.
    Current,
    /// Another version (or none any more): fetch it.
    Changed,
    /// No usable answer (offline, a server error): the cache is all there is.
    Unknown,
}

/// A response whose head has been checked.
pub(crate) struct Answer {
    pub head: ResponseHead,
    pub plan: Plan,
    pub body: ureq::BodyReader<'static>,
    /// The body's length as ureq frames it: `None` when chunked (which overrides a
    /// Content-Length sent beside it) or close-delimited.
    pub framed_length: Option<u64>,
}

impl Http {
    pub(crate) fn new(url: Url, options: FileSourceOptions, pinned: Option<Validators>) -> Self {
        Http {
            agent: build_agent(&options, &url),
            origin: url.origin(),
            retired: None,
            pinned_from_cache: pinned.is_some(),
            pinned,
            refused: None,
            refreshing: false,
            conditional: None,
            url,
            options,
        }
    }

    pub(crate) fn read_timeout(&self) -> std::time::Duration {
        self.options.read_timeout
    }

    pub(crate) fn agent(&self) -> &Agent {
        &self.agent
    }

    /// After a cancel (`Agent::shutdown`) the agent refuses requests: a fresh one.
    pub(crate) fn rebuild_agent(&mut self) {
        self.agent = build_agent(&self.options, &self.url);
    }

    /// The URL requests go to, redacted.
    pub(crate) fn shown_url(&self) -> String {
        redact(&self.url)
    }

    /// Asks the user's `with_url_refresh` callback for a fresh URL after `status` (an
    /// expired signed URL); `true` when requests now go there. A refreshed URL that is
    /// refused again gets no second refresh.
    pub(crate) fn refresh(&mut self, status: u16) -> bool {
        if self.refreshing || !matches!(status, 401 | 403 | 410) {
            return false;
        }
        let (Some(refresh), Some(refused)) = (&self.options.url_refresh, &self.refused) else {
            return false;
        };
        let Some(fresh) = refresh.refresh(refused, status) else {
            return false;
        };
        log::debug!(
            "kithara-file: HTTP {status} from {}: refreshed to {}",
            redact(refused),
            redact(&fresh)
        );
        // Redirect targets of the expired URL are not kept: the fresh one starts over.
        self.url = fresh;
        self.refreshing = true;
        true
    }

    /// Asks whether the version `known` is still the server's: one conditional request
    /// for the first byte, redirects followed, no retries.
    pub(crate) fn is_current(
        &mut self,
        known: &Validators,
        deadline: Instant,
        status: &Status,
    ) -> Freshness {
        self.conditional = Some(known.clone());
        let first_byte = Requested {
            start: 0,
            end: Some(1),
            ranged: true,
        };
        let Ok((_, response)) = self.follow(first_byte, Some(deadline), status) else {
            return Freshness::Unknown;
        };
        let head = response_head(&response);
        match head.status {
            304 => Freshness::Current,
            200 | 206 if known.mismatch(&validators_of(&head, known.size)).is_none() => {
                Freshness::Current
            }
            200 | 206 | 404 | 410 => Freshness::Changed,
            _ => Freshness::Unknown,
        }
    }

    /// Keeps an abandoned body to close after the next request went out.
    pub(crate) fn retire(&mut self, body: ureq::BodyReader<'static>) {
        self.retired = Some(body);
    }

    /// Closes an abandoned body now (the driver is idle).
    pub(crate) fn close_retired(&mut self) {
        self.retired = None;
    }

    /// Sends the request (following redirects) and checks its answer. `deadline` bounds
    /// every wait of the attempt (while opening).
    pub(crate) fn request(
        &mut self,
        requested: Requested,
        deadline: Option<Instant>,
        status: &Status,
    ) -> Result<Answer, Failure> {
        let (url, response) = self.follow(requested, deadline, status)?;
        let head = response_head(&response);
        let plan = match self.plan(requested, &head, &url) {
            Err(Failure::Fatal(error @ FileError::HttpStatus { .. })) => {
                self.refused = Some(url);
                return Err(Failure::Fatal(error));
            }
            other => other?,
        };
        self.refreshing = false;
        // Later requests go straight to where the redirects led.
        self.url = url;
        let framed_length = response.body().content_length();
        Ok(Answer {
            head,
            plan,
            body: response.into_body().into_reader(),
            framed_length,
        })
    }

    fn follow(
        &mut self,
        requested: Requested,
        deadline: Option<Instant>,
        status: &Status,
    ) -> Result<(Url, Response<Body>), Failure> {
        let mut url = self.url.clone();
        let mut hops = 0;
        loop {
            let response = self.call(&url, requested, deadline, status);
            // The new request is out: now the abandoned body may be closed.
            self.retired = None;
            let response = response?;
            let location = header(&response, "location");
            match (response.status().as_u16(), location) {
                (301 | 302 | 303 | 307 | 308, Some(location)) => {
                    hops += 1;
                    if hops > self.options.max_redirects {
                        return Err(Failure::Fatal(FileError::Protocol(format!(
                            "more than {} redirects",
                            self.options.max_redirects
                        ))));
                    }
                    url = follow_redirect(&url, &location).map_err(Failure::Fatal)?;
                }
                _ => return Ok((url, response)),
            }
        }
    }

    fn plan(
        &mut self,
        requested: Requested,
        head: &ResponseHead,
        url: &Url,
    ) -> Result<Plan, Failure> {
        match plan_response(requested, head, self.pinned.as_ref(), &redact(url)) {
            Ok(plan) => Ok(plan),
            Err(Refusal::Transient {
                status,
                retry_after,
            }) => Err(Failure::Transient(Transient {
                status: Some(status),
                retry_after,
                ..Transient::new(format!("HTTP {status} from {}", redact(url)))
            })),
            Err(Refusal::Fatal(FileError::ResourceChanged(_))) if self.pinned_from_cache => {
                // Nothing has been handed out yet: drop the stale bytes and start afresh.
                self.pinned = None;
                self.pinned_from_cache = false;
                Err(Failure::Restart)
            }
            Err(Refusal::Fatal(error)) => Err(Failure::Fatal(error)),
        }
    }

    fn call(
        &self,
        url: &Url,
        requested: Requested,
        deadline: Option<Instant>,
        status: &Status,
    ) -> Result<Response<Body>, Failure> {
        status.count_request();
        let range = requested
            .ranged
            .then(|| range_header(requested.start, requested.end));
        log::debug!(
            "kithara-file: GET {} ({})",
            redact(url),
            range.as_deref().unwrap_or("whole body")
        );
        let mut request = self
            .agent
            .get(url.as_str())
            .header("Accept-Encoding", "identity");
        if let Some(range) = range {
            request = request.header("Range", range);
            if requested.start > 0 || requested.end.is_some() {
                if let Some(validator) = self.pinned.as_ref().and_then(Validators::if_range) {
                    request = request.header("If-Range", validator);
                }
            }
        }
        if let Some(known) = &self.conditional {
            if let Some(etag) = &known.etag {
                request = request.header("If-None-Match", etag.as_str());
            } else if let Some(modified) = &known.last_modified {
                request = request.header("If-Modified-Since", modified.as_str());
            }
        }
        // Credentials stay with the origin they were given for.
        let same_origin = url.origin() == self.origin;
        for (name, value) in self.options.request_headers(same_origin) {
            request = request.header(name, value);
        }
        let Some(deadline) = deadline else {
            return request.call().map_err(classify);
        };
        // Opening: no wait of this attempt may outlast the open timeout. The body's reads
        // keep the agent's read timeout: the per-read setting would last the body's life.
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure::Fatal(open_timed_out(
                "before the request was sent",
            )));
        }
        let mut config = request
            .config()
            .timeout_connect(Some(self.options.connect_timeout.min(left)))
            .timeout_recv_response(Some(self.options.read_timeout.min(left)));
        // A resolve timeout makes ureq resolve on a thread of its own (~50 µs measured even
        // for an IP literal): only names need it.
        if matches!(url.host(), Some(url::Host::Domain(_))) {
            config = config.timeout_resolve(Some(left));
        }
        config.build().call().map_err(classify)
    }
}

fn header(response: &Response<Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(|value| value.trim().to_string())
}

fn response_head(response: &Response<Body>) -> ResponseHead {
    let headers = response.headers();
    ResponseHead::parse(response.status().as_u16(), |name| {
        headers
            .get_all(name)
            .iter()
            .map(ureq::http::HeaderValue::as_bytes)
            .collect()
    })
}

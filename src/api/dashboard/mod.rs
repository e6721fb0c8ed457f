//! The web dashboard: `GET /` serves one self-contained page (no external assets) that shows
//! what `supctl top` shows, kept live by `GET /events` and `GET /status`, with the selected
//! program's output from `GET /logtail/NAME`.
//!
//! Served read-only on the HTTP listener. On the `rpc` listener with credentials the page also
//! shows start, stop and restart buttons, which call XML-RPC's `startProcess` and `stopProcess`
//! at `/RPC2` with the credentials the browser already sent for the page.

use std::time::Instant;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;

use super::protocol::{ProgramStatus, SupdFigures};
use crate::gpu::SharedGpuView;
use crate::metrics::sample::Sampler;
use crate::supervisor::Snapshot;

/// The page: HTML, CSS and script in one file, about 12 KB.
const PAGE: &str = include_str!("page.html");

/// `GET /status`: what the page shows.
#[derive(Debug, Serialize)]
struct Overview {
    /// Every program, in start order, with its CPU % and memory.
    programs: Vec<ProgramStatus>,
    /// supd's own figures and the container's memory.
    supd: Option<SupdFigures>,
    /// The GPU indices each program holds, by full name.
    gpus: std::collections::BTreeMap<String, Vec<u32>>,
    /// Whether this listener takes start, stop and restart (the page shows buttons).
    controls: bool,
    /// Whether this listener serves programs' output (`/logtail/NAME`).
    tails: bool,
}

/// What a listener lets the page do.
#[derive(Debug, Clone, Copy)]
pub struct Allowed {
    /// Start, stop and restart, through `/RPC2`.
    pub controls: bool,
    /// Programs' output, through `/logtail/NAME`.
    pub tails: bool,
}

/// `GET /`: the page.
pub fn page() -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    // Its script is inline and talks only to this origin; nothing else may load or frame it.
    headers.insert(
        hyper::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; frame-ancestors 'none'",
        ),
    );
    headers.insert(hyper::header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

/// `GET /status`: every program with its figures, supd's, the GPUs held, and what this
/// listener allows, as JSON. Figures come from the shared sample cache (at most 1 s old).
pub async fn status(
    snapshot: &Snapshot,
    sampler: &Sampler,
    gpu: &SharedGpuView,
    allowed: Allowed,
) -> Response<Full<Bytes>> {
    let now = Instant::now();
    let mut programs: Vec<ProgramStatus> = snapshot.programs.iter().map(|p| super::status::status(p, now)).collect();
    let supd = super::status::add_resources(&mut programs, sampler).await;
    let mut gpus = std::collections::BTreeMap::<String, Vec<u32>>::new();
    if let Ok(view) = gpu.lock() {
        for d in &view.devices {
            for name in &d.programs {
                gpus.entry(name.clone()).or_default().push(d.device.index);
            }
        }
    }
    let overview = Overview { programs, supd, gpus, controls: allowed.controls, tails: allowed.tails };
    let mut resp = Response::new(Full::new(Bytes::from(serde_json::to_vec(&overview).unwrap_or_default())));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The answer to `/logtail/NAME` on a listener that does not serve output.
pub fn tails_off() -> Response<Full<Bytes>> {
    let text = "programs' output is not served on this listener: set [supervisor] http_tails = true, \
                or use the rpc listener\n";
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = StatusCode::FORBIDDEN;
    resp
}

/// Whether a request that changes something comes from a page of another site: browsers send
/// `Origin` with every cross-site POST, and supervisorctl and XML-RPC libraries send none. A
/// page elsewhere could otherwise post a form to `/RPC2` with the credentials the browser
/// keeps for this listener.
pub fn cross_site<B>(req: &hyper::Request<B>) -> bool {
    let Some(origin) = req.headers().get(hyper::header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = req.headers().get(hyper::header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    host.is_none() || origin_host != host
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(origin: Option<&str>, host: &str) -> hyper::Request<()> {
        let mut b = hyper::Request::post("/RPC2").header("host", host);
        if let Some(o) = origin {
            b = b.header("origin", o);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn only_another_sites_page_is_cross_site() {
        assert!(!cross_site(&post(None, "127.0.0.1:9002")), "supervisorctl sends no Origin");
        assert!(!cross_site(&post(Some("http://127.0.0.1:9002"), "127.0.0.1:9002")), "the dashboard itself");
        assert!(cross_site(&post(Some("https://evil.example"), "127.0.0.1:9002")));
        assert!(cross_site(&post(Some("null"), "127.0.0.1:9002")), "a sandboxed frame");
    }

    #[test]
    fn the_page_is_small_and_self_contained() {
        assert!(PAGE.len() < 100 * 1024, "{} bytes", PAGE.len());
        for external in ["http://", "https://", "//cdn", "<link", "src=\""] {
            assert!(!PAGE.contains(external), "the page loads nothing from elsewhere: found {external}");
        }
    }
}

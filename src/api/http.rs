//! The read-only HTTP listener: `GET /health` for Docker's HEALTHCHECK, compose's
//! `condition: service_healthy` and Kubernetes probes, `GET /metrics` for Prometheus,
//! `GET /events`, supd's live feed as Server-Sent Events, and the dashboard (`GET /`,
//! `GET /status`, and with `http_tails` `GET /logtail/NAME`). Nothing here changes anything.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Either;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::REQUEST_TIMEOUT;
use super::admission::{Admission, MAX_CONNECTIONS, Ticket};
use super::dashboard;
use super::readiness;
use super::streamed::Streamed;
use crate::events::live::Feed;
use crate::metrics::Metrics;
use crate::supervisor::Snapshot;

/// The largest request head read, bytes (hyper's minimum is 8 KiB).
const MAX_HEAD: usize = 16 * 1024;
/// How long a rendered `/health` body is served again while the snapshot stays the same. Every
/// state change makes a new snapshot and so a new body at once; only the fields computed from
/// the clock (uptimes, backoff countdowns) can be this much behind.
const RENDER_TTL: Duration = Duration::from_millis(250);

/// The last `/health` answer, for the snapshot it was made from.
#[derive(Default)]
struct Rendered {
    snapshot: Option<Arc<Snapshot>>,
    at: Option<Instant>,
    ready: bool,
    body: Bytes,
}

impl Rendered {
    /// The `/health` answer for `snapshot`: the cached one while fresh, else a new one.
    fn get(&mut self, snapshot: &Arc<Snapshot>, gpu: &crate::gpu::SharedGpuView, now: Instant) -> (bool, Bytes) {
        let same = self.snapshot.as_ref().is_some_and(|s| Arc::ptr_eq(s, snapshot));
        let fresh = self.at.is_some_and(|at| now.saturating_duration_since(at) < RENDER_TTL);
        if !(same && fresh) {
            let report = readiness::report(snapshot, gpu, now);
            let mut body = serde_json::to_vec(&report).unwrap_or_default();
            body.push(b'\n');
            *self = Rendered {
                snapshot: Some(Arc::clone(snapshot)),
                at: Some(now),
                ready: report.healthy(),
                body: body.into(),
            };
        }
        (self.ready, self.body.clone())
    }
}

/// What every connection reads.
struct Listener {
    snapshot: watch::Receiver<Arc<Snapshot>>,
    feed: Feed,
    gpu: crate::gpu::SharedGpuView,
    metrics: Arc<Metrics>,
    /// Whether programs' output is served (`http_tails`).
    tails: bool,
    /// The lock is never held across an await.
    rendered: std::sync::Mutex<Rendered>,
}

/// The kernel's queue of connections not yet accepted, per TCP listener. tokio's default is
/// 1,024; a flood of reconnects can fill that between two turns of the accept loop, and the
/// kernel then drops a health probe's SYN, which it sends again only a second later. Linux
/// caps it at `net.core.somaxconn` (4,096 by default).
const BACKLOG: u32 = 4096;

/// A TCP listener on `addr` for `/health` or XML-RPC, with a [`BACKLOG`] of 4,096. Errors: the
/// address cannot be bound.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// What the HTTP listener serves from.
pub struct Sources {
    /// The programs' state.
    pub snapshot: watch::Receiver<Arc<Snapshot>>,
    /// Changes, for `/events`.
    pub feed: Feed,
    /// The GPUs' state.
    pub gpu: crate::gpu::SharedGpuView,
    /// For `/metrics`, and the figures of `/status`.
    pub metrics: Arc<Metrics>,
}

/// Serves HTTP/1.1 on `listener` until the task is dropped, from `sources`; programs' output
/// only with `tails` (`[supervisor] http_tails`).
pub async fn serve(listener: TcpListener, sources: Sources, tails: bool) {
    let slots = Admission::new(MAX_CONNECTIONS);
    let rendered = std::sync::Mutex::new(Rendered::default());
    let Sources { snapshot, feed, gpu, metrics } = sources;
    let shared = Arc::new(Listener { snapshot, feed, gpu, metrics, tails, rendered });
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                warn!("http accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(ticket) = slots.admit() else {
            debug!("http: every connection is busy; refusing a new one");
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, Arc::clone(&shared), ticket));
    }
}

async fn connection(stream: tokio::net::TcpStream, shared: Arc<Listener>, ticket: Ticket) {
    let answer = move |req: Request<Incoming>| {
        let shared = Arc::clone(&shared);
        async move { route(&req, &shared).await }
    };
    serve_connection(stream, ticket, "http", answer).await;
}

/// Serves HTTP/1.1 on one connection with `answer` until it closes, times out on a request
/// head, or is closed to make room (see [`Admission`]): between requests it is idle, during
/// one busy. `what` names the listener in debug logs.
pub(super) async fn serve_connection<S, F, Fut, B>(stream: S, ticket: Ticket, what: &'static str, answer: F)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Response<B>> + Send,
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let evicted = ticket.eviction();
    let ticket = Arc::new(std::sync::Mutex::new(ticket));
    let service = service_fn(move |req| {
        let (answer, ticket) = (answer.clone(), Arc::clone(&ticket));
        async move {
            // A ticket chosen for eviction just now is closed by the select below.
            let _ = ticket.lock().map(|mut t| t.busy());
            let resp = answer(req).await;
            if let Ok(mut t) = ticket.lock() {
                t.idle();
            }
            Ok::<_, Infallible>(resp)
        }
    });
    // hyper's header timeout only works with a timer; without one it is silently off.
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(REQUEST_TIMEOUT)
        // A request head of more than 16 KiB is refused: 256 connections can then hold at
        // most 4 MiB of buffers, where hyper's default (about 400 KiB each) would allow 100.
        .max_buf_size(MAX_HEAD)
        .serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        result = conn => if let Err(e) = result {
            debug!("{what} connection ended: {e}");
        },
        () = evicted.notified() => debug!("{what} connection closed to make room"),
    }
}

/// `GET /health` (every program) and `GET /health/NAME` (one): 200 when ready, 503 when not,
/// with a JSON body either way. `GET /metrics`: Prometheus metrics.
/// A whole body, or the `/events` stream.
type AnyBody = Either<Full<Bytes>, Streamed>;

async fn route(req: &Request<Incoming>, shared: &Listener) -> Response<AnyBody> {
    let path = req.uri().path();
    if req.method() == Method::GET || req.method() == Method::HEAD {
        if path == "/events" {
            return events(&shared.feed);
        }
        if let Some(spec) = path.strip_prefix("/logtail/") {
            if !shared.tails {
                return dashboard::tails_off().map(Either::Left);
            }
            let snapshot = shared.snapshot.borrow().clone();
            return super::xmlrpc::logtail::response(&snapshot, spec).await;
        }
        if path == "/" {
            return dashboard::page().map(Either::Left);
        }
        if path == "/status" {
            let snapshot = shared.snapshot.borrow().clone();
            let allowed = dashboard::Allowed { controls: false, tails: shared.tails };
            return dashboard::status(&snapshot, shared.metrics.sampler(), &shared.gpu, allowed)
                .await
                .map(Either::Left);
        }
    }
    route_whole(req, shared).await.map(Either::Left)
}

/// How long an `/events` follower may take to make room for the next event before it is
/// dropped (meanwhile the feed keeps 256 events for it; beyond that it is dropped too).
const FOLLOWER_PATIENCE: Duration = Duration::from_secs(2);

/// `GET /events`: each change as a Server-Sent Event (`event: state`, `data:` its JSON),
/// until the client goes, or takes no event for 2 s with 64 queued on its connection, or
/// falls 256 behind the feed: then it is dropped (it reconnects and reads `/health` anew); no
/// one waits for it. 503 when 32 follow already.
fn events(feed: &Feed) -> Response<AnyBody> {
    let Some(mut follower) = feed.follow() else {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "too many followers of /events; try again later\n")
            .map(Either::Left);
    };
    let (tx, body) = crate::api::streamed::channel(64);
    tokio::spawn(async move {
        // A comment first, so that the client sees the stream open before any change.
        if tx.try_send(Bytes::from_static(b": supd events\n\n")).is_err() {
            return;
        }
        loop {
            let change = tokio::select! {
                change = follower.next() => change,
                () = tx.closed() => return,
            };
            let Some(change) = change else { return };
            let data = serde_json::to_string(&*change).unwrap_or_default();
            let frame = Bytes::from(format!("event: {}\ndata: {data}\n\n", change.kind.as_str()));
            // A burst can outrun one turn of the connection's writer: wait for room, a while.
            let sent = match tx.try_send(frame) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(frame)) => {
                    matches!(tokio::time::timeout(FOLLOWER_PATIENCE, tx.send(frame)).await, Ok(Ok(())))
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            };
            if !sent {
                return; // gone, or too slow: dropped
            }
        }
    });
    let mut resp = Response::new(Either::Right(body));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

async fn route_whole(req: &Request<Incoming>, shared: &Listener) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let one = path.strip_prefix("/health/").filter(|n| !n.is_empty());
    if path != "/health" && path != "/metrics" && one.is_none() {
        return plain(
            StatusCode::NOT_FOUND,
            "not found; try GET /, /health, /health/NAME, /metrics, /events or /status\n",
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        resp.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let now = Instant::now();
    let snapshot = shared.snapshot.borrow().clone();
    if path == "/metrics" {
        let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok());
        let format = crate::metrics::Format::from_accept(accept);
        let text = shared.metrics.render(&snapshot, &shared.gpu, format).await;
        let mut resp = Response::new(Full::new(Bytes::from(text)));
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
        return resp;
    }
    let (ready, body) = match one {
        None => match shared.rendered.lock() {
            Ok(mut cache) => cache.get(&snapshot, &shared.gpu, now),
            Err(_) => Rendered::default().get(&snapshot, &shared.gpu, now),
        },
        Some(name) => match readiness::program(&snapshot, name, now) {
            Some((ready, status)) => {
                let mut body = serde_json::to_vec(&status).unwrap_or_default();
                body.push(b'\n');
                (ready, Bytes::from(body))
            }
            None => return plain(StatusCode::NOT_FOUND, "no such program\n"),
        },
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

fn plain(code: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = code;
    resp
}

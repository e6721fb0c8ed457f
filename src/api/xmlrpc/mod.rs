//! supervisord's XML-RPC interface, so the real `supervisorctl`, Python's `xmlrpc.client` and
//! the tools built on them drive supd unchanged: `POST /RPC2` over HTTP/1.1 on the control
//! socket (supervisorctl's `serverurl = unix:///…`), beside supctl's JSON lines there.
//!
//! Bounded like every listener: a request head within [`REQUEST_TIMEOUT`] and 16 KiB, a body
//! of at most [`MAX_BODY`] read within the same time, and a malformed call answered with a
//! fault, never a crash.

pub mod fault;
mod groups;
mod info;
mod logs;
pub(crate) mod logtail;
pub mod methods;
mod whitespace;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tracing::warn;

use super::REQUEST_TIMEOUT;
use super::admission::{Admission, MAX_CONNECTIONS, Ticket};
use super::control::Handle;
use crate::config::RpcCredentials;
use fault::{Code, Fault};

/// The largest request body read, bytes (a multicall of a few thousand calls).
pub const MAX_BODY: usize = 1 << 20;

/// Serves XML-RPC over HTTP/1.1 on one connection until it closes, times out on a request, or
/// is closed to make room (see [`super::admission`]).
pub async fn serve<S>(stream: S, handle: Handle, ticket: Ticket)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let answer = move |req: Request<Incoming>| {
        let handle = handle.clone();
        async move { route(req, &handle, false).await }
    };
    super::http::serve_connection(stream, ticket, "xml-rpc", answer).await;
}

/// Serves XML-RPC on TCP (`[supervisor] rpc`) until the task is dropped, admitting
/// connections as the other listeners do. With `credentials`, a request without them gets 401
/// and nothing else.
pub async fn serve_tcp(listener: TcpListener, handle: Handle, credentials: Option<RpcCredentials>) {
    let slots = Admission::new(MAX_CONNECTIONS);
    let credentials = Arc::new(credentials);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                warn!("xml-rpc accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(ticket) = slots.admit() else { continue };
        let _ = stream.set_nodelay(true);
        let (handle, credentials) = (handle.clone(), Arc::clone(&credentials));
        let answer = move |req: Request<Incoming>| {
            let (handle, credentials) = (handle.clone(), Arc::clone(&credentials));
            async move {
                match credentials.as_ref() {
                    Some(c) if !authorized(&req, c) => unauthorized().map(http_body_util::Either::Left),
                    _ => route(req, &handle, credentials.is_some()).await,
                }
            }
        };
        tokio::spawn(super::http::serve_connection(stream, ticket, "xml-rpc", answer));
    }
}

/// Whether `req` carries HTTP Basic credentials that `credentials` accepts.
fn authorized(req: &Request<Incoming>, credentials: &RpcCredentials) -> bool {
    use base64::Engine;
    let header = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let decoded = header
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    decoded.as_deref().and_then(|d| d.split_once(':')).is_some_and(|(u, p)| credentials.accept(u, p))
}

fn unauthorized() -> Response<Full<Bytes>> {
    let mut resp = plain(StatusCode::UNAUTHORIZED, "401 Unauthorized\n");
    resp.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"supd\""));
    resp
}

/// A response body: a whole one, or a stream (`/logtail`).
type AnyBody = http_body_util::Either<Full<Bytes>, crate::api::streamed::Streamed>;

/// `POST /RPC2`: one call, answered with its return value or a fault; `GET /logtail/NAME`:
/// a program's output as it comes; `GET /mainlogtail`: supd's own log as it comes; `GET /`
/// and `GET /status`: the dashboard, with buttons when `controls` (a listener with
/// credentials). A POST from another site's page is refused (403).
async fn route(req: Request<Incoming>, handle: &Handle, controls: bool) -> Response<AnyBody> {
    let path = req.uri().path();
    if let Some(spec) = path.strip_prefix("/logtail/") {
        let snapshot = handle.snapshot.borrow().clone();
        return logtail::response(&snapshot, spec).await;
    }
    if path == "/mainlogtail" {
        return logtail::streamed(logtail::follow(handle.sink.own_log()).await);
    }
    if req.method() == Method::GET || req.method() == Method::HEAD {
        let page = match path {
            "/" => Some(super::dashboard::page()),
            "/status" => {
                let snapshot = handle.snapshot.borrow().clone();
                let allowed = super::dashboard::Allowed { controls, tails: true };
                Some(super::dashboard::status(&snapshot, handle.metrics.sampler(), &handle.gpu, allowed).await)
            }
            _ => None,
        };
        if let Some(page) = page {
            return page.map(http_body_util::Either::Left);
        }
    }
    if super::dashboard::cross_site(&req) {
        return plain(StatusCode::FORBIDDEN, "a request from another site's page is refused\n")
            .map(http_body_util::Either::Left);
    }
    route_rpc(req, handle).await.map(http_body_util::Either::Left)
}

/// `POST /RPC2`: one call, answered with its return value or a fault.
async fn route_rpc(req: Request<Incoming>, handle: &Handle) -> Response<Full<Bytes>> {
    if req.uri().path() != "/RPC2" {
        return plain(StatusCode::NOT_FOUND, "not found: XML-RPC is at /RPC2\n");
    }
    if req.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "XML-RPC takes POST\n");
    }
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return plain(StatusCode::PAYLOAD_TOO_LARGE, "the request body is over 1 MiB\n");
    }
    let body = tokio::time::timeout(REQUEST_TIMEOUT, Limited::new(req.into_body(), MAX_BODY).collect()).await;
    let body = match body {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(_)) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "the request body is over 1 MiB\n"),
        Err(_) => return plain(StatusCode::REQUEST_TIMEOUT, "the request body took too long\n"),
    };
    let xml = answer(handle, &body).await;
    let mut resp = Response::new(Full::new(Bytes::from(xml)));
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    resp
}

/// The XML of the answer to the call in `body`.
pub async fn answer(handle: &Handle, body: &[u8]) -> String {
    let text = whitespace::keep_edges(&String::from_utf8_lossy(body));
    let result = match dxr::MethodCall::from_xml(&text) {
        Ok(call) => methods::call(handle, &call.name, &call.params).await,
        Err(_) => Err(Fault::new(Code::BadArguments, "not an XML-RPC method call")),
    };
    let xml = match result {
        Ok(value) => dxr::MethodResponse { value }.to_xml(),
        Err(fault) => dxr::FaultResponse { fault: fault.into() }.to_xml(),
    };
    // Serializing our own values cannot fail; were it to, the client still gets a fault.
    xml.unwrap_or_else(|_| {
        let fault = Fault::new(Code::Failed, "cannot encode the answer");
        dxr::FaultResponse { fault: fault.into() }.to_xml().unwrap_or_default()
    })
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp
}

//! supervisord's XML-RPC interface, so the real `supervisorctl`, Python's `xmlrpc.client` and
//! the tools built on them drive supd unchanged: `POST /RPC2` over HTTP/1.1 on the control
//! socket (supervisorctl's `serverurl = unix:///…`), beside supctl's JSON lines there.
//!
//! Bounded like every listener: a request head within [`REQUEST_TIMEOUT`] and 16 KiB, a body
//! of at most [`MAX_BODY`] read within the same time, and a malformed call answered with a
//! fault, never a crash.

pub mod fault;
mod info;
pub mod methods;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite};

use super::REQUEST_TIMEOUT;
use super::admission::Ticket;
use super::control::Handle;
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
        async move { route(req, &handle).await }
    };
    super::http::serve_connection(stream, ticket, "xml-rpc", answer).await;
}

/// `POST /RPC2`: one call, answered with its return value or a fault.
async fn route(req: Request<Incoming>, handle: &Handle) -> Response<Full<Bytes>> {
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
    let text = String::from_utf8_lossy(body);
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

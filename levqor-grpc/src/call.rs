//! What every RPC does around its one core call: it takes the request id (echoing it on the
//! answer), has the core authorize the caller and count the call against their quota (the
//! answer carries `x-ratelimit-*` metadata, error or not), and turns a core error into a
//! status. A handler is a closure from the caller and the message to a core result.

use crate::error::status_for;
use levqor_core::call::{key_from, request_id};
use levqor_core::quotas::QuotaStatus;
use levqor_core::{Levqor, Principal};
use std::future::Future;
use std::net::IpAddr;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// A core result on its way to the client.
pub(crate) type Reply<T> = Result<Response<T>, Status>;

fn metadata<'a, T>(req: &'a Request<T>, name: &str) -> Option<&'a str> {
    req.metadata().get(name).and_then(|v| v.to_str().ok())
}

/// An RPC that needs a key: the caller, authorized and metered by the core, and the message.
pub(crate) async fn authed<Req, Out, F, Fut>(
    levqor: &Levqor,
    req: Request<Req>,
    handle: F,
) -> Reply<Out>
where
    F: FnOnce(Principal, Req) -> Fut,
    Fut: Future<Output = levqor_core::Result<Out>>,
{
    authed_with_id(levqor, req, |who, r, _| handle(who, r)).await
}

/// [`authed`], for a handler that also needs the request id (a stream's later errors).
pub(crate) async fn authed_with_id<Req, Out, F, Fut>(
    levqor: &Levqor,
    req: Request<Req>,
    handle: F,
) -> Reply<Out>
where
    F: FnOnce(Principal, Req, String) -> Fut,
    Fut: Future<Output = levqor_core::Result<Out>>,
{
    let id = request_id(metadata(&req, "x-request-id"));
    let span = tracing::info_span!("rpc", request_id = %id);
    async {
        let key = key_from(metadata(&req, "authorization"), metadata(&req, "x-api-key"));
        let authorized = levqor.authorize(key).await;
        let result = match authorized.caller {
            Ok(who) => handle(who, req.into_inner(), id.clone()).await,
            Err(e) => Err(e),
        };
        finish(result, &id, authorized.quota.as_ref())
    }
    .instrument(span)
    .await
}

/// An RPC that needs no key: the client's address (for the public rate) and the message.
pub(crate) async fn open<Req, Out, F, Fut>(req: Request<Req>, handle: F) -> Reply<Out>
where
    F: FnOnce(Option<IpAddr>, Req) -> Fut,
    Fut: Future<Output = levqor_core::Result<Out>>,
{
    let id = request_id(metadata(&req, "x-request-id"));
    let span = tracing::info_span!("rpc", request_id = %id);
    let ip = req.remote_addr().map(|a| a.ip());
    async { finish(handle(ip, req.into_inner()).await, &id, None) }
        .instrument(span)
        .await
}

fn finish<Out>(
    result: levqor_core::Result<Out>,
    id: &str,
    quota: Option<&QuotaStatus>,
) -> Reply<Out> {
    match result {
        Ok(out) => {
            let mut response = Response::new(out);
            stamp(response.metadata_mut(), id, quota);
            Ok(response)
        }
        Err(e) => {
            let mut status = status_for(e, id);
            stamp(status.metadata_mut(), id, quota);
            Err(status)
        }
    }
}

/// The request id and, for a metered caller, where they stand against their quota. The id is
/// new on every call, so HPACK is told never to index it (it would only evict the fields that
/// repeat).
fn stamp(m: &mut MetadataMap, id: &str, quota: Option<&QuotaStatus>) {
    if let Ok(mut v) = MetadataValue::try_from(id) {
        v.set_sensitive(true);
        m.insert("x-request-id", v);
    }
    for (name, value) in quota
        .map(QuotaStatus::rate_limit_fields)
        .into_iter()
        .flatten()
    {
        if let Ok(v) = MetadataValue::try_from(value.as_str()) {
            m.insert(name, v);
        }
    }
}

/// The deadline a call sent, if any. The server ends a unary call at its deadline
/// (`transport`); a stream ends itself with this.
pub(crate) fn deadline<T>(req: &Request<T>) -> Option<std::time::Duration> {
    crate::transport::grpc_timeout(metadata(req, "grpc-timeout")?)
}

/// Where a request came from: its peer address and `user-agent`.
pub(crate) fn client<T>(req: &Request<T>) -> levqor_core::consent::ClientInfo {
    levqor_core::consent::ClientInfo::new(
        req.remote_addr().map(|a| a.ip()),
        metadata(req, "user-agent"),
    )
}

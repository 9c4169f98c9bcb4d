//! The outbound HTTP client behind `http_request` steps. It refuses private, loopback,
//! link-local and other internal addresses (unless the deployment allows them) both before
//! connecting and in its DNS resolver (so a name cannot be re-pointed between the check and the
//! connection), caps response bodies, and applies each step's timeout.

use async_trait::async_trait;
use levqor_core::{HttpClient, HttpRequest, HttpResponse, StepFailure};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Default cap on a response body (1 MiB).
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Whether an address is internal: private, loopback, link-local, unspecified, shared (CGNAT),
/// multicast or broadcast, including IPv4 addresses mapped into IPv6.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let seg = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00
                || (seg[0] & 0xffc0) == 0xfe80
        }
    }
}

#[derive(Clone)]
struct GuardedResolver {
    allow_internal: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_internal;
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| allow || !is_internal(a.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(
                    format!("{} resolves only to internal addresses", name.as_str()).into(),
                );
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The reqwest-backed [`HttpClient`].
pub struct ReqwestHttp {
    client: reqwest::Client,
    allow_internal: bool,
    max_body: usize,
}

impl ReqwestHttp {
    /// A client; `allow_internal` lets steps reach private and loopback addresses.
    pub fn new(allow_internal: bool, max_body: usize) -> Self {
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            let internal_literal = attempt
                .url()
                .host_str()
                .and_then(|h| h.trim_matches(['[', ']']).parse::<IpAddr>().ok())
                .is_some_and(is_internal);
            if attempt.previous().len() >= 5 {
                attempt.error("too many redirects")
            } else if internal_literal && !allow_internal {
                attempt.error("redirect to an internal address")
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { allow_internal }))
            .redirect(redirect)
            .user_agent(concat!("levqor/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client configuration is valid");
        Self {
            client,
            allow_internal,
            max_body,
        }
    }

    async fn check_target(&self, url: &reqwest::Url) -> Result<(), StepFailure> {
        check_target(url, self.allow_internal).await
    }
}

/// Refuses schemes other than http(s), and (unless `allow_internal`) hosts that are or resolve
/// to internal addresses.
async fn check_target(url: &reqwest::Url, allow_internal: bool) -> Result<(), StepFailure> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(StepFailure::permanent(format!(
            "scheme {:?} is not allowed; use http or https",
            url.scheme()
        )));
    }
    let host = url
        .host_str()
        .ok_or_else(|| StepFailure::permanent("the URL has no host"))?;
    if allow_internal {
        return Ok(());
    }
    let port = url.port_or_known_default().unwrap_or(80);
    let ips: Vec<IpAddr> = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| StepFailure::retryable(format!("cannot resolve {host}: {e}")))?
            .map(|a| a.ip())
            .collect(),
    };
    if ips.iter().any(|ip| is_internal(*ip)) {
        return Err(StepFailure::permanent(format!(
            "{host} is an internal address; this server does not allow requests to private, loopback or link-local addresses"
        )));
    }
    Ok(())
}

/// A client for URLs that come from workflows but are not `http_request` steps (signed
/// webhooks): the same address policy, no redirects, a whole-request timeout.
pub struct GuardedClient {
    client: reqwest::Client,
    allow_internal: bool,
}

impl GuardedClient {
    /// A client; `allow_internal` lets it reach private and loopback addresses.
    pub fn new(allow_internal: bool, timeout: std::time::Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(GuardedResolver { allow_internal }))
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .user_agent(concat!("levqor/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            client,
            allow_internal,
        })
    }

    /// `url` parsed and checked against the address policy (a refusal is permanent; a name
    /// that cannot be resolved now may resolve later).
    pub async fn check(&self, url: &str) -> Result<reqwest::Url, StepFailure> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| StepFailure::permanent(format!("bad URL {url:?}: {e}")))?;
        check_target(&parsed, self.allow_internal).await?;
        Ok(parsed)
    }

    /// The client, for a request to a checked URL.
    pub fn inner(&self) -> &reqwest::Client {
        &self.client
    }
}

#[async_trait]
impl HttpClient for ReqwestHttp {
    async fn send(&self, request: HttpRequest) -> Result<HttpResponse, StepFailure> {
        let url = reqwest::Url::parse(&request.url)
            .map_err(|e| StepFailure::permanent(format!("bad URL {:?}: {e}", request.url)))?;
        self.check_target(&url).await?;
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| StepFailure::permanent(format!("bad method {:?}", request.method)))?;
        let mut builder = self.client.request(method, url).timeout(request.timeout);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let mut response = builder.send().await.map_err(|e| {
            if e.is_builder() {
                StepFailure::permanent(format!("bad request: {e}"))
            } else {
                StepFailure::retryable(describe(&e))
            }
        })?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                v.to_str()
                    .ok()
                    .map(|v| (k.as_str().to_string(), v.to_string()))
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| StepFailure::retryable(describe(&e)))?
        {
            if body.len() + chunk.len() > self.max_body {
                return Err(StepFailure::permanent(format!(
                    "the response is larger than {} bytes",
                    self.max_body
                )));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(HttpResponse {
            status,
            headers,
            body,
        })
    }
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "the request timed out".into();
    }
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognized() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn internal_targets_are_refused_unless_allowed() {
        let guarded = ReqwestHttp::new(false, DEFAULT_MAX_RESPONSE_BYTES);
        let req = |url: &str| HttpRequest {
            method: "GET".into(),
            url: url.into(),
            headers: vec![],
            body: None,
            timeout: std::time::Duration::from_secs(2),
        };
        for url in [
            "http://127.0.0.1:9/",
            "http://localhost:9/",
            "http://[::1]:9/",
            "http://169.254.169.254/latest",
        ] {
            let err = guarded.send(req(url)).await.unwrap_err();
            assert!(
                !err.retryable && err.message.contains("internal"),
                "{url}: {err:?}"
            );
        }
        let err = guarded.send(req("file:///etc/passwd")).await.unwrap_err();
        assert!(err.message.contains("scheme"));
    }
}

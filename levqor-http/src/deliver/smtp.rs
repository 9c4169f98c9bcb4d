//! Email through an SMTP server (`lettre`'s async transport with a connection pool): plain
//! (a local relay), STARTTLS or implicit TLS, with optional credentials. Each message carries a
//! stable `Message-ID` (`<id@domain>`), the same on every attempt, so a receiver can recognise a
//! copy; SMTP itself cannot deduplicate, so a message abandoned mid-attempt is not re-sent
//! without an admin (see the dispatcher).

use super::DELIVERY_TIMEOUT;
use async_trait::async_trait;
use base64::Engine as _;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use levqor_core::notify::{Channel, Delivered, OutboxMessage};
use std::str::FromStr;

/// How the connection to the server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// No TLS (a relay on the same host or network).
    None,
    /// Plain connection upgraded with STARTTLS (required).
    StartTls,
    /// TLS from the first byte (port 465).
    Implicit,
}

impl FromStr for SmtpTls {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(SmtpTls::None),
            "starttls" => Ok(SmtpTls::StartTls),
            "tls" => Ok(SmtpTls::Implicit),
            other => Err(format!(
                "unknown SMTP TLS mode {other:?}: none, starttls or tls"
            )),
        }
    }
}

/// Where and how to reach the SMTP server.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Host name (checked against the certificate with TLS).
    pub host: String,
    /// Port.
    pub port: u16,
    /// Connection security.
    pub tls: SmtpTls,
    /// User name and password, if the server wants them.
    pub credentials: Option<(String, String)>,
    /// Most connections kept open.
    pub pool_size: u32,
    /// The sender (`Name <address>` or an address).
    pub from: String,
}

/// Delivers `email` messages over SMTP.
pub struct SmtpChannel {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    domain: String,
}

impl SmtpChannel {
    /// A channel over a pool of connections to the configured server.
    pub fn new(config: &SmtpConfig) -> Result<Self, String> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|e| format!("the sender {:?} is not an address: {e}", config.from))?;
        let builder = match config.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
            SmtpTls::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(|e| format!("SMTP: {e}"))?,
            SmtpTls::Implicit => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host)
                .map_err(|e| format!("SMTP: {e}"))?,
        };
        let mut builder = builder
            .port(config.port)
            .timeout(Some(DELIVERY_TIMEOUT))
            .pool_config(PoolConfig::new().max_size(config.pool_size.max(1)));
        if let Some((user, password)) = &config.credentials {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Self {
            domain: from.email.domain().to_string(),
            transport: builder.build(),
            from,
        })
    }

    /// The message as it goes over the wire, or why it cannot be built (a refusal).
    pub fn message(&self, m: &OutboxMessage) -> Result<Message, String> {
        let to: Mailbox =
            m.to.parse()
                .map_err(|e| format!("{:?} is not an address: {e}", m.to))?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(m.subject.as_str())
            .message_id(Some(format!("<{}@{}>", m.id, self.domain)));
        for (name, value) in &m.headers {
            let name = HeaderName::new_from_ascii(name.clone())
                .map_err(|e| format!("header {name:?}: {e}"))?;
            builder = builder.raw_header(HeaderValue::new(name, value.clone()));
        }
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(m.body.clone());
        let body = match &m.html {
            Some(html) => MultiPart::alternative().singlepart(text).singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_HTML)
                    .body(html.clone()),
            ),
            None if m.attachments.is_empty() => {
                return builder.singlepart(text).map_err(|e| e.to_string());
            }
            None => MultiPart::mixed().singlepart(text),
        };
        let built = if m.attachments.is_empty() {
            builder.multipart(body)
        } else {
            let mut mixed = if m.html.is_some() {
                MultiPart::mixed().multipart(body)
            } else {
                body
            };
            for a in &m.attachments {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(&a.content_base64)
                    .map_err(|e| format!("attachment {:?}: {e}", a.filename))?;
                let kind = ContentType::parse(&a.content_type)
                    .map_err(|e| format!("attachment {:?}: {e}", a.filename))?;
                mixed = mixed.singlepart(Attachment::new(a.filename.clone()).body(bytes, kind));
            }
            builder.multipart(mixed)
        };
        built.map_err(|e| e.to_string())
    }
}

#[async_trait]
impl Channel for SmtpChannel {
    fn channel(&self) -> &str {
        "email"
    }

    fn deduplicates(&self) -> bool {
        false
    }

    async fn deliver(&self, m: &OutboxMessage) -> Delivered {
        let message = match self.message(m) {
            Ok(message) => message,
            Err(error) => return Delivered::Reject { error },
        };
        match self.transport.send(message).await {
            Ok(response) => {
                let text: Vec<&str> = response.message().collect();
                Delivered::Sent {
                    answer: format!("{} {}", response.code(), text.join(" ")),
                    provider_message_id: Some(format!("<{}@{}>", m.id, self.domain)),
                }
            }
            Err(e) if e.is_permanent() => Delivered::Reject {
                error: format!("SMTP refused it: {e}"),
            },
            Err(e) => Delivered::Retry {
                error: format!("SMTP: {e}"),
                after: None,
            },
        }
    }
}

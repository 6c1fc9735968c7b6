//! Webhook notifications in embedded mode: an outbox fed from the log, and a sender.
//!
//! Two halves, so that a slow or dead receiver can never hold up the read models:
//!
//! - [`Outbox::step`] is one more consumer of the event log, with its own durable position
//!   (not the projector's: a read-model rebuild must not send anything twice). It folds the
//!   webhook subscriptions from the Platform events it meets, in log order, and enqueues one
//!   delivery per (webhook, event) the webhook wants. The delivery's unique key is
//!   (webhook, event id), so re-reading after a crash enqueues nothing twice.
//! - [`Sender`] POSTs due deliveries, at least once: an attempt that got no 2xx is retried
//!   with exponential backoff and jitter until it succeeds or runs out of attempts, and then
//!   stays visible as `FAILED`. Every attempt is recorded (status code or error, duration).
//!   Receivers deduplicate by the `X-Chaos-Event-Id` header (the same in every attempt).
//!   Only public addresses are reached (unless the deployment allows private targets): an
//!   address in the URL is checked before sending, and a host name's addresses as it is
//!   resolved, every time, so a name that resolves to the loopback or the metadata service
//!   later reaches nothing. Redirects are not followed (a 3xx is a failed attempt).
//! - Deliveries are signed, as Stripe and GitHub sign theirs: each webhook has a secret of its
//!   own, drawn when it is added (or issued anew) and shown once, whose fingerprint the log
//!   records before it signs anything ([`draw_secret`], [`keep_secret`]), and every attempt carries
//!   `X-Chaos-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the
//!   secret>` ([`signature`]); a receiver recomputes it over the raw body and refuses a
//!   mismatch or an old `t`. The secret is kept in the store's `notify_secrets` table, beside
//!   the deliveries and never in the event log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use domain::Timestamp;
use domain::platform::{PlatformEvent, Snapshot, Webhook};
use domain::spec::WebhookId;
use domain::views::activity::ActivityItem;
use domain::views::{AnyEvent, Envelope, RawRecord};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;

use crate::projector::{ProjectionError, connect};

/// Why notifications could not be enqueued or sent (per-delivery failures are recorded, not
/// errors).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] ProjectionError),
    /// SQLite refused.
    #[error("notification tables: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Stored state does not decode, or a body cannot be encoded.
    #[error("notification state: {0}")]
    Json(#[from] serde_json::Error),
    /// The HTTP client could not be built, or a background task died.
    #[error("webhook sender: {0}")]
    Sender(String),
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS notify_state (
  name     TEXT    PRIMARY KEY,
  position INTEGER NOT NULL,
  webhooks TEXT    NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS notify_deliveries (
  id               INTEGER PRIMARY KEY,
  webhook_id       TEXT    NOT NULL,
  url              TEXT    NOT NULL,
  event_id         TEXT    NOT NULL,
  aggregate_id     TEXT    NOT NULL,
  sequence         INTEGER NOT NULL,
  event_type       TEXT    NOT NULL,
  body             TEXT    NOT NULL,
  status           TEXT    NOT NULL,
  attempts         INTEGER NOT NULL,
  next_attempt_ms  INTEGER NOT NULL,
  last_status_code INTEGER,
  last_error       TEXT,
  created_at       TEXT    NOT NULL,
  delivered_at     TEXT,
  UNIQUE (webhook_id, event_id)
) STRICT;
CREATE INDEX IF NOT EXISTS notify_deliveries_due ON notify_deliveries (status, next_attempt_ms);
CREATE TABLE IF NOT EXISTS notify_attempts (
  delivery_id INTEGER NOT NULL,
  attempt     INTEGER NOT NULL,
  at          TEXT    NOT NULL,
  status_code INTEGER,
  error       TEXT,
  duration_ms INTEGER NOT NULL,
  PRIMARY KEY (delivery_id, attempt)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS notify_secrets (
  webhook_id TEXT PRIMARY KEY,
  secret     TEXT NOT NULL,
  issued_at  TEXT NOT NULL
) STRICT;
";

/// Name of the outbox's state row.
const FEED: &str = "webhooks";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn now_text() -> String {
    Timestamp::from_unix_millis(now_ms()).to_string()
}

/// The JSON a webhook receives.
#[derive(Debug, Serialize)]
struct Body<'a> {
    webhook_id: &'a str,
    event_id: &'a str,
    #[serde(flatten)]
    item: ActivityItem,
    actor_role: &'a str,
    source: &'a str,
    hash: &'a str,
    event: &'a AnyEvent,
}

/// Opens the notification tables in the store file.
fn open(path: &Path) -> Result<Connection, NotifyError> {
    let conn = connect(path)?;
    conn.execute_batch(SCHEMA)?;
    Ok(conn)
}

/// Enqueues deliveries from the log; see the module docs.
#[derive(Debug)]
pub struct Outbox {
    conn: Connection,
    batch: usize,
}

/// What one outbox step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxStep {
    /// Events read.
    pub read: usize,
    /// Deliveries enqueued.
    pub enqueued: usize,
    /// Records that do not decode (left to the projector, which parks and shows them).
    pub undecodable: usize,
    /// Position after the step.
    pub position: i64,
}

impl Outbox {
    /// The outbox of the store at `path`.
    pub fn open(path: &Path) -> Result<Self, NotifyError> {
        Ok(Self {
            conn: open(path)?,
            batch: 1_000,
        })
    }

    /// Reads the next batch of events and enqueues their deliveries, in one transaction.
    pub fn step(&mut self) -> Result<OutboxStep, NotifyError> {
        // A look without the write lock first, so that idle polls never hold up writers.
        let (start, waiting): (i64, bool) = self.conn.query_row(
            "SELECT p.position, EXISTS (SELECT 1 FROM events WHERE rowid > p.position) \
             FROM (SELECT coalesce((SELECT position FROM notify_state WHERE name = ?1), 0) AS position) p",
            [FEED],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if !waiting {
            return Ok(OutboxStep {
                position: start,
                ..OutboxStep::default()
            });
        }
        let tx = Transaction::new(&mut self.conn, TransactionBehavior::Immediate)?;
        let state: Option<(i64, String)> = tx
            .query_row(
                "SELECT position, webhooks FROM notify_state WHERE name = ?1",
                [FEED],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (start, mut webhooks): (i64, BTreeMap<WebhookId, Webhook>) = match state {
            Some((position, text)) => (position, serde_json::from_str(&text)?),
            None => (0, BTreeMap::new()),
        };
        let mut report = OutboxStep {
            position: start,
            ..OutboxStep::default()
        };
        {
            let mut rows = tx.prepare_cached(
                "SELECT rowid, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata \
                 FROM events WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
            )?;
            let mut rows = rows.query(params![
                start,
                i64::try_from(self.batch).unwrap_or(i64::MAX)
            ])?;
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO notify_deliveries \
                 (webhook_id, url, event_id, aggregate_id, sequence, event_type, body, status, attempts, \
                  next_attempt_ms, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'PENDING', 0, ?8, ?9)",
            )?;
            while let Some(row) = rows.next()? {
                report.read += 1;
                report.position = row.get(0)?;
                let decoded = Envelope::decode(RawRecord {
                    aggregate_type: row.get_ref(1)?.as_str().unwrap_or_default(),
                    aggregate_id: row.get_ref(2)?.as_str().unwrap_or_default(),
                    sequence: row.get(3)?,
                    event_type: row.get_ref(4)?.as_str().unwrap_or_default(),
                    event_version: row.get_ref(5)?.as_str().unwrap_or_default(),
                    payload: row.get_ref(6)?.as_str().unwrap_or_default(),
                    metadata: row.get_ref(7)?.as_str().unwrap_or_default(),
                });
                let envelope = match decoded {
                    Ok(envelope) => envelope,
                    Err(e) => {
                        report.undecodable += 1;
                        tracing::warn!(error = %e, "undecodable event: no notification for it");
                        continue;
                    }
                };
                let event_type = envelope.event_type();
                let body_for = |id: &WebhookId| {
                    serde_json::to_string(&Body {
                        webhook_id: id.as_str(),
                        event_id: &envelope.metadata.event_id,
                        item: ActivityItem::from_envelope(&envelope),
                        actor_role: &envelope.metadata.actor_role,
                        source: &envelope.metadata.source,
                        hash: &envelope.metadata.hash,
                        event: &envelope.event,
                    })
                };
                for (id, webhook) in &webhooks {
                    if !webhook.wants(&event_type) {
                        continue;
                    }
                    report.enqueued += insert.execute(params![
                        id.as_str(),
                        webhook.url,
                        envelope.metadata.event_id,
                        envelope.aggregate_id,
                        i64::try_from(envelope.sequence).unwrap_or(i64::MAX),
                        event_type,
                        body_for(id)?,
                        now_ms(),
                        now_text(),
                    ])?;
                }
                // Subscriptions change in log order: an event reaches the webhooks that were
                // subscribed when it was appended.
                if let AnyEvent::Platform(event) = &envelope.event {
                    match event {
                        PlatformEvent::WebhookAdded {
                            id, url, events, ..
                        } => {
                            webhooks.insert(
                                id.clone(),
                                Webhook {
                                    url: url.clone(),
                                    events: events.clone(),
                                },
                            );
                        }
                        PlatformEvent::WebhookRemoved { id, .. } => {
                            webhooks.remove(id);
                        }
                        // A new book of the webhooks' ledger carries them all (the same ones).
                        PlatformEvent::BookOpened {
                            state: Snapshot::Webhooks { webhooks: all },
                            ..
                        } => webhooks.clone_from(all),
                        _ => {}
                    }
                }
            }
        }
        tx.execute(
            "INSERT INTO notify_state (name, position, webhooks) VALUES (?1, ?2, ?3) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, webhooks = excluded.webhooks",
            params![FEED, report.position, serde_json::to_string(&webhooks)?],
        )?;
        tx.commit()?;
        Ok(report)
    }

    /// Enqueues until `stop` is set, sleeping `idle_poll` whenever the log is read to its end.
    /// A failed step is logged and retried; it never ends the loop.
    pub fn run(&mut self, stop: &std::sync::atomic::AtomicBool, idle_poll: Duration) {
        use std::sync::atomic::Ordering;
        while !stop.load(Ordering::Relaxed) {
            match self.step() {
                Ok(step) if step.read > 0 => {}
                Ok(_) => std::thread::sleep(idle_poll),
                Err(e) => {
                    tracing::error!(error = %e, "webhook outbox step failed; retrying");
                    std::thread::sleep(idle_poll);
                }
            }
        }
    }

    /// Steps until the log is read to its end.
    pub fn catch_up(&mut self) -> Result<OutboxStep, NotifyError> {
        let mut total = OutboxStep::default();
        loop {
            let step = self.step()?;
            total.read += step.read;
            total.enqueued += step.enqueued;
            total.undecodable += step.undecodable;
            total.position = step.position;
            if step.read == 0 {
                return Ok(total);
            }
        }
    }
}

/// How deliveries are retried.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryPolicy {
    /// Attempts in all before a delivery is marked `FAILED`.
    pub max_attempts: u32,
    /// Wait after the first failure; doubles per attempt.
    pub base_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// Timeout of one POST.
    pub timeout: Duration,
    /// Deliveries attempted at once.
    pub concurrency: usize,
    /// Whether receivers at non-public addresses are reached (see [`domain::net::is_public`]).
    pub allow_private_targets: bool,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
            concurrency: 8,
            allow_private_targets: false,
        }
    }
}

impl DeliveryPolicy {
    /// Wait before attempt `attempts + 1`, after `attempts` failures: exponential, with
    /// jitter between half and all of it so that receivers coming back are not stampeded.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = self
            .base_backoff
            .saturating_mul(1 << attempts.saturating_sub(1).min(20))
            .min(self.max_backoff);
        let half = exp / 2;
        half + Duration::from_micros(fastrand::u64(
            0..=u64::try_from(half.as_micros()).unwrap_or(u64::MAX),
        ))
    }
}

/// The address a URL names literally (in any form the HTTP client accepts), if it names one.
fn literal_address(url: &str) -> Option<std::net::IpAddr> {
    match reqwest::Url::parse(url).ok()?.host()? {
        url::Host::Ipv4(ip) => Some(ip.into()),
        url::Host::Ipv6(ip) => Some(ip.into()),
        url::Host::Domain(_) => None,
    }
}

/// An error with its causes, outermost first.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Resolves receivers' host names to their public addresses only: a name that resolves to
/// nothing else reaches nothing, whenever it is resolved (at every attempt, so a name pointed
/// at the loopback or the metadata service after the webhook was added is caught too).
#[derive(Debug)]
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let public: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| domain::net::is_public(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(format!(
                    "{host} resolves to no public address: webhooks may only reach public \
                     addresses (the deployment can allow private targets explicitly)"
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// A delivery due now.
#[derive(Debug, Clone)]
struct Due {
    id: i64,
    url: String,
    event_id: String,
    event_type: String,
    body: String,
    attempts: u32,
    /// Its webhook's signing secret (none for a webhook added before deliveries were signed,
    /// until its secret is issued anew).
    secret: Option<String>,
}

/// Draws a new webhook signing secret: `whsec_` and 64 hex digits of the system's random
/// source. Nothing keeps it yet: record its fingerprint, then [`keep_secret`].
pub fn draw_secret() -> Result<String, NotifyError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| NotifyError::Sender(format!("random source: {e}")))?;
    Ok(format!("whsec_{}", hex::encode(bytes)))
}

/// Keeps `secret` as webhook `webhook_id`'s signing secret in the store at `path`, replacing
/// any it had: the sender signs with it from its next attempt on.
pub fn keep_secret(path: &Path, webhook_id: &str, secret: &str) -> Result<(), NotifyError> {
    open(path)?.execute(
        "INSERT INTO notify_secrets (webhook_id, secret, issued_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (webhook_id) DO UPDATE SET secret = excluded.secret, issued_at = excluded.issued_at",
        params![webhook_id, secret, now_text()],
    )?;
    Ok(())
}

/// The `X-Chaos-Signature` value of `body` sent at `timestamp` (Unix seconds) under `secret`:
/// `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
pub fn signature(secret: &str, timestamp: u64, body: &str) -> String {
    use hmac::Mac;
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).map(|mut mac| {
        mac.update(format!("{timestamp}.").as_bytes());
        mac.update(body.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    });
    format!("t={timestamp},v1={}", mac.unwrap_or_default())
}

/// The outcome of one POST.
#[derive(Debug)]
struct Attempt {
    status_code: Option<u16>,
    error: Option<String>,
    elapsed: Duration,
    /// A refusal that no retry can change (the target is not allowed): failed at once.
    refused: bool,
}

impl Attempt {
    fn succeeded(&self) -> bool {
        self.status_code.is_some_and(|c| (200..300).contains(&c))
    }
}

/// Posts due deliveries; see the module docs.
#[derive(Debug, Clone)]
pub struct Sender {
    path: PathBuf,
    client: reqwest::Client,
    policy: DeliveryPolicy,
}

impl Sender {
    /// A sender for the store at `path`.
    pub fn new(path: &Path, policy: DeliveryPolicy) -> Result<Self, NotifyError> {
        drop(open(path)?);
        let mut client = reqwest::Client::builder()
            .timeout(policy.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("chaos-webhooks/", env!("CARGO_PKG_VERSION")));
        if !policy.allow_private_targets {
            client = client.dns_resolver(std::sync::Arc::new(PublicOnly));
        }
        let client = client
            .build()
            .map_err(|e| NotifyError::Sender(e.to_string()))?;
        Ok(Self {
            path: path.to_owned(),
            client,
            policy,
        })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, NotifyError> + Send + 'static,
    ) -> Result<T, NotifyError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || work(&open(&path)?))
            .await
            .map_err(|e| NotifyError::Sender(e.to_string()))?
    }

    /// Attempts every delivery that is due now, concurrently; returns how many were attempted.
    pub async fn send_due(&self) -> Result<usize, NotifyError> {
        let limit = i64::try_from(self.policy.concurrency.max(1)).unwrap_or(8);
        let due: Vec<Due> = self
            .blocking(move |conn| {
                let mut statement = conn.prepare_cached(
                    "SELECT d.id, d.url, d.event_id, d.event_type, d.body, d.attempts, s.secret \
                     FROM notify_deliveries d LEFT JOIN notify_secrets s ON s.webhook_id = d.webhook_id \
                     WHERE d.status = 'PENDING' AND d.next_attempt_ms <= ?1 ORDER BY d.next_attempt_ms, d.id LIMIT ?2",
                )?;
                let rows = statement.query_map(params![now_ms(), limit], |r| {
                    Ok(Due {
                        id: r.get(0)?,
                        url: r.get(1)?,
                        event_id: r.get(2)?,
                        event_type: r.get(3)?,
                        body: r.get(4)?,
                        attempts: u32::try_from(r.get::<_, i64>(5)?).unwrap_or(u32::MAX),
                        secret: r.get(6)?,
                    })
                })?;
                Ok(rows.collect::<Result<Vec<_>, _>>()?)
            })
            .await?;
        let count = due.len();
        let attempts = futures::future::join_all(due.into_iter().map(|d| async move {
            let attempt = self.post(&d).await;
            (d, attempt)
        }))
        .await;
        let policy = self.policy;
        self.blocking(move |conn| {
            for (due, attempt) in attempts {
                record(conn, &due, &attempt, &policy)?;
            }
            Ok(())
        })
        .await?;
        Ok(count)
    }

    async fn post(&self, due: &Due) -> Attempt {
        let started = Instant::now();
        if !self.policy.allow_private_targets
            && let Some(ip) = literal_address(&due.url)
            && !domain::net::is_public(ip)
        {
            return Attempt {
                status_code: None,
                error: Some(format!(
                    "{ip} is not a public address: webhooks may only reach public addresses \
                     (the deployment can allow private targets explicitly)"
                )),
                elapsed: started.elapsed(),
                refused: true,
            };
        }
        let mut request = self
            .client
            .post(&due.url)
            .header("content-type", "application/json")
            .header("x-chaos-event-id", &due.event_id)
            .header("x-chaos-event-type", &due.event_type)
            .header("x-chaos-delivery", due.id.to_string())
            .header("x-chaos-attempt", (due.attempts + 1).to_string());
        if let Some(secret) = &due.secret {
            let sent_at = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            request = request.header("x-chaos-signature", signature(secret, sent_at, &due.body));
        }
        let result = request.body(due.body.clone()).send().await;
        let elapsed = started.elapsed();
        match result {
            Ok(response) => Attempt {
                status_code: Some(response.status().as_u16()),
                error: (!response.status().is_success()).then(|| {
                    if response.status().is_redirection() {
                        format!(
                            "receiver answered {} (redirects are not followed)",
                            response.status()
                        )
                    } else {
                        format!("receiver answered {}", response.status())
                    }
                }),
                elapsed,
                refused: false,
            },
            // The error without the URL, whose path or query may be the receiver's secret; with
            // its causes, where a refused address is told.
            Err(e) => Attempt {
                status_code: None,
                error: Some(chain(&e.without_url())),
                elapsed,
                refused: false,
            },
        }
    }

    /// Sends until `stop` resolves, polling for due deliveries every `idle_poll`.
    pub async fn run(&self, idle_poll: Duration, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        loop {
            let attempted = match self.send_due().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "webhook delivery pass failed; retrying");
                    0
                }
            };
            if attempted == 0 {
                tokio::select! {
                    () = &mut stop => return,
                    () = tokio::time::sleep(idle_poll) => {}
                }
            }
        }
    }
}

fn record(
    conn: &Connection,
    due: &Due,
    attempt: &Attempt,
    policy: &DeliveryPolicy,
) -> Result<(), NotifyError> {
    let number = due.attempts + 1;
    let at = now_text();
    conn.execute(
        "INSERT INTO notify_attempts (delivery_id, attempt, at, status_code, error, duration_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            due.id,
            number,
            at,
            attempt.status_code,
            attempt.error,
            i64::try_from(attempt.elapsed.as_millis()).unwrap_or(i64::MAX)
        ],
    )?;
    if attempt.succeeded() {
        conn.execute(
            "UPDATE notify_deliveries SET status = 'DELIVERED', attempts = ?2, last_status_code = ?3, \
             last_error = NULL, delivered_at = ?4 WHERE id = ?1",
            params![due.id, number, attempt.status_code, at],
        )?;
    } else {
        let (status, next) = if number >= policy.max_attempts || attempt.refused {
            ("FAILED", i64::MAX)
        } else {
            let wait = i64::try_from(policy.backoff(number).as_millis()).unwrap_or(i64::MAX);
            ("PENDING", now_ms().saturating_add(wait))
        };
        conn.execute(
            "UPDATE notify_deliveries SET status = ?2, attempts = ?3, next_attempt_ms = ?4, \
             last_status_code = ?5, last_error = ?6 WHERE id = ?1",
            params![
                due.id,
                status,
                number,
                next,
                attempt.status_code,
                attempt.error
            ],
        )?;
        if status == "FAILED" {
            tracing::warn!(
                delivery = due.id,
                url = %domain::spec::redacted_url(&due.url),
                "webhook delivery failed for good"
            );
        }
    }
    Ok(())
}

/// One delivery, as shown to people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Delivery id.
    pub id: i64,
    /// Webhook.
    pub webhook_id: String,
    /// Receiver.
    pub url: String,
    /// Event delivered.
    pub event_id: String,
    /// Its stream.
    pub aggregate_id: String,
    /// Its sequence.
    pub sequence: i64,
    /// Its type.
    pub event_type: String,
    /// `PENDING`, `DELIVERED` or `FAILED`.
    pub status: String,
    /// Attempts made.
    pub attempts: i64,
    /// Last HTTP status seen.
    pub last_status_code: Option<i64>,
    /// Last error.
    pub last_error: Option<String>,
}

/// Deliveries, newest first, optionally only those with `status`.
pub fn deliveries(
    path: &Path,
    status: Option<&str>,
    limit: usize,
) -> Result<Vec<Delivery>, NotifyError> {
    let conn = open(path)?;
    let mut statement = conn.prepare(
        "SELECT id, webhook_id, url, event_id, aggregate_id, sequence, event_type, status, attempts, \
         last_status_code, last_error FROM notify_deliveries \
         WHERE (?1 IS NULL OR status = ?1) ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = statement.query_map(
        params![status, i64::try_from(limit).unwrap_or(i64::MAX)],
        |r| {
            Ok(Delivery {
                id: r.get(0)?,
                webhook_id: r.get(1)?,
                url: r.get(2)?,
                event_id: r.get(3)?,
                aggregate_id: r.get(4)?,
                sequence: r.get(5)?,
                event_type: r.get(6)?,
                status: r.get(7)?,
                attempts: r.get(8)?,
                last_status_code: r.get(9)?,
                last_error: r.get(10)?,
            })
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

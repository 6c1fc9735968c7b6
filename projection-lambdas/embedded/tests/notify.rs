//! Webhook deliveries against a real HTTP receiver on 127.0.0.1, from a real SQLite log.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use domain::experiment::Experiment;
use domain::platform::{PlatformBook, PlatformCommand};
use domain::spec::WebhookId;
use embedded_read::notify::{DeliveryPolicy, Outbox, Sender, deliveries, draw_secret, keep_secret};
use embedded_write::SqliteStore;
use test_support::common;

/// What the receiver saw: per event id, the attempts and the last body.
#[derive(Debug, Default)]
struct Seen {
    requests: usize,
    by_event: BTreeMap<String, Vec<String>>,
    fail_first: usize,
}

async fn receive(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: String,
) -> StatusCode {
    let mut seen = seen.lock().expect("seen");
    seen.requests += 1;
    let event_id = headers
        .get("x-chaos-event-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    seen.by_event.entry(event_id).or_default().push(body);
    if seen.requests <= seen.fail_first {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::NO_CONTENT
    }
}

async fn receiver(fail_first: usize) -> (SocketAddr, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen {
        fail_first,
        ..Seen::default()
    }));
    let app = axum::Router::new()
        .route("/hook", post(receive))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen)
}

async fn add_webhook(store: &SqliteStore, id: &str, url: String, events: &[&str]) {
    store
        .execute_in_ledger::<PlatformBook>(
            "webhooks",
            PlatformCommand::AddWebhook {
                id: WebhookId::parse(id).expect("id"),
                url,
                // The receivers here listen on the loopback.
                allow_private: true,
                events: events.iter().map(|e| (*e).to_owned()).collect(),
                at: common::at(0),
            },
            &common::context(&format!("add-{id}")),
        )
        .await
        .expect("webhook added");
}

async fn run_lifecycle(store: &SqliteStore, id: &str) {
    for (i, command) in common::lifecycle(id, 1).into_iter().enumerate() {
        store
            .execute::<Experiment>(id, command, &common::context(&format!("{id}-{i}")))
            .await
            .expect("accepted");
    }
}

/// A quick policy for receivers on the loopback (which a deployment must allow explicitly).
fn fast() -> DeliveryPolicy {
    DeliveryPolicy {
        max_attempts: 4,
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(80),
        timeout: Duration::from_secs(2),
        concurrency: 8,
        allow_private_targets: true,
    }
}

/// Sends until nothing is pending or the deadline passes.
async fn drain(db: &Path, sender: &Sender) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        sender.send_due().await.expect("send pass");
        let pending = deliveries(db, Some("PENDING"), 1_000).expect("deliveries");
        if pending.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "still pending: {pending:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matching_events_are_delivered_at_least_once_with_retries_and_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = common::store_at(&db).await;
    let (addr, seen) = receiver(2).await;

    // Before the subscription: never delivered.
    run_lifecycle(&store, "before").await;
    add_webhook(
        &store,
        "pager",
        format!("http://{addr}/hook"),
        &["ExperimentStarted", "ExperimentCompleted"],
    )
    .await;
    run_lifecycle(&store, "after-1").await;
    run_lifecycle(&store, "after-2").await;

    let mut outbox = Outbox::open(&db).expect("outbox");
    let step = outbox.catch_up().expect("enqueue");
    assert_eq!(step.enqueued, 4, "started + completed for two experiments");
    let sender = Sender::new(&db, fast()).expect("sender");
    drain(&db, &sender).await;

    let all = deliveries(&db, None, 100).expect("deliveries");
    assert_eq!(all.len(), 4);
    assert!(all.iter().all(|d| d.status == "DELIVERED"), "{all:?}");
    assert!(all.iter().all(|d| d.aggregate_id.starts_with("after-")));
    let seen = seen.lock().expect("seen");
    assert_eq!(seen.by_event.len(), 4, "every event reached the receiver");
    assert_eq!(seen.requests, 4 + 2, "two refused attempts were retried");
    let body: serde_json::Value = serde_json::from_str(
        seen.by_event
            .values()
            .next()
            .and_then(|b| b.last())
            .expect("a body"),
    )
    .expect("json body");
    assert_eq!(body["webhook_id"], "pager");
    assert!(
        body["event_type"] == "ExperimentStarted" || body["event_type"] == "ExperimentCompleted"
    );
    assert_eq!(body["hash"].as_str().map(str::len), Some(64));
    drop(seen);

    let retried: i64 = rusqlite::Connection::open(&db)
        .expect("open")
        .query_row(
            "SELECT count(*) FROM notify_attempts WHERE status_code = 503",
            [],
            |r| r.get(0),
        )
        .expect("attempts");
    assert_eq!(retried, 2, "every attempt is recorded");

    // Re-reading the whole log (a lost position) enqueues nothing twice.
    rusqlite::Connection::open(&db)
        .expect("open")
        .execute("DELETE FROM notify_state", [])
        .expect("forget position");
    let again = Outbox::open(&db)
        .expect("outbox")
        .catch_up()
        .expect("enqueue");
    assert_eq!(again.enqueued, 0);
    assert!(again.read > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_receiver_fails_visibly_without_holding_up_the_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = common::store_at(&db).await;
    let (addr, seen) = receiver(0).await;
    // A port nobody listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    add_webhook(
        &store,
        "alive",
        format!("http://{addr}/hook"),
        &["ExperimentCompleted"],
    )
    .await;
    add_webhook(&store, "dead", format!("http://{dead}/hook"), &[]).await;
    run_lifecycle(&store, "exp").await;

    Outbox::open(&db)
        .expect("outbox")
        .catch_up()
        .expect("enqueue");
    let sender = Sender::new(&db, fast()).expect("sender");
    drain(&db, &sender).await;

    let alive = deliveries(&db, Some("DELIVERED"), 100).expect("deliveries");
    assert_eq!(alive.len(), 1);
    assert_eq!(alive[0].webhook_id, "alive");
    let failed = deliveries(&db, Some("FAILED"), 100).expect("deliveries");
    // The dead webhook wanted everything after its subscription: 11 experiment events.
    assert_eq!(failed.len(), 11, "{failed:?}");
    assert!(
        failed
            .iter()
            .all(|d| d.attempts == 4 && d.last_error.is_some())
    );
    assert_eq!(seen.lock().expect("seen").requests, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_webhook_gets_nothing_after_its_removal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = common::store_at(&db).await;
    let (addr, _seen) = receiver(0).await;
    add_webhook(
        &store,
        "temp",
        format!("http://{addr}/hook"),
        &["ExperimentCreated"],
    )
    .await;
    run_lifecycle(&store, "one").await;
    store
        .execute_in_ledger::<PlatformBook>(
            "webhooks",
            PlatformCommand::RemoveWebhook {
                id: WebhookId::parse("temp").expect("id"),
                at: common::at(100),
            },
            &common::context("remove-temp"),
        )
        .await
        .expect("removed");
    run_lifecycle(&store, "two").await;
    let mut outbox = Outbox::open(&db).expect("outbox");
    assert_eq!(outbox.catch_up().expect("enqueue").enqueued, 1);
    let queued = deliveries(&db, None, 10).expect("deliveries");
    assert_eq!(queued[0].aggregate_id, "one");
}

/// A deployment that allows no private targets reaches none, however the URL names it: by an
/// address in it (refused at once, without a request) or by a name that resolves to one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_at_a_private_address_is_never_reached_unless_allowed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = common::store_at(&db).await;
    let (addr, seen) = receiver(0).await;
    // Recorded while allowed (or before the check existed): the sender checks again.
    let spellings = [
        ("literal", format!("http://{addr}/hook")),
        (
            "mapped",
            format!("http://[::ffff:127.0.0.1]:{}/hook", addr.port()),
        ),
        ("named", format!("http://localhost:{}/hook", addr.port())),
    ];
    for (id, url) in &spellings {
        add_webhook(&store, id, url.clone(), &["ExperimentCreated"]).await;
    }
    run_lifecycle(&store, "probe").await;
    let mut outbox = Outbox::open(&db).expect("outbox");
    assert_eq!(outbox.catch_up().expect("enqueue").enqueued, 3);

    let strict = Sender::new(
        &db,
        DeliveryPolicy {
            allow_private_targets: false,
            ..fast()
        },
    )
    .expect("sender");
    drain(&db, &strict).await;
    assert_eq!(
        seen.lock().expect("seen").requests,
        0,
        "a private receiver was reached"
    );
    let failed = deliveries(&db, Some("FAILED"), 10).expect("deliveries");
    assert_eq!(failed.len(), 3, "{failed:?}");
    for d in &failed {
        let error = d.last_error.as_deref().unwrap_or_default();
        assert!(
            error.contains("webhooks may only reach public addresses"),
            "{}: {error}",
            d.webhook_id
        );
        if d.webhook_id != "named" {
            // An address refused from the URL alone is not retried.
            assert_eq!(d.attempts, 1, "{d:?}");
        }
    }
}

async fn redirect() -> StatusCode {
    StatusCode::TEMPORARY_REDIRECT
}

/// A receiver that answers with a redirect has not received the delivery: the sender does not
/// follow it (it could lead anywhere, the metadata service included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_is_a_failed_attempt_and_is_not_followed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = common::store_at(&db).await;
    let (target, seen) = receiver(0).await;
    let location = format!("http://{target}/hook");
    let app = axum::Router::new().route(
        "/hook",
        post(move || {
            let location = location.clone();
            async move { (redirect().await, [("location", location)]) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let redirector = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    add_webhook(
        &store,
        "moved",
        format!("http://{redirector}/hook"),
        &["ExperimentCreated"],
    )
    .await;
    run_lifecycle(&store, "one").await;
    let mut outbox = Outbox::open(&db).expect("outbox");
    assert_eq!(outbox.catch_up().expect("enqueue").enqueued, 1);
    let sender = Sender::new(&db, fast()).expect("sender");
    drain(&db, &sender).await;

    assert_eq!(
        seen.lock().expect("seen").requests,
        0,
        "the redirect was followed"
    );
    let failed = deliveries(&db, Some("FAILED"), 10).expect("deliveries");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].last_status_code, Some(307));
    assert!(
        failed[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("redirects are not followed")),
        "{failed:?}"
    );
}

/// What a signing receiver saw: the signature header and the raw body of each request.
type Signed = Arc<Mutex<Vec<(Option<String>, String)>>>;

async fn keep_signed(State(seen): State<Signed>, headers: HeaderMap, body: String) -> StatusCode {
    let signature = headers
        .get("x-chaos-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    seen.lock().expect("seen").push((signature, body));
    StatusCode::NO_CONTENT
}

/// Checks a signature header as a receiver would, from docs/WEBHOOKS.md alone: recompute the
/// HMAC over `<t>.<raw body>` and compare, and refuse an old `t`.
fn verify_signature(header: &str, body: &str, secret: &str) -> Result<(), String> {
    use hmac::Mac;
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<u64>().ok(),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (t, v1) = t.zip(v1).ok_or("malformed header")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    if now.abs_diff(t) > 300 {
        return Err(format!("timestamp {t} is more than five minutes from now"));
    }
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).map_err(|e| e.to_string())?;
    mac.update(format!("{t}.{body}").as_bytes());
    mac.verify_slice(&v1)
        .map_err(|_| "the signature does not match".to_owned())
}

/// Every delivery of a webhook with a secret is signed, and the signature proves the body:
/// a receiver holding the secret accepts it, one holding another secret (or a changed body)
/// does not. A webhook whose secret was never issued sends no signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_with_their_webhooks_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("chaos.db");
    let (store, _pool) = common::store_at(&db).await;
    let seen: Signed = Arc::default();
    let app = axum::Router::new()
        .route("/hook", post(keep_signed))
        .with_state(Arc::clone(&seen));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    add_webhook(
        &store,
        "signed",
        format!("http://{addr}/hook"),
        &["ExperimentCreated"],
    )
    .await;
    add_webhook(
        &store,
        "older",
        format!("http://{addr}/hook"),
        &["ExperimentCreated"],
    )
    .await;
    let issue = || {
        let secret = draw_secret().expect("a secret");
        keep_secret(&db, "signed", &secret).expect("kept");
        secret
    };
    let first = issue();
    let secret = issue();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 64,
        "{secret}"
    );
    assert_ne!(first, secret, "a secret issued anew replaces the old one");
    run_lifecycle(&store, "one").await;
    let mut outbox = Outbox::open(&db).expect("outbox");
    assert_eq!(outbox.catch_up().expect("enqueue").enqueued, 2);
    let sender = Sender::new(&db, fast()).expect("sender");
    drain(&db, &sender).await;

    let seen = seen.lock().expect("seen").clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let signed: Vec<_> = seen.iter().filter(|(s, _)| s.is_some()).collect();
    assert_eq!(
        signed.len(),
        1,
        "only the webhook with a secret signs: {seen:?}"
    );
    let (header, body) = (signed[0].0.as_deref().unwrap_or_default(), &signed[0].1);
    assert_eq!(verify_signature(header, body, &secret), Ok(()));
    assert!(
        verify_signature(header, body, &first).is_err(),
        "the old secret still verifies"
    );
    let changed = body.replacen("ExperimentCreated", "ExperimentStarted", 1);
    assert!(
        verify_signature(header, &changed, &secret).is_err(),
        "a changed body verifies"
    );
}

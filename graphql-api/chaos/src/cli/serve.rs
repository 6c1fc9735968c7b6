//! `chaos serve`: the embedded platform, or the API of a platform deployed on AWS, and how it
//! stops.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;
use command_lambdas::clock::SystemClock;
use demo_fleet::LocalFleets;
use domain::platform::Concern;
use embedded_read::notify::{DeliveryPolicy, Outbox, Sender};
use embedded_read::projector::{IDLE_POLL, Projector};
use embedded_write::sqlite::{OpenMode, open};
use graphql_api::backend::aws::AwsBackend;
use graphql_api::backend::embedded::lease::Lease;
use graphql_api::backend::embedded::{EmbeddedBackend, engine};
use graphql_api::http::{AppState, router};
use graphql_api::identity::first_admin::FirstAdmin;

use super::access::owner_only;
use super::{CliError, service_over};
use crate::fleet_args::FleetArgs;

/// Who may call `chaos serve`, and how often: the credentials it accepts besides API keys
/// and its own users' tokens, and the rate limit.
#[derive(Debug, Clone, Args)]
pub(crate) struct IdentityArgs {
    /// Requests per second each caller may send on average (twice that in a burst); 0: no
    /// limit.
    #[arg(long, env = "CHAOS_RATE_LIMIT", default_value_t = graphql_api::limits::DEFAULT_PER_SECOND)]
    pub(crate) rate_limit: u32,
    /// Life of an access token of the embedded identity provider, in seconds.
    #[arg(long, env = "CHAOS_ACCESS_TOKEN_TTL_SECS", default_value_t = 900)]
    access_token_ttl_secs: u64,
    /// Also accept tokens of this Cognito user pool (its id, e.g. eu-west-1_AbCdEf123).
    #[arg(
        long,
        env = "CHAOS_COGNITO_USER_POOL_ID",
        requires = "cognito_client_id"
    )]
    cognito_user_pool_id: Option<String>,
    /// The Cognito app client whose tokens are accepted.
    #[arg(
        long,
        env = "CHAOS_COGNITO_CLIENT_ID",
        requires = "cognito_user_pool_id"
    )]
    cognito_client_id: Option<String>,
    /// The user pool's region.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    cognito_region: String,
    /// Where the user pool's keys are served (default: its issuer's /.well-known/jwks.json).
    #[arg(long, env = "CHAOS_COGNITO_JWKS_URL")]
    cognito_jwks_url: Option<String>,
    /// Where the dashboard sends people's Cognito sign-in (default:
    /// https://cognito-idp.<region>.amazonaws.com/); it is allowed in the dashboard's
    /// Content-Security-Policy.
    #[arg(long, env = "CHAOS_COGNITO_SIGN_IN_ENDPOINT")]
    cognito_sign_in_endpoint: Option<String>,
}

impl IdentityArgs {
    /// The verifiers to trust: the embedded identity provider over `store` (its pool and
    /// path; none on AWS), and the Cognito user pool if one is named.
    async fn authenticator(
        &self,
        store: Option<(sqlx::SqlitePool, &Path)>,
    ) -> Result<graphql_api::identity::Authenticator, CliError> {
        use graphql_api::identity::cognito::{Cognito, CognitoConfig};
        use graphql_api::identity::local::{LocalIssuer, TokenPolicy, key_file};
        let policy = TokenPolicy {
            access_ttl: std::time::Duration::from_secs(self.access_token_ttl_secs.max(1)),
            ..TokenPolicy::default()
        };
        let local = match store {
            Some((pool, db)) => Some(LocalIssuer::open(pool, &key_file(db), policy).await?),
            None => None,
        };
        let cognito = match (&self.cognito_user_pool_id, &self.cognito_client_id) {
            (Some(user_pool_id), Some(client_id)) => {
                let cognito = Cognito::new(&CognitoConfig {
                    user_pool_id: user_pool_id.clone(),
                    region: self.cognito_region.clone(),
                    client_id: client_id.clone(),
                    jwks_url: self.cognito_jwks_url.clone(),
                    sign_in_endpoint: self.cognito_sign_in_endpoint.clone(),
                })?;
                tracing::info!(issuer = cognito.issuer(), "accepting Cognito tokens");
                Some(Arc::new(cognito))
            }
            _ => None,
        };
        Ok(graphql_api::identity::Authenticator {
            local,
            cognito,
            first_admin: None,
        })
    }
}

/// `chaos serve --aws`: the API of a platform deployed on AWS.
#[derive(Debug, Clone, Args)]
pub(crate) struct AwsArgs {
    /// Serve the API of the platform on AWS instead of the store file: commands through
    /// dynamo-es into the events table and the workflow in Step Functions, reads from the
    /// read-model table, live updates from the events table's stream. Credentials and region
    /// come from the standard AWS environment. No demo fleet, projector or workflow runs here
    /// (the Lambdas do that), and no one signs in here: people use the Cognito user pool
    /// (`--cognito-user-pool-id`), scripts API keys.
    #[arg(long)]
    pub(crate) aws: bool,
    /// The dynamo-es events table (with its stream, NEW_IMAGE).
    #[arg(long, env = "EVENTS_TABLE")]
    events_table: Option<String>,
    /// The read-model table the projection Lambda keeps.
    #[arg(long, env = "VIEWS_TABLE")]
    views_table: Option<String>,
    /// The experiment workflow's state machine.
    #[arg(long, env = "STATE_MACHINE_ARN")]
    state_machine_arn: Option<String>,
}

impl AwsArgs {
    fn resources(&self) -> Result<graphql_api::backend::aws::AwsResources, CliError> {
        let need = |value: &Option<String>, flag: &str, env: &str| {
            value.clone().ok_or_else(|| {
                CliError::Usage(format!(
                    "--aws needs {flag} (or {env}): the name of the {}",
                    match flag {
                        "--events-table" => "events table",
                        "--views-table" => "read-model table",
                        _ => "experiment workflow's state machine (its ARN)",
                    }
                ))
            })
        };
        Ok(graphql_api::backend::aws::AwsResources {
            events_table: need(&self.events_table, "--events-table", "EVENTS_TABLE")?,
            views_table: need(&self.views_table, "--views-table", "VIEWS_TABLE")?,
            state_machine_arn: need(
                &self.state_machine_arn,
                "--state-machine-arn",
                "STATE_MACHINE_ARN",
            )?,
        })
    }
}

pub(crate) async fn serve(
    db: &Path,
    addr: SocketAddr,
    take_over: bool,
    fleet: &FleetArgs,
    identity: &IdentityArgs,
    limits: graphql_api::limits::Limits,
    stopped: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CliError> {
    let pool = open(db, OpenMode::CreateIfMissing).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| CliError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(CliError::Serve)?;
    // Only the holder of the store's lease runs its workflow and fleet: none is started
    // before it is held.
    let lease = Arc::new(Lease::acquire(pool.clone(), local, take_over).await?);
    // Renewed until the server stops; lost to another server, it stops the server.
    let lost = Arc::new(AtomicBool::new(false));
    let stopped = {
        let (lost, lease) = (Arc::clone(&lost), Arc::clone(&lease));
        async move {
            tokio::select! {
                () = stopped => {}
                () = lease.keep() => {
                    tracing::error!("another chaos serve took over this store: stopping");
                    lost.store(true, Ordering::Relaxed);
                }
            }
        }
    };
    let clock: Arc<SystemClock> = Arc::new(SystemClock);
    let fleets = fleet.start(clock.clone()).await?;
    for fleet in fleets.fleets() {
        eprintln!(
            "chaos: demo fleet {}: {} workers behind http://{}",
            fleet.name(),
            fleet.status().desired,
            fleet.balancer()
        );
    }
    let mut auth = identity.authenticator(Some((pool.clone(), db))).await?;
    owner_only(db)?;
    let first_admin_code = first_admin(&pool, &mut auth).await?;
    let allow_private_targets = limits.private_webhook_targets;
    let (backend, workflows) =
        EmbeddedBackend::start(db, pool.clone(), &fleets, clock.clone()).await?;
    let state = AppState::new(Arc::new(backend), fleets.clone(), auth, limits);
    tracing::info!(db = %db.display(), "event store open");

    let followers = LogFollowers::start(db, allow_private_targets)?;

    // Experiments run here, whoever started them; runs left running are resumed.
    let (stop_following, following_stopped) = tokio::sync::watch::channel(false);
    let following = tokio::spawn(engine::follow(
        workflows,
        fleets.clone(),
        db.to_owned(),
        clock,
        following_stopped,
    ));

    announce(local, first_admin_code.as_deref());
    graphql_api::serve::serve(listener, router(state), stopped).await;
    let _ = stop_following.send(true);
    if following.await.is_err() {
        tracing::error!("the workflow runner's loop panicked");
    }
    for fleet in fleets.fleets() {
        fleet.stop();
    }
    followers.stop().await;
    if lost.load(Ordering::Relaxed) {
        pool.close().await;
        return Err(CliError::LeaseLost);
    }
    if let Err(e) = lease.release().await {
        tracing::warn!(error = %e, "cannot give up the store's lease: it runs out by itself");
    }
    pool.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// A store no one can sign in to yet gets a one-time code that makes its first administrator:
/// `auth` accepts it, and the code is returned to be shown.
async fn first_admin(
    pool: &sqlx::SqlitePool,
    auth: &mut graphql_api::identity::Authenticator,
) -> Result<Option<String>, CliError> {
    let users = service_over(pool.clone())
        .platform_of(&[Concern::Users])
        .await?
        .aggregate;
    if !users.users().is_empty() {
        return Ok(None);
    }
    let (first_admin, code) = FirstAdmin::draw().map_err(|e| CliError::Task(e.to_string()))?;
    auth.first_admin = Some(Arc::new(first_admin));
    Ok(Some(code))
}

/// Says where the server listens (scripts and tests read this line to find the port when
/// binding port 0), and how to make the first administrator when no one can sign in yet.
fn announce(local: SocketAddr, first_admin_code: Option<&str>) {
    eprintln!("chaos: listening on http://{local}");
    if let Some(code) = first_admin_code {
        eprintln!(
            "chaos: no one can sign in yet. Create the first administrator at\n\
             chaos:   http://{local}/#first-admin={code}\n\
             chaos: (the code works once, while this server runs; or: chaos user add NAME --role ADMIN)"
        );
    }
}

/// What follows the log besides the workflow: the read models and the webhook outbox on
/// threads of their own (SQLite work is blocking), and the webhook sender as a task, so a slow
/// receiver holds up nothing else.
struct LogFollowers {
    stop: Arc<AtomicBool>,
    threads: [std::thread::JoinHandle<()>; 2],
    stop_sending: tokio::sync::oneshot::Sender<()>,
    sending: tokio::task::JoinHandle<()>,
}

impl LogFollowers {
    fn start(db: &Path, allow_private_targets: bool) -> Result<Self, CliError> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut projector = Projector::open(db, None)?;
        let mut outbox = Outbox::open(db)?;
        let sender = Sender::new(
            db,
            DeliveryPolicy {
                allow_private_targets,
                ..DeliveryPolicy::default()
            },
        )?;
        let spawn = |name: &str, work: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(work)
                .map_err(|e| CliError::Task(e.to_string()))
        };
        let threads = [
            spawn("projector", {
                let stop = Arc::clone(&stop);
                Box::new(move || projector.run(&stop, IDLE_POLL, |_| {}))
            })?,
            spawn("webhook-outbox", {
                let stop = Arc::clone(&stop);
                Box::new(move || outbox.run(&stop, IDLE_POLL))
            })?,
        ];
        let (stop_sending, sending_stopped) = tokio::sync::oneshot::channel::<()>();
        let sending = tokio::spawn(async move {
            sender
                .run(std::time::Duration::from_millis(200), async {
                    let _ = sending_stopped.await;
                })
                .await;
        });
        Ok(Self {
            stop,
            threads,
            stop_sending,
            sending,
        })
    }

    /// Stops them all and waits for them.
    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.stop_sending.send(());
        if self.sending.await.is_err() {
            tracing::error!("webhook sender panicked");
        }
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a background thread panicked");
            }
        }
    }
}

/// `chaos serve --aws`: the API over the platform deployed on AWS.
pub(crate) async fn serve_aws(
    addr: SocketAddr,
    aws: &AwsArgs,
    identity: &IdentityArgs,
    limits: graphql_api::limits::Limits,
    stopped: impl Future<Output = ()> + Send + 'static,
) -> Result<(), CliError> {
    let resources = aws.resources()?;
    let auth = identity.authenticator(None).await?;
    if auth.cognito.is_none() {
        tracing::warn!("no Cognito user pool is trusted: only API keys authenticate");
    }
    let metrics = command_lambdas::lambda::metrics().map_err(|e| CliError::Usage(e.to_string()))?;
    let config = aws_config::load_from_env().await;
    let backend = AwsBackend::start(&config, &resources, metrics).await?;
    let state = AppState::new(Arc::new(backend), LocalFleets::default(), auth, limits);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| CliError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(CliError::Serve)?;
    tracing::info!(
        events = %resources.events_table,
        views = %resources.views_table,
        "serving the platform on AWS"
    );
    eprintln!("chaos: listening on http://{local}");
    graphql_api::serve::serve(listener, router(state), stopped).await;
    tracing::info!("stopped");
    Ok(())
}

/// A future that ends at SIGINT or SIGTERM, or (`stdin`) once standard input closes. The
/// handlers are installed when this is called, not when the future is first polled, so a
/// signal that arrives while the server is still starting stops it gracefully rather than
/// killing it.
pub(crate) fn shutdown_signal(
    stdin: bool,
) -> Result<impl Future<Output = ()> + Send + 'static, CliError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).ok();
    let mut terminate = signal(SignalKind::terminate()).ok();
    let closed = if stdin { Some(stdin_closed()?) } else { None };
    Ok(async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        let closed = async move {
            match closed {
                Some(closed) => {
                    let _ = closed.await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(interrupt.take()) => {},
            () = wait(terminate.take()) => {},
            () = closed => tracing::info!("standard input closed: stopping"),
        }
    })
}

/// Ends once standard input reaches its end or fails. It is read on a thread of its own, which
/// the process does not wait for when it ends for another reason (a blocking task of the
/// runtime would hold up its shutdown).
fn stdin_closed() -> Result<tokio::sync::oneshot::Receiver<()>, CliError> {
    let (closed, on_close) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("stdin-watch".to_owned())
        .spawn(move || {
            use std::io::Read;
            let mut stdin = std::io::stdin().lock();
            let mut buf = [0u8; 64];
            while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
            let _ = closed.send(());
        })
        .map_err(|e| CliError::Task(format!("cannot watch standard input: {e}")))?;
    Ok(on_close)
}

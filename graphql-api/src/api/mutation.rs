//! Commands, each through [`command_lambdas::command::handle`] as the caller's actor: the same
//! checks, outcomes and codes as the command Lambda. Each takes an optional `commandId`, the
//! idempotency key: the same command sent again with it is answered, not repeated; another
//! command sent with it is refused (`IDEMPOTENCY_KEY_REUSED`), never answered with the first
//! one's outcome.

use async_graphql::{Context, ErrorExtensions, ID, Json, Object, Result};
use command_lambdas::api_keys;
use command_lambdas::command::{Command, Request, Response};
use command_lambdas::service::ServiceError;
use command_lambdas::store::CommandOutcome;
use domain::Timestamp;
use domain::platform::Concern;
use domain::provenance::{CommandContext, Role, Source};
use domain::spec::{ExperimentSpec, ExperimentSpecInput};

use super::types::{
    CommandResult, IssuedApiKey, Me, Preferences, Session, TemplateNode, WebhookAdded,
    WebhookSecret,
};
use super::{ApiContext, Identity, coded, refusal, require, spec_argument, with_problems};
use crate::backend::IssueError;
use crate::identity::local::{AuthError, Tokens};
use crate::identity::user_actor;

/// The root of commands.
#[derive(Debug, Default)]
pub struct Mutation;

/// The context of a command the API writes itself, as `actor`.
fn context_of(actor: domain::provenance::Actor) -> Result<CommandContext> {
    let id = fresh_id();
    CommandContext::new(id.clone(), id, actor, Source::Api)
        .map_err(|e| coded("INVALID_INPUT", e.to_string()))
}

/// Now, RFC 3339.
fn rfc3339_now() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_unix_millis(millis).to_string()
}

/// A fresh idempotency key, for a command sent without one.
fn fresh_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Sends `command` as the caller (who must hold `needed`).
async fn send(
    ctx: &Context<'_>,
    needed: Role,
    command: Command,
    command_id: Option<String>,
) -> Result<CommandResult> {
    let actor = require(ctx, needed)?;
    let api = ctx.data::<ApiContext>()?;
    let request = Request {
        command,
        command_id: command_id.unwrap_or_else(fresh_id),
        correlation_id: None,
        actor,
        source: Source::Api,
    };
    let response = api.backend.command(request).await;
    answer(response)
}

/// What a platform command the API sends itself recorded, or its refusal as a coded error.
fn recorded(outcome: Result<CommandOutcome, ServiceError>) -> Result<CommandResult> {
    match outcome {
        Ok(outcome) => answer(Response::done(&outcome)),
        Err(e) => Err(refusal(&e)),
    }
}

/// Creates experiment `id` from `spec`, as the caller. Without an id, a create sent with an
/// idempotency key makes the experiment whose id derives from the caller and the key (so a
/// retry finds it); one without a key, a new UUIDv7.
async fn create(
    ctx: &Context<'_>,
    spec: ExperimentSpecInput,
    id: Option<ID>,
    command_id: Option<String>,
) -> Result<CommandResult> {
    let actor = require(ctx, Role::Operator)?;
    refuse_unobservable(ctx, &spec).await?;
    let experiment_id = match (id, &command_id) {
        (Some(id), _) => id.to_string(),
        (None, Some(key)) => command_lambdas::service::experiment_id_for(&actor.id, key),
        (None, None) => fresh_id(),
    };
    let command = Command::Create {
        experiment_id,
        spec,
    };
    send(ctx, Role::Operator, command, command_id).await
}

/// Refuses a spec whose stop conditions its target cannot observe (an error-rate limit on a
/// group whose traffic nothing measures), with their paths. A spec that does not parse is left
/// to the command, which reports every problem; a target that cannot be looked at now (a group
/// not created yet, an outage) is checked again before its run resolves its targets.
async fn refuse_unobservable(ctx: &Context<'_>, spec: &ExperimentSpecInput) -> Result<()> {
    let Ok(spec) = ExperimentSpec::parse(spec.clone()) else {
        return Ok(());
    };
    let api = ctx.data::<ApiContext>()?;
    match api.backend.unobservable(&spec).await {
        Ok(problems) if !problems.is_empty() => Err(with_problems(
            "INVALID_INPUT",
            format!(
                "spec: {}",
                domain::spec::SpecError {
                    problems: problems.clone()
                }
            ),
            &problems,
        )),
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::info!(target = %spec.target().key(), error = %e, "stop conditions not checked at create; the run checks them");
            Ok(())
        }
    }
}

/// Issues webhook `id` a new signing secret (see [`crate::backend::Backend::issue_webhook_secret`])
/// as a command of its own in `context`. `added` says the webhook was just added, so a failure
/// says it exists.
async fn signing_secret(
    api: &ApiContext,
    context: &CommandContext,
    id: String,
    added: bool,
) -> Result<WebhookSecret> {
    let context = context
        .follow_up(fresh_id())
        .map_err(|e| coded("INVALID_INPUT", e.to_string()))?;
    let issued = api
        .backend
        .issue_webhook_secret(&id, &context)
        .await
        .map_err(|e| {
            let then = if added {
                "the webhook is added, but its deliveries are not signed until a secret is issued with rotateWebhookSecret"
            } else {
                "issue one again with rotateWebhookSecret"
            };
            match e {
                IssueError::Refused(e) if !added => refusal(&e),
                e => coded("UNAVAILABLE", format!("{e} ({then})")),
            }
        })?;
    Ok(WebhookSecret {
        webhook_id: id,
        secret: issued.as_ref().map(|i| i.secret.clone()),
        fingerprint: issued.map(|i| i.fingerprint),
    })
}

/// A command's answer as the schema's result, or its refusal as a coded error.
fn answer(response: Response) -> Result<CommandResult> {
    if let Some(error) = &response.error {
        let retryable = error.retryable;
        return Err(
            with_problems(&error.code, error.message.clone(), &error.problems).extend_with(
                |_, e| {
                    e.set("retryable", retryable);
                },
            ),
        );
    }
    CommandResult::from_response(response).ok_or_else(|| {
        coded(
            "UNAVAILABLE",
            "the command was carried out but said nothing",
        )
    })
}

/// Unix seconds as RFC 3339.
fn rfc3339(secs: i64) -> String {
    Timestamp::from_unix_millis(secs.saturating_mul(1_000)).to_string()
}

/// A session's tokens as the schema's answer.
fn session(username: &str, role: Role, tokens: Tokens) -> Session {
    Session {
        access_token: tokens.access_token,
        access_token_expires_at: rfc3339(tokens.access_expires_at),
        refresh_token: tokens.refresh_token,
        refresh_token_expires_at: rfc3339(tokens.refresh_expires_at),
        user: Me {
            id: user_actor(username),
            role: role.as_str().to_owned(),
        },
    }
}

/// The embedded identity provider, or why there is none.
fn local_issuer(api: &ApiContext) -> Result<&crate::identity::local::LocalIssuer> {
    api.auth.local.as_ref().ok_or_else(|| {
        coded(
            "UNSUPPORTED",
            "this server signs no one in: people sign in with the Cognito user pool it trusts, \
             and send its token as `Authorization: Bearer <token>`",
        )
    })
}

/// An identity-provider failure as a coded error.
fn auth_error(e: AuthError) -> async_graphql::Error {
    match e {
        AuthError::BadCredentials | AuthError::Refused(_) => {
            coded("UNAUTHENTICATED", e.to_string())
        }
        AuthError::Password(_) => coded("INVALID_INPUT", e.to_string()),
        AuthError::Store(_) | AuthError::Issue(_) => {
            tracing::error!(error = %e, "the identity provider failed");
            coded("UNAVAILABLE", e.to_string())
        }
    }
}

#[Object]
impl Mutation {
    /// Signs in a user of the embedded identity provider (added with `chaos user add`). Open
    /// to anyone; a wrong name and a wrong password are refused alike (`UNAUTHENTICATED`).
    /// One sign-in per request; ten failed ones a minute from one address, in bursts of five
    /// (`RATE_LIMITED`), whatever the user name, so no one locks an account out.
    async fn login(
        &self,
        ctx: &Context<'_>,
        username: String,
        password: String,
    ) -> Result<Session> {
        let api = ctx.data::<ApiContext>()?;
        let scope = ctx.data::<crate::limits::RequestScope>()?;
        if !scope.password_check() {
            return Err(coded(
                "INVALID_INPUT",
                "one sign-in per request: send each login in a request of its own",
            ));
        }
        let source = scope.source();
        if let Err(wait) = api.limits.logins.take(&source, std::time::Instant::now()) {
            return Err(coded(
                "RATE_LIMITED",
                format!(
                    "too many sign-in attempts from {source}: try again in {} s",
                    wait.as_secs().saturating_add(1)
                ),
            ));
        }
        let local = local_issuer(api)?;
        let platform = api.platform(&[Concern::Users]).await?;
        let user = platform.user(&username).cloned();
        let tokens = local
            .login(&username, &password, user.is_some())
            .await
            .map_err(auth_error)?;
        // Only failures count against the source.
        api.limits.logins.refund(&source);
        let role = user.map_or(Role::Viewer, |u| u.role);
        Ok(session(&username, role, tokens))
    }

    /// Creates this server's first administrator and signs them in. Needs no credential but
    /// the one-time code the server printed in its console when it started on a store with no
    /// user (`/#first-admin=CODE`); works once, and only while there is no user. Sign-in
    /// limits apply: one per request, failures slowed per source.
    async fn set_up_first_admin(
        &self,
        ctx: &Context<'_>,
        code: String,
        username: String,
        password: String,
    ) -> Result<Session> {
        let api = ctx.data::<ApiContext>()?;
        let scope = ctx.data::<crate::limits::RequestScope>()?;
        if !scope.password_check() {
            return Err(coded(
                "INVALID_INPUT",
                "one sign-in per request: send each in a request of its own",
            ));
        }
        let source = scope.source();
        if let Err(wait) = api.limits.logins.take(&source, std::time::Instant::now()) {
            return Err(coded(
                "RATE_LIMITED",
                format!(
                    "too many sign-in attempts from {source}: try again in {} s",
                    wait.as_secs().saturating_add(1)
                ),
            ));
        }
        let local = local_issuer(api)?;
        let Some(first_admin) = &api.auth.first_admin else {
            return Err(coded(
                "REJECTED",
                "this server has its administrators: sign in, or ask one of them for an account",
            ));
        };
        let held = first_admin.hold().await;
        if !held.admits(&code) {
            return Err(coded(
                "UNAUTHENTICATED",
                "this set-up code is wrong or used: a server started on a store with no user \
                 prints its code in its console, once",
            ));
        }
        crate::identity::password::check_policy(&password)
            .map_err(|e| coded("INVALID_INPUT", e.to_string()))?;
        if !api.platform(&[Concern::Users]).await?.users().is_empty() {
            return Err(coded(
                "REJECTED",
                "this server has users already (added from the command line): sign in",
            ));
        }
        let actor = domain::provenance::Actor {
            id: user_actor(&username),
            role: Role::Admin,
        };
        let context = context_of(actor)?;
        // The password first: a user on record without one could not sign in, and would
        // close the set-up to everyone.
        local
            .set_password(&username, &password)
            .await
            .map_err(auth_error)?;
        let added = api
            .backend
            .commands()
            .add_user(&username, Role::Admin, &context)
            .await;
        if let Err(e) = added {
            if let Err(forgotten) = local.forget(&username).await {
                tracing::warn!(user = %username, error = %forgotten, "the password of a user not added stays stored");
            }
            return Err(refusal(&e));
        }
        held.redeem();
        api.limits.logins.refund(&source);
        tracing::info!(user = %username, "the first administrator was created");
        let tokens = local
            .login(&username, &password, true)
            .await
            .map_err(auth_error)?;
        Ok(session(&username, Role::Admin, tokens))
    }

    /// Trades a refresh token for a new access token and refresh token. Each refresh token
    /// works once: presented again, it ends its session.
    async fn refresh_session(&self, ctx: &Context<'_>, refresh_token: String) -> Result<Session> {
        let api = ctx.data::<ApiContext>()?;
        let local = local_issuer(api)?;
        let platform = api.platform(&[Concern::Users]).await?;
        let (username, tokens) = local
            .refresh(&refresh_token, |name| platform.user(name).is_some())
            .await
            .map_err(auth_error)?;
        let role = platform.user(&username).map_or(Role::Viewer, |u| u.role);
        Ok(session(&username, role, tokens))
    }

    /// Signs out: ends the caller's session (signed in with a token), or the session of
    /// `refreshToken`. Its access and refresh tokens are refused from now on. True when a
    /// session was named.
    async fn logout(&self, ctx: &Context<'_>, refresh_token: Option<String>) -> Result<bool> {
        let api = ctx.data::<ApiContext>()?;
        let local = local_issuer(api)?;
        let mut session = match ctx.data_opt::<Identity>() {
            Some(Identity::User { session, .. }) => Some(session.clone()),
            _ => None,
        };
        if let Some(token) = refresh_token {
            session = match local.session_of_refresh(&token).await.map_err(auth_error)? {
                Some(found) => Some(found),
                None if session.is_some() => session,
                None => return Err(coded("UNAUTHENTICATED", "the refresh token is unknown")),
            };
        }
        let Some(session) = session else {
            return Err(coded(
                "UNAUTHENTICATED",
                "no session: send the access token, or the refresh token to end",
            ));
        };
        local
            .revoke_session(&session, "signed out")
            .await
            .map_err(auth_error)?;
        Ok(true)
    }

    /// Creates an experiment from a spec (JSON, as `chaos experiment create` takes it). Its id
    /// is `id`; without one, it derives from the caller and `commandId` when given (so the
    /// create retried with the same `commandId` finds the experiment it made, and is answered
    /// `deduplicated`), else it is a new UUIDv7.
    async fn create_experiment(
        &self,
        ctx: &Context<'_>,
        spec: Json<serde_json::Value>,
        id: Option<ID>,
        command_id: Option<String>,
    ) -> Result<CommandResult> {
        let spec = spec_argument(spec.0)?;
        create(ctx, spec, id, command_id).await
    }

    /// Starts an experiment now. Refused, with nothing recorded, while any of its
    /// stop-condition alarms is not OK.
    async fn start_experiment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        command_id: Option<String>,
    ) -> Result<CommandResult> {
        let command = Command::Start {
            experiment_id: id.to_string(),
        };
        send(ctx, Role::Operator, command, command_id).await
    }

    /// Plans an experiment's start at `startAt` (RFC 3339).
    async fn schedule_experiment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        start_at: String,
        command_id: Option<String>,
    ) -> Result<CommandResult> {
        let start_at: Timestamp = start_at.parse().map_err(|e| {
            coded(
                "INVALID_INPUT",
                format!("startAt {start_at:?} is not an RFC 3339 time: {e}"),
            )
        })?;
        let command = Command::Schedule {
            experiment_id: id.to_string(),
            start_at,
        };
        send(ctx, Role::Operator, command, command_id).await
    }

    /// Stops a running experiment: it is rolled back and ends stopped.
    async fn stop_experiment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
        command_id: Option<String>,
    ) -> Result<CommandResult> {
        let command = Command::Stop {
            experiment_id: id.to_string(),
            reason,
        };
        send(ctx, Role::Operator, command, command_id).await
    }

    /// Cancels an experiment that has not started.
    async fn cancel_experiment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        reason: String,
        command_id: Option<String>,
    ) -> Result<CommandResult> {
        let command = Command::Cancel {
            experiment_id: id.to_string(),
            reason,
        };
        send(ctx, Role::Operator, command, command_id).await
    }

    /// Archives an experiment that has ended.
    async fn archive_experiment(
        &self,
        ctx: &Context<'_>,
        id: ID,
        command_id: Option<String>,
    ) -> Result<CommandResult> {
        let command = Command::Archive {
            experiment_id: id.to_string(),
        };
        send(ctx, Role::Operator, command, command_id).await
    }

    /// Halts the platform (ADMIN): every running experiment is stopped and no experiment
    /// starts until the halt is lifted.
    async fn halt_all(
        &self,
        ctx: &Context<'_>,
        reason: String,
        command_id: Option<String>,
    ) -> Result<CommandResult> {
        send(ctx, Role::Admin, Command::Halt { reason }, command_id).await
    }

    /// Lifts the halt (ADMIN).
    async fn unhalt_all(
        &self,
        ctx: &Context<'_>,
        command_id: Option<String>,
    ) -> Result<CommandResult> {
        send(ctx, Role::Admin, Command::Unhalt, command_id).await
    }

    /// Replaces the platform-wide limits (ADMIN).
    async fn update_config(
        &self,
        ctx: &Context<'_>,
        max_targets_per_run: u32,
        max_duration_secs: u32,
    ) -> Result<CommandResult> {
        let actor = require(ctx, Role::Admin)?;
        let context = context_of(actor)?;
        let api = ctx.data::<ApiContext>()?;
        let config = domain::platform::PlatformConfig {
            max_targets_per_run,
            max_duration_secs,
        };
        recorded(api.backend.commands().update_config(config, &context).await)
    }

    /// Subscribes a webhook (ADMIN) to `events` (event types; none: every event). Its id is
    /// `id` or a new UUIDv7. `url` must reach a public address: loopback, private, link-local
    /// (the cloud metadata service) and other non-public addresses are refused, in any
    /// spelling, unless the server was started with `--allow-private-webhook-targets`.
    async fn add_webhook(
        &self,
        ctx: &Context<'_>,
        url: String,
        #[graphql(default)] events: Vec<String>,
        id: Option<ID>,
    ) -> Result<WebhookAdded> {
        let actor = require(ctx, Role::Admin)?;
        let context = context_of(actor)?;
        let api = ctx.data::<ApiContext>()?;
        let id = id.map_or_else(fresh_id, |id| id.to_string());
        let allow_private = api.limits.private_webhook_targets;
        let result = recorded(
            api.backend
                .commands()
                .add_webhook(&id, &url, events, allow_private, &context)
                .await,
        )?;
        Ok(WebhookAdded {
            result,
            signing: signing_secret(api, &context, id, true).await?,
        })
    }

    /// Issues webhook `id` a new signing secret (ADMIN), shown this once; the old one signs
    /// nothing from now on. For a secret that leaked, or a webhook added before deliveries
    /// were signed. The log records it (`WebhookSecretIssued`) by its fingerprint.
    async fn rotate_webhook_secret(&self, ctx: &Context<'_>, id: ID) -> Result<WebhookSecret> {
        let actor = require(ctx, Role::Admin)?;
        let api = ctx.data::<ApiContext>()?;
        // Embedded, the command refuses an unknown webhook too; on AWS nothing is issued or
        // recorded (no deliveries are sent there yet), so only this says it does not exist.
        let platform = api.platform(&[Concern::Webhooks]).await?;
        if !platform
            .webhooks()
            .keys()
            .any(|w| w.as_str() == id.as_str())
        {
            return Err(coded("NOT_FOUND", format!("no webhook {}", id.as_str())));
        }
        signing_secret(api, &context_of(actor)?, id.to_string(), false).await
    }

    /// Removes a webhook subscription (ADMIN).
    async fn remove_webhook(&self, ctx: &Context<'_>, id: ID) -> Result<CommandResult> {
        let actor = require(ctx, Role::Admin)?;
        let context = context_of(actor)?;
        let api = ctx.data::<ApiContext>()?;
        recorded(
            api.backend
                .commands()
                .remove_webhook(id.as_str(), &context)
                .await,
        )
    }

    /// Saves a template (OPERATOR): `spec` (JSON, as `createExperiment` takes it) under
    /// `name`, replacing template `id` if it exists. The spec must be valid.
    async fn save_template(
        &self,
        ctx: &Context<'_>,
        name: String,
        spec: Json<serde_json::Value>,
        id: Option<ID>,
    ) -> Result<TemplateNode> {
        let actor = require(ctx, Role::Operator)?;
        let spec = spec_argument(spec.0)?;
        let id = id.map_or_else(fresh_id, |id| id.to_string());
        let now = rfc3339_now();
        let api = ctx.data::<ApiContext>()?;
        api.backend
            .settings()
            .save_template(&id, &name, spec, &actor.id, &now)
            .await
            .map(TemplateNode::from)
            .map_err(|e| coded(e.code(), e.to_string()))
    }

    /// Deletes a template (OPERATOR). Experiments started from it keep their spec.
    async fn delete_template(&self, ctx: &Context<'_>, id: ID) -> Result<bool> {
        require(ctx, Role::Operator)?;
        let api = ctx.data::<ApiContext>()?;
        api.backend
            .settings()
            .delete_template(id.as_str())
            .await
            .map(|()| true)
            .map_err(|e| coded(e.code(), e.to_string()))
    }

    /// Creates an experiment from a template's spec (OPERATOR), under `name` if given. The
    /// experiment records the whole spec: later changes to the template do not touch it.
    async fn create_experiment_from_template(
        &self,
        ctx: &Context<'_>,
        template_id: ID,
        name: Option<String>,
        id: Option<ID>,
        command_id: Option<String>,
    ) -> Result<CommandResult> {
        require(ctx, Role::Operator)?;
        let api = ctx.data::<ApiContext>()?;
        let template = api
            .backend
            .settings()
            .template(template_id.as_str())
            .await
            .map_err(|e| coded(e.code(), e.to_string()))?;
        let mut spec = template.spec;
        if let Some(name) = name {
            spec.name = name;
        }
        create(ctx, spec, id, command_id).await
    }

    /// Saves the caller's preferences.
    async fn update_preferences(
        &self,
        ctx: &Context<'_>,
        preferences: Preferences,
    ) -> Result<Preferences> {
        let actor = require(ctx, Role::Viewer)?;
        let api = ctx.data::<ApiContext>()?;
        let preferences = crate::settings::Preferences::from(preferences);
        api.backend
            .settings()
            .save_preferences(&actor.id, &preferences, &rfc3339_now())
            .await
            .map_err(|e| coded(e.code(), e.to_string()))?;
        Ok(preferences.into())
    }

    /// Issues an API key (ADMIN). The answer holds its secret, shown this once.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        name: String,
        role: String,
        id: Option<ID>,
    ) -> Result<IssuedApiKey> {
        let actor = require(ctx, Role::Admin)?;
        let role: Role =
            serde_json::from_value(serde_json::Value::String(role.clone())).map_err(|_| {
                coded(
                    "INVALID_INPUT",
                    format!("role {role:?} is not ADMIN, OPERATOR or VIEWER"),
                )
            })?;
        let id = id.map_or_else(fresh_id, |id| id.to_string());
        let context = context_of(actor)?;
        let api = ctx.data::<ApiContext>()?;
        let issued = api
            .backend
            .commands()
            .issue_api_key(&id, &name, role, &context)
            .await
            .map_err(|e| match e {
                api_keys::KeyError::Service(e) => refusal(&e),
                other => coded("UNAVAILABLE", other.to_string()),
            })?;
        Ok(IssuedApiKey {
            id: issued.id,
            secret: issued.secret,
            role: role.as_str().to_owned(),
        })
    }

    /// Revokes an API key (ADMIN): it authenticates nothing from the next request on.
    async fn revoke_api_key(&self, ctx: &Context<'_>, id: ID) -> Result<CommandResult> {
        let actor = require(ctx, Role::Admin)?;
        let context = context_of(actor)?;
        let api = ctx.data::<ApiContext>()?;
        recorded(
            api.backend
                .commands()
                .revoke_api_key(id.as_str(), &context)
                .await,
        )
    }
}

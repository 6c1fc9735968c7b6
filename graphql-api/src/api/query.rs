//! Reads: the read models (experiments, their timelines, the audit log, analytics), the
//! audit log's chain checked against the log itself, the platform's state and the caller.
//! Every one needs at least the VIEWER role.

use async_graphql::{Context, ID, Json, Object, Result};
use command_lambdas::clock::{Clock, SystemClock};
use domain::platform::Concern;
use domain::provenance::Role;
use domain::spec::{ExperimentId, ExperimentSpec};
use projection_lambdas::reads::{AuditFilter, ExperimentFilter};

use super::types::CognitoSignInNode;
use super::types::{
    ApiKeyNode, AuditChainStatus, AuditEntryNode, AuditFilterInput, AuditOrder,
    ExperimentDetailNode, ExperimentFilterInput, ExperimentPage, Me, PlatformConfigNode,
    PlatformHealth, Preferences, RunResultPage, SignInOptions, TargetPreview, TemplateNode,
    WebhookNode,
};
use super::{ApiContext, MAX_PAGE, coded, require, spec_argument, with_problems};

/// The longest search text: no name is longer, so a longer text matches nothing.
const MAX_SEARCH_CHARS: usize = domain::limits::MAX_NAME_CHARS;
use crate::backend::ReadFailure;
use crate::chain::ChainError;

/// The root of reads.
#[derive(Debug, Default)]
pub struct Query;

/// A failed read as a coded error.
fn read_error(e: ReadFailure) -> async_graphql::Error {
    match e {
        ReadFailure::BadCursor(_) => coded("INVALID_INPUT", e.to_string()),
        ReadFailure::Unavailable(_) => coded("UNAVAILABLE", e.to_string()),
    }
}

/// A page size: `first`, within 1..=[`MAX_PAGE`].
fn page_size(first: i32) -> Result<usize> {
    usize::try_from(first)
        .ok()
        .filter(|n| (1..=MAX_PAGE).contains(n))
        .ok_or_else(|| {
            coded(
                "INVALID_INPUT",
                format!("first must be between 1 and {MAX_PAGE} (got {first})"),
            )
        })
}

#[Object]
impl Query {
    /// Who the caller is: the actor its commands are recorded with.
    async fn me(&self, ctx: &Context<'_>) -> Result<Me> {
        let actor = require(ctx, Role::Viewer)?;
        Ok(Me {
            id: actor.id,
            role: actor.role.as_str().to_owned(),
        })
    }

    /// How to sign in to this server; asked before signing in, so it needs no credential.
    async fn sign_in_options(&self, ctx: &Context<'_>) -> Result<SignInOptions> {
        let auth = &ctx.data::<ApiContext>()?.auth;
        let cognito = auth.cognito.as_ref().map(|c| {
            let sign_in = c.sign_in();
            CognitoSignInNode {
                endpoint: sign_in.endpoint.clone(),
                region: sign_in.region.clone(),
                user_pool_id: sign_in.user_pool_id.clone(),
                client_id: sign_in.client_id.clone(),
            }
        });
        let method = match (&auth.local, &cognito) {
            (Some(_), _) => "PASSWORD",
            (None, Some(_)) => "COGNITO",
            (None, None) => "NONE",
        };
        // Pending until used, or until someone is added another way (`chaos user add`).
        let first_admin = match &auth.first_admin {
            Some(first) if first.pending().await => ctx
                .data::<ApiContext>()?
                .platform(&[Concern::Users])
                .await?
                .users()
                .is_empty(),
            _ => false,
        };
        Ok(SignInOptions {
            method: method.to_owned(),
            cognito,
            first_admin,
        })
    }

    /// Experiments, newest first, `first` at a time after the cursor `after`.
    async fn experiments(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] filter: ExperimentFilterInput,
        #[graphql(default = 50)] first: i32,
        after: Option<String>,
    ) -> Result<ExperimentPage> {
        require(ctx, Role::Viewer)?;
        let limit = page_size(first)?;
        if let Some(search) = &filter.search
            && search.chars().count() > MAX_SEARCH_CHARS
        {
            return Err(coded(
                "INVALID_INPUT",
                format!(
                    "filter.search: at most {MAX_SEARCH_CHARS} characters (got {}): names have at most {}",
                    search.chars().count(),
                    domain::limits::MAX_NAME_CHARS
                ),
            ));
        }
        let filter = ExperimentFilter {
            status: filter.status,
            target: filter.target,
            created_from: filter.created_from,
            created_to: filter.created_to,
            search: filter.search,
            include_archived: filter.include_archived,
        };
        let page = ctx
            .data::<ApiContext>()?
            .backend
            .experiments(filter, after, limit)
            .await
            .map_err(read_error)?;
        Ok(ExperimentPage {
            items: page.items.into_iter().map(Into::into).collect(),
            next_cursor: page.next,
        })
    }

    /// One experiment with its timeline; null when there is none of this id.
    async fn experiment(&self, ctx: &Context<'_>, id: ID) -> Result<Option<ExperimentDetailNode>> {
        require(ctx, Role::Viewer)?;
        let id = id.to_string();
        let detail = ctx
            .data::<ApiContext>()?
            .backend
            .experiment(id)
            .await
            .map_err(read_error)?;
        Ok(detail.and_then(|d| ExperimentDetailNode::new(d.record, d.timeline)))
    }

    /// The audit log: every recorded event, newest first (or, with `order: OLDEST_FIRST`, in
    /// recording order), `first` at a time after the cursor `after` in that order
    /// (`recordedAt|streamId|sequence` of the last entry of the previous page).
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(default)] filter: AuditFilterInput,
        #[graphql(default)] order: AuditOrder,
        #[graphql(default = 100)] first: i32,
        after: Option<String>,
    ) -> Result<Vec<AuditEntryNode>> {
        require(ctx, Role::Viewer)?;
        let limit = page_size(first)?;
        let after = match after {
            None => None,
            Some(cursor) => Some(parse_audit_cursor(&cursor)?),
        };
        let filter = AuditFilter {
            actor: filter.actor,
            aggregate_id: filter.experiment_id,
            from: filter.from,
            to: filter.to,
            newest_first: order == AuditOrder::NewestFirst,
        };
        let entries = ctx
            .data::<ApiContext>()?
            .backend
            .audit_log(filter, after, limit)
            .await
            .map_err(read_error)?;
        Ok(entries.into_iter().map(Into::into).collect())
    }

    /// Whether the audit log's hash chains are intact, checked now with the checks `chaos
    /// audit verify` makes: the stream of experiment `experimentId` (or a book of one of the
    /// platform's ledgers, `halt-switch.1`) when given, else every stream (`NOT_FOUND` for a
    /// stream without events). Any signed-in role may ask, once per request. Cost: one stream
    /// is one indexed read of its events; the whole log reads every event once, streamed
    /// (memory grows with the number of streams, not of events), one check at a time per
    /// server. On AWS it reads the events
    /// table as `chaos audit verify --dynamo-table` does: a `Scan` of its keys for the whole
    /// log, then a `Query` per stream.
    async fn audit_chain(
        &self,
        ctx: &Context<'_>,
        experiment_id: Option<ID>,
    ) -> Result<AuditChainStatus> {
        require(ctx, Role::Viewer)?;
        if !ctx.data::<crate::limits::RequestScope>()?.chain_check() {
            return Err(coded(
                "INVALID_INPUT",
                "one auditChain per request: it may read the whole log",
            ));
        }
        let stream = experiment_id.map(|id| {
            let id = id.to_string();
            let kind = if domain::platform::is_platform_stream(&id) {
                "Platform"
            } else {
                "Experiment"
            };
            (kind.to_owned(), id)
        });
        let backend = &ctx.data::<ApiContext>()?.backend;
        let report = crate::chain::check_chain(backend.as_ref(), stream.clone())
            .await
            .map_err(|e: ChainError| {
                coded("UNAVAILABLE", format!("the log cannot be checked now: {e}"))
            })?;
        if let Some((_, id)) = stream
            && report.streams == 0
        {
            return Err(coded(
                "NOT_FOUND",
                format!("no events are recorded for {id}"),
            ));
        }
        Ok(AuditChainStatus::new(report, SystemClock.now().to_string()))
    }

    /// Finished runs, one row each, in the order they ended, `first` at a time after the cursor
    /// `after`; only those that ended at or after `endedFrom` and before `endedTo` (RFC 3339),
    /// when given.
    async fn results(
        &self,
        ctx: &Context<'_>,
        ended_from: Option<String>,
        ended_to: Option<String>,
        #[graphql(default = 100)] first: i32,
        after: Option<String>,
    ) -> Result<RunResultPage> {
        require(ctx, Role::Viewer)?;
        let limit = page_size(first)?;
        let bound = |name: &str, text: Option<String>| -> Result<Option<domain::Timestamp>> {
            text.map(|t| {
                t.parse().map_err(|e| {
                    coded(
                        "INVALID_INPUT",
                        format!("{name} {t:?} is not an RFC 3339 time: {e}"),
                    )
                })
            })
            .transpose()
        };
        let (from, to) = (bound("endedFrom", ended_from)?, bound("endedTo", ended_to)?);
        let after = match after {
            None => None,
            Some(cursor) => {
                let bad = || {
                    coded(
                        "INVALID_INPUT",
                        format!("cursor {cursor:?} is not one this API gave out"),
                    )
                };
                let (at, id) = cursor.split_once('|').ok_or_else(bad)?;
                let at: domain::Timestamp = at.parse().map_err(|_| bad())?;
                Some((at, id.to_owned()))
            }
        };
        let results = ctx
            .data::<ApiContext>()?
            .backend
            .results()
            .await
            .map_err(read_error)?;
        let mut matching = results
            .into_iter()
            .filter(|r| from.is_none_or(|from| r.ended_at >= from))
            .filter(|r| to.is_none_or(|to| r.ended_at < to))
            .filter(|r| {
                after.as_ref().is_none_or(|(at, id)| {
                    (r.ended_at, r.experiment_id.as_str()) > (*at, id.as_str())
                })
            });
        let items: Vec<_> = matching.by_ref().take(limit).collect();
        let next_cursor = match (matching.next(), items.last()) {
            (Some(_), Some(last)) => Some(format!("{}|{}", last.ended_at, last.experiment_id)),
            _ => None,
        };
        Ok(RunResultPage {
            items: items.into_iter().map(Into::into).collect(),
            next_cursor,
        })
    }

    /// Analytics over every finished run (JSON: counts by outcome, recovery percentiles, by
    /// target and by failure type).
    async fn analytics(&self, ctx: &Context<'_>) -> Result<Json<serde_json::Value>> {
        require(ctx, Role::Viewer)?;
        let analytics = ctx
            .data::<ApiContext>()?
            .backend
            .analytics()
            .await
            .map_err(read_error)?;
        serde_json::to_value(analytics)
            .map(Json)
            .map_err(|e| coded("UNAVAILABLE", e.to_string()))
    }

    /// The halt switch, the read models' lag, and how full the platform's bounded state is,
    /// with a warning for anything near its limit.
    async fn health(&self, ctx: &Context<'_>) -> Result<PlatformHealth> {
        require(ctx, Role::Viewer)?;
        let api = ctx.data::<ApiContext>()?;
        let platform = api.platform(&Concern::ALL).await?;
        let status = api.backend.projection_status().await.map_err(read_error)?;
        let capacity = platform.capacity();
        Ok(PlatformHealth {
            halted: platform.halted().is_some(),
            halt_reason: platform.halted().map(|(reason, _)| reason.to_owned()),
            projection_behind: status.as_ref().map(|s| s.behind),
            projection_parked: status.as_ref().map(|s| s.parked.len() as u64),
            warnings: capacity.iter().filter_map(|c| c.warning()).collect(),
            capacity: capacity.iter().map(Into::into).collect(),
        })
    }

    /// The platform's configuration and halt switch.
    async fn config(&self, ctx: &Context<'_>) -> Result<PlatformConfigNode> {
        require(ctx, Role::Viewer)?;
        let platform = ctx
            .data::<ApiContext>()?
            .platform(&[Concern::HaltSwitch, Concern::Limits])
            .await?;
        let config = platform.config();
        Ok(PlatformConfigNode {
            max_targets_per_run: config.max_targets_per_run,
            max_duration_secs: config.max_duration_secs,
            halted: platform.halted().is_some(),
            halt_reason: platform.halted().map(|(reason, _)| reason.to_owned()),
            halted_at: platform.halted().map(|(_, at)| at.to_string()),
        })
    }

    /// The webhook subscriptions (ADMIN: their URLs may carry secrets).
    async fn webhooks(&self, ctx: &Context<'_>) -> Result<Vec<WebhookNode>> {
        require(ctx, Role::Admin)?;
        let platform = ctx
            .data::<ApiContext>()?
            .platform(&[Concern::Webhooks])
            .await?;
        Ok(platform
            .webhooks()
            .iter()
            .map(|(id, hook)| WebhookNode {
                id: id.to_string(),
                url: hook.url.clone(),
                events: hook.events.clone(),
            })
            .collect())
    }

    /// The saved templates, by name.
    async fn templates(&self, ctx: &Context<'_>) -> Result<Vec<TemplateNode>> {
        require(ctx, Role::Viewer)?;
        let settings = ctx.data::<ApiContext>()?.backend.settings();
        let templates = settings
            .templates()
            .await
            .map_err(|e| coded(e.code(), e.to_string()))?;
        Ok(templates.into_iter().map(TemplateNode::from).collect())
    }

    /// The caller's preferences (the defaults until they save some).
    async fn preferences(&self, ctx: &Context<'_>) -> Result<Preferences> {
        let actor = require(ctx, Role::Viewer)?;
        let settings = ctx.data::<ApiContext>()?.backend.settings();
        settings
            .preferences(&actor.id)
            .await
            .map(Preferences::from)
            .map_err(|e| coded(e.code(), e.to_string()))
    }

    /// A dry run of target selection: what an experiment of `spec` (JSON, as
    /// `createExperiment` takes it) with id `id` would hit if it resolved its targets now.
    /// Nothing is recorded or touched. Without `id`, a new id is chosen and returned.
    async fn targets(
        &self,
        ctx: &Context<'_>,
        spec: Json<serde_json::Value>,
        id: Option<ID>,
    ) -> Result<TargetPreview> {
        require(ctx, Role::Viewer)?;
        let input = spec_argument(spec.0)?;
        let spec = ExperimentSpec::parse(input)
            .map_err(|e| with_problems("INVALID_INPUT", format!("spec: {e}"), &e.problems))?;
        let id = id.map_or_else(|| uuid::Uuid::now_v7().to_string(), |id| id.to_string());
        ExperimentId::parse(id.as_str()).map_err(|e| coded("INVALID_INPUT", e.to_string()))?;
        let api = ctx.data::<ApiContext>()?;
        let preview = api.backend.preview(&spec, &id).await.map_err(|e| {
            use command_lambdas::adapters::AdapterError;
            use command_lambdas::tasks::TaskError;
            let code = match &e {
                TaskError::Service(e) => e.code(),
                TaskError::Adapter(AdapterError::NoSuchGroup(_)) => "NOT_FOUND",
                TaskError::Adapter(a) if a.is_retryable() => "UNAVAILABLE",
                TaskError::Adapter(_) | TaskError::WrongStep { .. } => "REJECTED",
            };
            coded(code, e.to_string())
        })?;
        let text =
            |ids: Vec<domain::spec::TargetId>| ids.into_iter().map(|t| t.to_string()).collect();
        Ok(TargetPreview {
            experiment_id: id,
            target: spec.target().key(),
            candidates: text(preview.candidates),
            would_hit: text(preview.would_hit),
        })
    }

    /// The API keys in force (ADMIN; never their secrets).
    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKeyNode>> {
        require(ctx, Role::Admin)?;
        let platform = ctx
            .data::<ApiContext>()?
            .platform(&[Concern::ApiKeys])
            .await?;
        Ok(platform
            .api_keys()
            .iter()
            .map(|(id, key)| ApiKeyNode {
                id: id.to_string(),
                name: key.name.clone(),
                role: key.role.as_str().to_owned(),
                created_at: key.created_at.to_string(),
            })
            .collect())
    }
}

/// An audit cursor: `recordedAt|streamId|sequence` of the last entry of the previous page.
fn parse_audit_cursor(cursor: &str) -> Result<(String, String, u64)> {
    let bad = || {
        coded(
            "INVALID_INPUT",
            format!("cursor {cursor:?} is not `recordedAt|streamId|sequence`"),
        )
    };
    let (at, rest) = cursor.split_once('|').ok_or_else(bad)?;
    let (id, sequence) = rest.rsplit_once('|').ok_or_else(bad)?;
    let sequence = sequence.parse().map_err(|_| bad())?;
    Ok((at.to_owned(), id.to_owned(), sequence))
}

//! Conveniences kept beside the log, not in it: experiment templates and each user's
//! preferences. Neither decides anything: an experiment started from a template is recorded
//! with its whole spec (`ExperimentCreated`), and preferences only shape what a dashboard
//! shows. Embedded, they live in the store file's `api_templates` and `api_preferences`
//! tables; on AWS, in partitions of their own in the read-model table
//! (`Pk = "settings#template"`, `Sk` the template's id; `Pk = "settings#preferences"`, `Sk`
//! the actor), which the projection never touches.

use dynamo_tables::views;
use std::collections::HashMap;

use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, Select};
use domain::spec::{ExperimentSpec, ExperimentSpecInput};
use serde::{Deserialize, Serialize};
use sqlx::{Row, SqlitePool};

/// Most templates kept.
pub const MAX_TEMPLATES: i64 = 200;
/// Longest template name, in characters.
pub const MAX_TEMPLATE_NAME: usize = 128;

/// Why a template or preference could not be saved or read.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// Bad input: what is wrong.
    #[error("{0}")]
    Invalid(String),
    /// No such template.
    #[error("no template {0}")]
    NotFound(String),
    /// The store failed.
    #[error("the settings store failed: {0}")]
    Store(#[from] sqlx::Error),
    /// DynamoDB refused or could not be reached.
    #[error("the settings table failed: {0}")]
    Dynamo(String),
}

fn dynamo<E: std::error::Error>(e: E) -> SettingsError {
    SettingsError::Dynamo(DisplayErrorContext(e).to_string())
}

impl SettingsError {
    /// The stable code of the API error.
    pub fn code(&self) -> &'static str {
        match self {
            SettingsError::Invalid(_) => "INVALID_INPUT",
            SettingsError::NotFound(_) => "NOT_FOUND",
            SettingsError::Store(_) | SettingsError::Dynamo(_) => "UNAVAILABLE",
        }
    }
}

/// A saved experiment spec, to start experiments from.
#[derive(Debug, Clone, Serialize)]
pub struct Template {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The spec (valid when saved).
    pub spec: ExperimentSpecInput,
    /// Who saved it last.
    pub saved_by: String,
    /// When (RFC 3339).
    pub saved_at: String,
}

/// Outcomes a dashboard may notify a user of.
pub const NOTIFY_CHOICES: [&str; 5] = ["COMPLETED", "FAILED", "NOT_RECOVERED", "STOPPED", "HALTED"];

/// The outcome of [`NOTIFY_CHOICES`] an event announces, if it announces one: a run completed
/// (recovered, or a dry run), not recovered, failed or stopped; experiments halted.
pub fn announces(event: &domain::views::AnyEvent) -> Option<&'static str> {
    use domain::experiment::{ExperimentEvent as E, Outcome};
    use domain::platform::PlatformEvent as P;
    use domain::views::AnyEvent;
    match event {
        AnyEvent::Experiment(E::ExperimentCompleted {
            outcome: Outcome::NotRecovered,
            ..
        }) => Some("NOT_RECOVERED"),
        AnyEvent::Experiment(E::ExperimentCompleted { .. }) => Some("COMPLETED"),
        AnyEvent::Experiment(E::ExperimentFailed { .. }) => Some("FAILED"),
        AnyEvent::Experiment(E::ExperimentStopped { .. }) => Some("STOPPED"),
        AnyEvent::Platform(P::PlatformHalted { .. }) => Some("HALTED"),
        _ => None,
    }
}

/// One user's preferences.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preferences {
    /// Outcomes to be notified of (of [`NOTIFY_CHOICES`]).
    pub notify_on: Vec<String>,
    /// IANA time zone times are shown in.
    pub time_zone: String,
    /// Rows per page in lists (10 to 200).
    pub page_size: u32,
}

impl Default for Preferences {
    fn default() -> Self {
        Preferences {
            notify_on: vec!["FAILED".into(), "NOT_RECOVERED".into(), "HALTED".into()],
            time_zone: "UTC".into(),
            page_size: 20,
        }
    }
}

impl Preferences {
    /// Checks every field; says what is wrong.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if let Some(bad) = self
            .notify_on
            .iter()
            .find(|n| !NOTIFY_CHOICES.contains(&n.as_str()))
        {
            return Err(SettingsError::Invalid(format!(
                "notifyOn: {bad:?} is not one of {}",
                NOTIFY_CHOICES.join(", ")
            )));
        }
        if self.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(SettingsError::Invalid(format!(
                "timeZone: {:?} is not an IANA time zone (e.g. Europe/Berlin)",
                self.time_zone
            )));
        }
        if !(10..=200).contains(&self.page_size) {
            return Err(SettingsError::Invalid(format!(
                "pageSize: must be between 10 and 200 (got {})",
                self.page_size
            )));
        }
        Ok(())
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS api_templates (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    saved_by TEXT NOT NULL,
    saved_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS api_preferences (
    actor TEXT PRIMARY KEY,
    preferences TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
";

/// The templates and preferences of one platform.
#[derive(Debug, Clone)]
pub struct Settings {
    store: Store,
}

#[derive(Debug, Clone)]
enum Store {
    Sqlite(SqlitePool),
    Dynamo {
        client: aws_sdk_dynamodb::Client,
        table: String,
    },
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn text_of(item: &HashMap<String, AttributeValue>, name: &str) -> Result<String, SettingsError> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .cloned()
        .ok_or_else(|| SettingsError::Dynamo(format!("a settings row has no text {name}")))
}

fn template_of(item: &HashMap<String, AttributeValue>) -> Result<Template, SettingsError> {
    Ok(Template {
        id: text_of(item, views::SK)?,
        name: text_of(item, "Name")?,
        spec: serde_json::from_str(&text_of(item, "Spec")?)
            .map_err(|e| SettingsError::Invalid(format!("stored spec: {e}")))?,
        saved_by: text_of(item, "SavedBy")?,
        saved_at: text_of(item, "SavedAt")?,
    })
}

impl Settings {
    /// The settings over `pool`'s store (creating their tables).
    pub async fn open(pool: SqlitePool) -> Result<Self, SettingsError> {
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(Settings {
            store: Store::Sqlite(pool),
        })
    }

    /// The settings in the read-model table `table` (AWS).
    pub fn dynamo(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Settings {
            store: Store::Dynamo {
                client,
                table: table.into(),
            },
        }
    }

    /// Saves (or replaces) template `id`: `spec` must be a valid experiment spec.
    pub async fn save_template(
        &self,
        id: &str,
        name: &str,
        spec: ExperimentSpecInput,
        saved_by: &str,
        at: &str,
    ) -> Result<Template, SettingsError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_TEMPLATE_NAME {
            return Err(SettingsError::Invalid(format!(
                "name: must have 1 to {MAX_TEMPLATE_NAME} characters"
            )));
        }
        domain::spec::ExperimentId::parse(id)
            .map_err(|e| SettingsError::Invalid(format!("template id: {e}")))?;
        ExperimentSpec::parse(spec.clone())
            .map_err(|e| SettingsError::Invalid(format!("spec: {e}")))?;
        let text = serde_json::to_string(&spec)
            .map_err(|e| SettingsError::Invalid(format!("spec: {e}")))?;
        let saved = Template {
            id: id.to_owned(),
            name: name.to_owned(),
            spec,
            saved_by: saved_by.to_owned(),
            saved_at: at.to_owned(),
        };
        let pool = match &self.store {
            Store::Sqlite(pool) => pool,
            Store::Dynamo { client, table } => {
                let exists = match self.template(id).await {
                    // One whose stored spec no longer decodes exists too, and may be replaced.
                    Ok(_) | Err(SettingsError::Invalid(_)) => true,
                    Err(SettingsError::NotFound(_)) => false,
                    Err(e) => return Err(e),
                };
                let count = client
                    .query()
                    .table_name(table)
                    .key_condition_expression("#pk = :pk")
                    .expression_attribute_names("#pk", views::PK)
                    .expression_attribute_values(":pk", s(views::TEMPLATES_PARTITION))
                    .select(Select::Count)
                    .consistent_read(true)
                    .into_paginator()
                    .send()
                    .try_collect()
                    .await
                    .map_err(dynamo)?
                    .iter()
                    .map(|page| i64::from(page.count))
                    .sum::<i64>();
                if !exists && count >= MAX_TEMPLATES {
                    return Err(SettingsError::Invalid(format!(
                        "at most {MAX_TEMPLATES} templates: delete one first"
                    )));
                }
                client
                    .put_item()
                    .table_name(table)
                    .item(views::PK, s(views::TEMPLATES_PARTITION))
                    .item(views::SK, s(id))
                    .item("Name", s(name))
                    .item("Spec", s(text))
                    .item("SavedBy", s(saved_by))
                    .item("SavedAt", s(at))
                    .send()
                    .await
                    .map_err(dynamo)?;
                return Ok(saved);
            }
        };
        let mut tx = pool.begin().await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM api_templates WHERE id = ?)")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_templates")
            .fetch_one(&mut *tx)
            .await?;
        if !exists && count >= MAX_TEMPLATES {
            return Err(SettingsError::Invalid(format!(
                "at most {MAX_TEMPLATES} templates: delete one first"
            )));
        }
        sqlx::query(
            "INSERT INTO api_templates (id, name, spec, saved_by, saved_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, spec = excluded.spec,
                 saved_by = excluded.saved_by, saved_at = excluded.saved_at",
        )
        .bind(id)
        .bind(name)
        .bind(&text)
        .bind(saved_by)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(saved)
    }

    /// Every template, by name.
    pub async fn templates(&self) -> Result<Vec<Template>, SettingsError> {
        match &self.store {
            Store::Sqlite(pool) => {
                let rows = sqlx::query(
                    "SELECT id, name, spec, saved_by, saved_at FROM api_templates ORDER BY name, id",
                )
                .fetch_all(pool)
                .await?;
                rows.iter().map(template).collect()
            }
            Store::Dynamo { client, table } => {
                let items: Vec<_> = client
                    .query()
                    .table_name(table)
                    .key_condition_expression("#pk = :pk")
                    .expression_attribute_names("#pk", views::PK)
                    .expression_attribute_values(":pk", s(views::TEMPLATES_PARTITION))
                    .consistent_read(true)
                    .into_paginator()
                    .items()
                    .send()
                    .try_collect()
                    .await
                    .map_err(dynamo)?;
                let mut templates = items
                    .iter()
                    .map(template_of)
                    .collect::<Result<Vec<_>, _>>()?;
                templates.sort_by(|a, b| (&a.name, &a.id).cmp(&(&b.name, &b.id)));
                Ok(templates)
            }
        }
    }

    /// Template `id`.
    pub async fn template(&self, id: &str) -> Result<Template, SettingsError> {
        match &self.store {
            Store::Sqlite(pool) => {
                let row = sqlx::query(
                    "SELECT id, name, spec, saved_by, saved_at FROM api_templates WHERE id = ?",
                )
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or_else(|| SettingsError::NotFound(id.to_owned()))?;
                template(&row)
            }
            Store::Dynamo { client, table } => {
                let item = client
                    .get_item()
                    .table_name(table)
                    .key(views::PK, s(views::TEMPLATES_PARTITION))
                    .key(views::SK, s(id))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(dynamo)?
                    .item
                    .ok_or_else(|| SettingsError::NotFound(id.to_owned()))?;
                template_of(&item)
            }
        }
    }

    /// Deletes template `id`.
    pub async fn delete_template(&self, id: &str) -> Result<(), SettingsError> {
        let deleted = match &self.store {
            Store::Sqlite(pool) => {
                sqlx::query("DELETE FROM api_templates WHERE id = ?")
                    .bind(id)
                    .execute(pool)
                    .await?
                    .rows_affected()
                    > 0
            }
            Store::Dynamo { client, table } => client
                .delete_item()
                .table_name(table)
                .key(views::PK, s(views::TEMPLATES_PARTITION))
                .key(views::SK, s(id))
                .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
                .send()
                .await
                .map_err(dynamo)?
                .attributes
                .is_some(),
        };
        if !deleted {
            return Err(SettingsError::NotFound(id.to_owned()));
        }
        Ok(())
    }

    /// `actor`'s preferences (the defaults until they save some).
    pub async fn preferences(&self, actor: &str) -> Result<Preferences, SettingsError> {
        let text: Option<String> = match &self.store {
            Store::Sqlite(pool) => {
                sqlx::query_scalar("SELECT preferences FROM api_preferences WHERE actor = ?")
                    .bind(actor)
                    .fetch_optional(pool)
                    .await?
            }
            Store::Dynamo { client, table } => client
                .get_item()
                .table_name(table)
                .key(views::PK, s(views::PREFERENCES_PARTITION))
                .key(views::SK, s(actor))
                .consistent_read(true)
                .send()
                .await
                .map_err(dynamo)?
                .item
                .map(|item| text_of(&item, "Preferences"))
                .transpose()?,
        };
        Ok(text
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default())
    }

    /// Saves `actor`'s preferences.
    pub async fn save_preferences(
        &self,
        actor: &str,
        preferences: &Preferences,
        at: &str,
    ) -> Result<(), SettingsError> {
        preferences.validate()?;
        let text = serde_json::to_string(preferences)
            .map_err(|e| SettingsError::Invalid(e.to_string()))?;
        let pool = match &self.store {
            Store::Sqlite(pool) => pool,
            Store::Dynamo { client, table } => {
                client
                    .put_item()
                    .table_name(table)
                    .item(views::PK, s(views::PREFERENCES_PARTITION))
                    .item(views::SK, s(actor))
                    .item("Preferences", s(text))
                    .item("UpdatedAt", s(at))
                    .send()
                    .await
                    .map_err(dynamo)?;
                return Ok(());
            }
        };
        sqlx::query(
            "INSERT INTO api_preferences (actor, preferences, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (actor) DO UPDATE SET preferences = excluded.preferences,
                 updated_at = excluded.updated_at",
        )
        .bind(actor)
        .bind(text)
        .bind(at)
        .execute(pool)
        .await?;
        Ok(())
    }
}

fn template(row: &sqlx::sqlite::SqliteRow) -> Result<Template, SettingsError> {
    let spec: String = row.try_get("spec")?;
    Ok(Template {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        spec: serde_json::from_str(&spec)
            .map_err(|e| SettingsError::Invalid(format!("stored spec: {e}")))?,
        saved_by: row.try_get("saved_by")?,
        saved_at: row.try_get("saved_at")?,
    })
}

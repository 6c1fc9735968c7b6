//! Conveniences kept beside the log, not in it: experiment templates and each user's
//! preferences. Neither decides anything: an experiment started from a template is recorded
//! with its whole spec (`ExperimentCreated`), and preferences only shape what a dashboard
//! shows. They live in the store file's `api_templates` and `api_preferences` tables.

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
}

impl SettingsError {
    /// The stable code of the API error.
    pub fn code(&self) -> &'static str {
        match self {
            SettingsError::Invalid(_) => "INVALID_INPUT",
            SettingsError::NotFound(_) => "NOT_FOUND",
            SettingsError::Store(_) => "UNAVAILABLE",
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
            page_size: 50,
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

/// The templates and preferences of one store file.
#[derive(Debug, Clone)]
pub struct Settings {
    pool: SqlitePool,
}

impl Settings {
    /// The settings over `pool`'s store (creating their tables).
    pub async fn open(pool: SqlitePool) -> Result<Self, SettingsError> {
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(Settings { pool })
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
        let mut tx = self.pool.begin().await?;
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
        Ok(Template {
            id: id.to_owned(),
            name: name.to_owned(),
            spec,
            saved_by: saved_by.to_owned(),
            saved_at: at.to_owned(),
        })
    }

    /// Every template, by name.
    pub async fn templates(&self) -> Result<Vec<Template>, SettingsError> {
        let rows = sqlx::query(
            "SELECT id, name, spec, saved_by, saved_at FROM api_templates ORDER BY name, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(template).collect()
    }

    /// Template `id`.
    pub async fn template(&self, id: &str) -> Result<Template, SettingsError> {
        let row = sqlx::query(
            "SELECT id, name, spec, saved_by, saved_at FROM api_templates WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| SettingsError::NotFound(id.to_owned()))?;
        template(&row)
    }

    /// Deletes template `id`.
    pub async fn delete_template(&self, id: &str) -> Result<(), SettingsError> {
        let done = sqlx::query("DELETE FROM api_templates WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(SettingsError::NotFound(id.to_owned()));
        }
        Ok(())
    }

    /// `actor`'s preferences (the defaults until they save some).
    pub async fn preferences(&self, actor: &str) -> Result<Preferences, SettingsError> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT preferences FROM api_preferences WHERE actor = ?")
                .bind(actor)
                .fetch_optional(&self.pool)
                .await?;
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
        sqlx::query(
            "INSERT INTO api_preferences (actor, preferences, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (actor) DO UPDATE SET preferences = excluded.preferences,
                 updated_at = excluded.updated_at",
        )
        .bind(actor)
        .bind(text)
        .bind(at)
        .execute(&self.pool)
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

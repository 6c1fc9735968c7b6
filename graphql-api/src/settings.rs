//! Conveniences kept beside the log, not in it: experiment templates and each user's
//! preferences. Neither decides anything: an experiment started from a template is recorded
//! with its whole spec (`ExperimentCreated`), and preferences only shape what a dashboard
//! shows. [`Settings`] checks what is saved; a [`SettingsStore`] of each mode keeps it
//! (embedded: `backend::embedded::settings`, tables of the store file; AWS:
//! `backend::aws::settings`, partitions of the read-model table).

use std::sync::Arc;

use async_trait::async_trait;
use domain::spec::{ExperimentSpec, ExperimentSpecInput};
use serde::{Deserialize, Serialize};

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

/// The refusal of one template more than [`MAX_TEMPLATES`].
pub fn too_many_templates() -> SettingsError {
    SettingsError::Invalid(format!(
        "at most {MAX_TEMPLATES} templates: delete one first"
    ))
}

/// A template's spec as stored.
pub fn stored_spec(text: &str) -> Result<ExperimentSpecInput, SettingsError> {
    serde_json::from_str(text).map_err(|e| SettingsError::Invalid(format!("stored spec: {e}")))
}

/// Where templates and preferences are kept: what each mode implements.
#[async_trait]
pub trait SettingsStore: Send + Sync + std::fmt::Debug {
    /// Stores `template` (its spec as the JSON text `spec`), replacing the one with its id;
    /// a new one past [`MAX_TEMPLATES`] is refused ([`too_many_templates`]).
    async fn put_template(&self, template: &Template, spec: &str) -> Result<(), SettingsError>;
    /// Every template, by name (then id).
    async fn templates(&self) -> Result<Vec<Template>, SettingsError>;
    /// Template `id` ([`SettingsError::NotFound`] if there is none; [`SettingsError::Invalid`]
    /// if its stored spec no longer decodes).
    async fn template(&self, id: &str) -> Result<Template, SettingsError>;
    /// Deletes template `id`: whether there was one.
    async fn delete_template(&self, id: &str) -> Result<bool, SettingsError>;
    /// `actor`'s preferences as stored (JSON), if they saved any.
    async fn preferences(&self, actor: &str) -> Result<Option<String>, SettingsError>;
    /// Stores `actor`'s preferences (JSON) at `at`.
    async fn put_preferences(&self, actor: &str, text: &str, at: &str)
    -> Result<(), SettingsError>;
}

/// The templates and preferences of one platform: cheap to clone.
#[derive(Debug, Clone)]
pub struct Settings {
    store: Arc<dyn SettingsStore>,
}

impl Settings {
    /// The settings kept in `store`.
    pub fn new(store: impl SettingsStore + 'static) -> Self {
        Settings {
            store: Arc::new(store),
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
        self.store.put_template(&saved, &text).await?;
        Ok(saved)
    }

    /// Every template, by name.
    pub async fn templates(&self) -> Result<Vec<Template>, SettingsError> {
        self.store.templates().await
    }

    /// Template `id`.
    pub async fn template(&self, id: &str) -> Result<Template, SettingsError> {
        self.store.template(id).await
    }

    /// Deletes template `id`.
    pub async fn delete_template(&self, id: &str) -> Result<(), SettingsError> {
        if !self.store.delete_template(id).await? {
            return Err(SettingsError::NotFound(id.to_owned()));
        }
        Ok(())
    }

    /// `actor`'s preferences (the defaults until they save some).
    pub async fn preferences(&self, actor: &str) -> Result<Preferences, SettingsError> {
        let text = self.store.preferences(actor).await?;
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
        self.store.put_preferences(actor, &text, at).await
    }
}

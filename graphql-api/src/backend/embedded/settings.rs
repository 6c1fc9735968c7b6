//! Templates and preferences in the store file's `api_templates` and `api_preferences`
//! tables, beside the log (never in it).

use async_trait::async_trait;
use sqlx::{Row, SqlitePool};

use crate::settings::{
    MAX_TEMPLATES, SettingsError, SettingsStore, Template, stored_spec, too_many_templates,
};

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

/// The settings tables of one store file.
#[derive(Debug, Clone)]
pub struct SqliteSettings {
    pool: SqlitePool,
}

impl SqliteSettings {
    /// The settings over `pool`'s store (creating their tables).
    pub async fn open(pool: SqlitePool) -> Result<Self, SettingsError> {
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(SqliteSettings { pool })
    }
}

fn template(row: &sqlx::sqlite::SqliteRow) -> Result<Template, SettingsError> {
    let spec: String = row.try_get("spec")?;
    Ok(Template {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        spec: stored_spec(&spec)?,
        saved_by: row.try_get("saved_by")?,
        saved_at: row.try_get("saved_at")?,
    })
}

#[async_trait]
impl SettingsStore for SqliteSettings {
    /// The count and the write are one transaction: two saves at once cannot both pass the
    /// limit.
    async fn put_template(&self, saved: &Template, spec: &str) -> Result<(), SettingsError> {
        let mut tx = self.pool.begin().await?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM api_templates WHERE id = ?)")
                .bind(&saved.id)
                .fetch_one(&mut *tx)
                .await?;
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_templates")
            .fetch_one(&mut *tx)
            .await?;
        if !exists && count >= MAX_TEMPLATES {
            return Err(too_many_templates());
        }
        sqlx::query(
            "INSERT INTO api_templates (id, name, spec, saved_by, saved_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, spec = excluded.spec,
                 saved_by = excluded.saved_by, saved_at = excluded.saved_at",
        )
        .bind(&saved.id)
        .bind(&saved.name)
        .bind(spec)
        .bind(&saved.saved_by)
        .bind(&saved.saved_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn templates(&self) -> Result<Vec<Template>, SettingsError> {
        let rows = sqlx::query(
            "SELECT id, name, spec, saved_by, saved_at FROM api_templates ORDER BY name, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(template).collect()
    }

    async fn template(&self, id: &str) -> Result<Template, SettingsError> {
        let row = sqlx::query(
            "SELECT id, name, spec, saved_by, saved_at FROM api_templates WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| SettingsError::NotFound(id.to_owned()))?;
        template(&row)
    }

    async fn delete_template(&self, id: &str) -> Result<bool, SettingsError> {
        Ok(sqlx::query("DELETE FROM api_templates WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }

    async fn preferences(&self, actor: &str) -> Result<Option<String>, SettingsError> {
        Ok(
            sqlx::query_scalar("SELECT preferences FROM api_preferences WHERE actor = ?")
                .bind(actor)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn put_preferences(
        &self,
        actor: &str,
        text: &str,
        at: &str,
    ) -> Result<(), SettingsError> {
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

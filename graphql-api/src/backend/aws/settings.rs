//! Templates and preferences in partitions of their own in the read-model table
//! (`Pk = "settings#template"`, `Sk` the template's id; `Pk = "settings#preferences"`, `Sk`
//! the actor), which the projection never touches.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Select};
use dynamo_tables::views;

use crate::settings::{
    MAX_TEMPLATES, SettingsError, SettingsStore, Template, stored_spec, too_many_templates,
};

/// The settings partitions of one read-model table.
#[derive(Debug, Clone)]
pub struct DynamoSettings {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoSettings {
    /// The settings in the read-model table `table`.
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoSettings {
            client,
            table: table.into(),
        }
    }
}

fn dynamo<E: std::error::Error>(e: E) -> SettingsError {
    SettingsError::Dynamo(DisplayErrorContext(e).to_string())
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
        spec: stored_spec(&text_of(item, "Spec")?)?,
        saved_by: text_of(item, "SavedBy")?,
        saved_at: text_of(item, "SavedAt")?,
    })
}

#[async_trait]
impl SettingsStore for DynamoSettings {
    async fn put_template(&self, saved: &Template, spec: &str) -> Result<(), SettingsError> {
        let exists = match self.template(&saved.id).await {
            // One whose stored spec no longer decodes exists too, and may be replaced.
            Ok(_) | Err(SettingsError::Invalid(_)) => true,
            Err(SettingsError::NotFound(_)) => false,
            Err(e) => return Err(e),
        };
        let count = self
            .client
            .query()
            .table_name(&self.table)
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
            return Err(too_many_templates());
        }
        self.client
            .put_item()
            .table_name(&self.table)
            .item(views::PK, s(views::TEMPLATES_PARTITION))
            .item(views::SK, s(&saved.id))
            .item("Name", s(&saved.name))
            .item("Spec", s(spec))
            .item("SavedBy", s(&saved.saved_by))
            .item("SavedAt", s(&saved.saved_at))
            .send()
            .await
            .map_err(dynamo)?;
        Ok(())
    }

    async fn templates(&self) -> Result<Vec<Template>, SettingsError> {
        let items: Vec<_> = self
            .client
            .query()
            .table_name(&self.table)
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

    async fn template(&self, id: &str) -> Result<Template, SettingsError> {
        let item = self
            .client
            .get_item()
            .table_name(&self.table)
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

    async fn delete_template(&self, id: &str) -> Result<bool, SettingsError> {
        Ok(self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(views::PK, s(views::TEMPLATES_PARTITION))
            .key(views::SK, s(id))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(dynamo)?
            .attributes
            .is_some())
    }

    async fn preferences(&self, actor: &str) -> Result<Option<String>, SettingsError> {
        self.client
            .get_item()
            .table_name(&self.table)
            .key(views::PK, s(views::PREFERENCES_PARTITION))
            .key(views::SK, s(actor))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo)?
            .item
            .map(|item| text_of(&item, "Preferences"))
            .transpose()
    }

    async fn put_preferences(
        &self,
        actor: &str,
        text: &str,
        at: &str,
    ) -> Result<(), SettingsError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item(views::PK, s(views::PREFERENCES_PARTITION))
            .item(views::SK, s(actor))
            .item("Preferences", s(text))
            .item("UpdatedAt", s(at))
            .send()
            .await
            .map_err(dynamo)?;
        Ok(())
    }
}

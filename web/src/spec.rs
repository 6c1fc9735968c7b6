//! The spec the "run an experiment" form edits: every field of the API's experiment spec as
//! the text a form holds, turned into the JSON `createExperiment` takes, and back from a spec
//! (a template's, or an earlier run's) so a form can start from it.
//!
//! This module decides nothing the API decides: it only checks that a number is a number.
//! Everything else (bounds, the blast radius, the guardrails the platform requires) is the
//! API's to refuse, and its `INVALID_INPUT` message is what the form shows.

use serde_json::{Value, json};

/// What the form holds, as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecForm {
    /// The experiment's name.
    pub name: String,
    /// What it sets out to learn.
    pub description: String,
    /// `LOCAL_FLEET` or `AUTO_SCALING_GROUP`.
    pub target_kind: String,
    /// The group (`web`).
    pub group: String,
    /// `COUNT`, `PERCENT` or `ALL`.
    pub selection_mode: String,
    /// How many (COUNT) or what share (PERCENT) of the group.
    pub selection_value: String,
    /// The blast radius: never more targets than this.
    pub max_targets: String,
    /// `TERMINATE` or `PAUSE`.
    pub failure: String,
    /// How long a paused target stays paused (PAUSE only).
    pub pause_secs: String,
    /// Only resolve the targets.
    pub dry_run: bool,
    /// Stop when the error rate exceeds [`SpecForm::max_error_rate`].
    pub stop_on_error_rate: bool,
    /// The error-rate limit, in percent.
    pub max_error_rate: String,
    /// Alarms that stop the run when not OK, separated by commas or spaces.
    pub alarms: String,
    /// The longest the run may last.
    pub max_duration_secs: String,
    /// How long recovery may take before the run counts as not recovered.
    pub recovery_timeout_secs: String,
    /// Seconds between health samples.
    pub poll_interval_secs: String,
    /// Health samples taken before the failure, as the baseline.
    pub baseline_samples: String,
}

impl Default for SpecForm {
    /// A careful first run against the demo fleet: one worker, stopped when errors pass half.
    fn default() -> Self {
        SpecForm {
            name: String::new(),
            description: String::new(),
            target_kind: "LOCAL_FLEET".to_owned(),
            group: "web".to_owned(),
            selection_mode: "COUNT".to_owned(),
            selection_value: "1".to_owned(),
            max_targets: "1".to_owned(),
            failure: "TERMINATE".to_owned(),
            pause_secs: "10".to_owned(),
            dry_run: false,
            stop_on_error_rate: true,
            max_error_rate: "50".to_owned(),
            alarms: String::new(),
            max_duration_secs: "600".to_owned(),
            recovery_timeout_secs: "60".to_owned(),
            poll_interval_secs: "1".to_owned(),
            baseline_samples: "3".to_owned(),
        }
    }
}

/// A text field of the form, for a page that edits them all alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// [`SpecForm::name`].
    Name,
    /// [`SpecForm::description`].
    Description,
    /// [`SpecForm::target_kind`].
    TargetKind,
    /// [`SpecForm::group`].
    Group,
    /// [`SpecForm::selection_mode`].
    SelectionMode,
    /// [`SpecForm::selection_value`].
    SelectionValue,
    /// [`SpecForm::max_targets`].
    MaxTargets,
    /// [`SpecForm::failure`].
    Failure,
    /// [`SpecForm::pause_secs`].
    PauseSecs,
    /// [`SpecForm::max_error_rate`].
    MaxErrorRate,
    /// [`SpecForm::alarms`].
    Alarms,
    /// [`SpecForm::max_duration_secs`].
    MaxDurationSecs,
    /// [`SpecForm::recovery_timeout_secs`].
    RecoveryTimeoutSecs,
    /// [`SpecForm::poll_interval_secs`].
    PollIntervalSecs,
    /// [`SpecForm::baseline_samples`].
    BaselineSamples,
}

/// A yes-or-no field of the form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    /// [`SpecForm::dry_run`].
    DryRun,
    /// [`SpecForm::stop_on_error_rate`].
    StopOnErrorRate,
}

/// A field that is not a whole number: its label, for the form to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotANumber(pub &'static str);

impl std::fmt::Display for NotANumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} must be a whole number.", self.0)
    }
}

fn number(text: &str, label: &'static str) -> Result<u64, NotANumber> {
    text.trim().parse::<u64>().map_err(|_| NotANumber(label))
}

impl SpecForm {
    fn text_mut(&mut self, field: Field) -> &mut String {
        match field {
            Field::Name => &mut self.name,
            Field::Description => &mut self.description,
            Field::TargetKind => &mut self.target_kind,
            Field::Group => &mut self.group,
            Field::SelectionMode => &mut self.selection_mode,
            Field::SelectionValue => &mut self.selection_value,
            Field::MaxTargets => &mut self.max_targets,
            Field::Failure => &mut self.failure,
            Field::PauseSecs => &mut self.pause_secs,
            Field::MaxErrorRate => &mut self.max_error_rate,
            Field::Alarms => &mut self.alarms,
            Field::MaxDurationSecs => &mut self.max_duration_secs,
            Field::RecoveryTimeoutSecs => &mut self.recovery_timeout_secs,
            Field::PollIntervalSecs => &mut self.poll_interval_secs,
            Field::BaselineSamples => &mut self.baseline_samples,
        }
    }

    /// The text of `field`.
    pub fn text(&self, field: Field) -> &str {
        match field {
            Field::Name => &self.name,
            Field::Description => &self.description,
            Field::TargetKind => &self.target_kind,
            Field::Group => &self.group,
            Field::SelectionMode => &self.selection_mode,
            Field::SelectionValue => &self.selection_value,
            Field::MaxTargets => &self.max_targets,
            Field::Failure => &self.failure,
            Field::PauseSecs => &self.pause_secs,
            Field::MaxErrorRate => &self.max_error_rate,
            Field::Alarms => &self.alarms,
            Field::MaxDurationSecs => &self.max_duration_secs,
            Field::RecoveryTimeoutSecs => &self.recovery_timeout_secs,
            Field::PollIntervalSecs => &self.poll_interval_secs,
            Field::BaselineSamples => &self.baseline_samples,
        }
    }

    /// Sets `field` to `value`.
    pub fn set(&mut self, field: Field, value: String) {
        *self.text_mut(field) = value;
    }

    /// Whether `flag` is set.
    pub fn flag(&self, flag: Flag) -> bool {
        match flag {
            Flag::DryRun => self.dry_run,
            Flag::StopOnErrorRate => self.stop_on_error_rate,
        }
    }

    /// Sets `flag` to `on`.
    pub fn set_flag(&mut self, flag: Flag, on: bool) {
        match flag {
            Flag::DryRun => self.dry_run = on,
            Flag::StopOnErrorRate => self.stop_on_error_rate = on,
        }
    }

    /// The spec as `createExperiment` takes it; or the first field that is not a number.
    pub fn to_json(&self) -> Result<Value, NotANumber> {
        let selection = match self.selection_mode.as_str() {
            "ALL" => json!({ "mode": "ALL" }),
            mode => {
                let label = if mode == "PERCENT" {
                    "Percent of the group"
                } else {
                    "How many workers"
                };
                json!({ "mode": mode, "value": number(&self.selection_value, label)? })
            }
        };
        let failure = if self.failure == "PAUSE" {
            json!({ "type": "PAUSE", "duration_secs": number(&self.pause_secs, "Pause for")? })
        } else {
            json!({ "type": self.failure })
        };
        let mut stop_conditions = Vec::new();
        if self.stop_on_error_rate {
            stop_conditions.push(json!({
                "type": "MAX_ERROR_RATE",
                "percent": number(&self.max_error_rate, "Error rate limit")?,
            }));
        }
        for alarm in self
            .alarms
            .split([',', ' ', '\n'])
            .filter(|a| !a.is_empty())
        {
            stop_conditions.push(json!({ "type": "ALARM", "alarm_name": alarm }));
        }
        let mut spec = json!({
            "name": self.name.trim(),
            "target": { "kind": self.target_kind, "group": self.group.trim() },
            "selection": selection,
            "max_targets": number(&self.max_targets, "Never more than")?,
            "failure": failure,
            "dry_run": self.dry_run,
            "guardrails": {
                "stop_conditions": stop_conditions,
                "max_duration_secs": number(&self.max_duration_secs, "Longest run")?,
            },
            "recovery": {
                "timeout_secs": number(&self.recovery_timeout_secs, "Recovery timeout")?,
                "poll_interval_secs": number(&self.poll_interval_secs, "Sample every")?,
                "baseline_samples": number(&self.baseline_samples, "Baseline samples")?,
            }
        });
        if !self.description.trim().is_empty() {
            spec["description"] = json!(self.description.trim());
        }
        Ok(spec)
    }

    /// The field of this form that the spec's `path` (as the API names a problem: e.g.
    /// `selection.value`, `guardrails.stop_conditions[1].alarm_name`) comes from; none for a
    /// path no field writes. A stop condition is the error-rate limit when it is the first
    /// and the limit is on (that is the order [`SpecForm::to_json`] writes them in), else an
    /// alarm.
    pub fn field_of(&self, path: &str) -> Option<Field> {
        if let Some(rest) = path.strip_prefix("guardrails.stop_conditions") {
            let index: Option<usize> = rest
                .strip_prefix('[')
                .and_then(|r| r.split(']').next())
                .and_then(|i| i.parse().ok());
            return Some(match index {
                Some(0) if self.stop_on_error_rate => Field::MaxErrorRate,
                _ => Field::Alarms,
            });
        }
        Some(match path {
            "name" => Field::Name,
            "description" => Field::Description,
            "target" | "target.kind" => Field::TargetKind,
            "target.group" => Field::Group,
            "selection" | "selection.mode" => Field::SelectionMode,
            "selection.value" => Field::SelectionValue,
            "max_targets" => Field::MaxTargets,
            "failure" | "failure.type" => Field::Failure,
            "failure.duration_secs" => Field::PauseSecs,
            "guardrails.max_duration_secs" => Field::MaxDurationSecs,
            "recovery.timeout_secs" => Field::RecoveryTimeoutSecs,
            "recovery" | "recovery.poll_interval_secs" => Field::PollIntervalSecs,
            "recovery.baseline_samples" => Field::BaselineSamples,
            _ => return None,
        })
    }

    /// The form showing `spec` (a template's, or an earlier experiment's); what `spec` lacks
    /// keeps its default.
    pub fn from_json(spec: &Value) -> SpecForm {
        let mut form = SpecForm::default();
        let text = |value: &Value| match value {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let set = |field: &mut String, value: &Value| {
            if let Some(value) = text(value) {
                *field = value;
            }
        };
        set(&mut form.name, &spec["name"]);
        set(&mut form.description, &spec["description"]);
        set(&mut form.target_kind, &spec["target"]["kind"]);
        set(&mut form.group, &spec["target"]["group"]);
        set(&mut form.selection_mode, &spec["selection"]["mode"]);
        set(&mut form.selection_value, &spec["selection"]["value"]);
        set(&mut form.max_targets, &spec["max_targets"]);
        set(&mut form.failure, &spec["failure"]["type"]);
        set(&mut form.pause_secs, &spec["failure"]["duration_secs"]);
        form.dry_run = spec["dry_run"].as_bool().unwrap_or(false);
        let conditions = spec["guardrails"]["stop_conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        form.stop_on_error_rate = false;
        let mut alarms = Vec::new();
        for condition in &conditions {
            match condition["type"].as_str() {
                Some("MAX_ERROR_RATE") => {
                    form.stop_on_error_rate = true;
                    set(&mut form.max_error_rate, &condition["percent"]);
                }
                Some("ALARM") => {
                    if let Some(name) = condition["alarm_name"].as_str() {
                        alarms.push(name.to_owned());
                    }
                }
                _ => {}
            }
        }
        form.alarms = alarms.join(", ");
        set(
            &mut form.max_duration_secs,
            &spec["guardrails"]["max_duration_secs"],
        );
        set(
            &mut form.recovery_timeout_secs,
            &spec["recovery"]["timeout_secs"],
        );
        set(
            &mut form.poll_interval_secs,
            &spec["recovery"]["poll_interval_secs"],
        );
        set(
            &mut form.baseline_samples,
            &spec["recovery"]["baseline_samples"],
        );
        form
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> SpecForm {
        SpecForm {
            name: " kill one ".into(),
            ..SpecForm::default()
        }
    }

    #[test]
    fn every_path_the_api_names_is_a_field_of_the_form() {
        let mut form = form();
        form.alarms = "a, b".into();
        let spec = form.to_json().expect("numbers");
        // Every leaf the form writes comes back to the field that wrote it.
        for (path, field) in [
            ("name", Field::Name),
            ("target.kind", Field::TargetKind),
            ("target.group", Field::Group),
            ("selection.mode", Field::SelectionMode),
            ("selection.value", Field::SelectionValue),
            ("max_targets", Field::MaxTargets),
            ("failure.type", Field::Failure),
            ("guardrails.stop_conditions[0].percent", Field::MaxErrorRate),
            ("guardrails.stop_conditions[0]", Field::MaxErrorRate),
            ("guardrails.stop_conditions[1].alarm_name", Field::Alarms),
            ("guardrails.stop_conditions[2]", Field::Alarms),
            ("guardrails.stop_conditions", Field::Alarms),
            ("guardrails.max_duration_secs", Field::MaxDurationSecs),
            ("recovery.timeout_secs", Field::RecoveryTimeoutSecs),
            ("recovery.poll_interval_secs", Field::PollIntervalSecs),
            ("recovery.baseline_samples", Field::BaselineSamples),
            ("recovery", Field::PollIntervalSecs),
        ] {
            assert_eq!(form.field_of(path), Some(field), "{path}");
        }
        assert_eq!(
            spec["guardrails"]["stop_conditions"][0]["type"],
            "MAX_ERROR_RATE"
        );
        form.stop_on_error_rate = false;
        assert_eq!(
            form.field_of("guardrails.stop_conditions[0].alarm_name"),
            Some(Field::Alarms)
        );
        assert_eq!(
            form.field_of("failure.duration_secs"),
            Some(Field::PauseSecs)
        );
        assert_eq!(form.field_of("dry_run"), None);
    }

    #[test]
    fn the_default_is_one_worker_with_an_error_rate_guardrail() {
        let spec = form().to_json().expect("numbers");
        assert_eq!(spec["name"], "kill one");
        assert_eq!(
            spec["target"],
            json!({ "kind": "LOCAL_FLEET", "group": "web" })
        );
        assert_eq!(spec["selection"], json!({ "mode": "COUNT", "value": 1 }));
        assert_eq!(spec["max_targets"], 1);
        assert_eq!(spec["failure"], json!({ "type": "TERMINATE" }));
        assert_eq!(spec["dry_run"], false);
        assert_eq!(
            spec["guardrails"]["stop_conditions"],
            json!([{ "type": "MAX_ERROR_RATE", "percent": 50 }])
        );
        assert!(spec.get("description").is_none(), "{spec}");
    }

    #[test]
    fn a_pause_says_for_how_long_and_all_has_no_value() {
        let spec = SpecForm {
            failure: "PAUSE".into(),
            pause_secs: "5".into(),
            selection_mode: "ALL".into(),
            selection_value: "not read".into(),
            ..form()
        }
        .to_json()
        .expect("numbers");
        assert_eq!(
            spec["failure"],
            json!({ "type": "PAUSE", "duration_secs": 5 })
        );
        assert_eq!(spec["selection"], json!({ "mode": "ALL" }));
    }

    #[test]
    fn alarms_become_stop_conditions_and_the_error_rate_can_be_left_out() {
        let spec = SpecForm {
            stop_on_error_rate: false,
            alarms: "web-errors, db-latency\nqueue-depth".into(),
            ..form()
        }
        .to_json()
        .expect("numbers");
        assert_eq!(
            spec["guardrails"]["stop_conditions"],
            json!([
                { "type": "ALARM", "alarm_name": "web-errors" },
                { "type": "ALARM", "alarm_name": "db-latency" },
                { "type": "ALARM", "alarm_name": "queue-depth" },
            ])
        );
    }

    #[test]
    fn a_field_that_is_not_a_number_is_named() {
        let wrong = SpecForm {
            selection_value: "two".into(),
            ..form()
        };
        assert_eq!(wrong.to_json(), Err(NotANumber("How many workers")));
        let wrong = SpecForm {
            selection_mode: "PERCENT".into(),
            selection_value: "-5".into(),
            ..form()
        };
        assert_eq!(wrong.to_json(), Err(NotANumber("Percent of the group")));
        let wrong = SpecForm {
            baseline_samples: "".into(),
            ..form()
        };
        assert_eq!(
            wrong.to_json().map_err(|e| e.to_string()),
            Err("Baseline samples must be a whole number.".to_owned())
        );
    }

    #[test]
    fn a_spec_comes_back_as_the_form_that_makes_it() {
        let original = SpecForm {
            name: "pause a third".into(),
            description: "Does the tier ride out a stall?".into(),
            target_kind: "AUTO_SCALING_GROUP".into(),
            group: "web-prod".into(),
            selection_mode: "PERCENT".into(),
            selection_value: "33".into(),
            max_targets: "2".into(),
            failure: "PAUSE".into(),
            pause_secs: "30".into(),
            dry_run: true,
            stop_on_error_rate: true,
            max_error_rate: "20".into(),
            alarms: "web-errors, db-latency".into(),
            max_duration_secs: "900".into(),
            recovery_timeout_secs: "120".into(),
            poll_interval_secs: "2".into(),
            baseline_samples: "5".into(),
        };
        let spec = original.to_json().expect("numbers");
        assert_eq!(SpecForm::from_json(&spec), original);
        assert_eq!(SpecForm::from_json(&spec).to_json(), Ok(spec));
    }

    #[test]
    fn every_field_is_read_and_written_by_name() {
        let fields = [
            Field::Name,
            Field::Description,
            Field::TargetKind,
            Field::Group,
            Field::SelectionMode,
            Field::SelectionValue,
            Field::MaxTargets,
            Field::Failure,
            Field::PauseSecs,
            Field::MaxErrorRate,
            Field::Alarms,
            Field::MaxDurationSecs,
            Field::RecoveryTimeoutSecs,
            Field::PollIntervalSecs,
            Field::BaselineSamples,
        ];
        let mut form = SpecForm::default();
        for (n, field) in fields.iter().enumerate() {
            form.set(*field, format!("value {n}"));
        }
        for (n, field) in fields.iter().enumerate() {
            assert_eq!(
                form.text(*field),
                format!("value {n}").as_str(),
                "{field:?}"
            );
        }
        // Each name wrote its own field: fifteen distinct values.
        let json_fields = [
            &form.name,
            &form.description,
            &form.target_kind,
            &form.group,
            &form.selection_mode,
            &form.selection_value,
            &form.max_targets,
            &form.failure,
            &form.pause_secs,
            &form.max_error_rate,
            &form.alarms,
            &form.max_duration_secs,
            &form.recovery_timeout_secs,
            &form.poll_interval_secs,
            &form.baseline_samples,
        ];
        for (n, value) in json_fields.iter().enumerate() {
            assert_eq!(**value, format!("value {n}"));
        }
        form.set_flag(Flag::DryRun, true);
        form.set_flag(Flag::StopOnErrorRate, false);
        assert!(form.flag(Flag::DryRun) && form.dry_run);
        assert!(!form.flag(Flag::StopOnErrorRate) && !form.stop_on_error_rate);
    }

    #[test]
    fn what_a_spec_lacks_keeps_its_default() {
        let form = SpecForm::from_json(&json!({ "name": "only a name" }));
        assert_eq!(form.name, "only a name");
        assert_eq!(form.group, "web");
        assert_eq!(form.baseline_samples, "3");
        // A spec without stop conditions has none: the form does not add one back.
        assert!(!form.stop_on_error_rate);
    }
}

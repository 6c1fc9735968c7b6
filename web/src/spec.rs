//! The spec the "run an experiment" form sends: the form asks only what a person decides (name,
//! group, failure, how many, dry run) and fills in guardrails and recovery timing suited to the
//! demo fleet. The API validates it; its `INVALID_INPUT` message is what the form shows.

use serde_json::{Value, json};

/// What the form asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimpleSpec {
    /// The experiment's name.
    pub name: String,
    /// The fleet's group (`web`).
    pub group: String,
    /// `TERMINATE` or `PAUSE`.
    pub failure: String,
    /// How long a paused worker stays paused (PAUSE only).
    pub pause_secs: u32,
    /// How many workers to hit.
    pub count: u32,
    /// Only resolve the targets.
    pub dry_run: bool,
}

impl SimpleSpec {
    /// The spec as `createExperiment` takes it.
    pub fn to_json(&self) -> Value {
        let failure = if self.failure == "PAUSE" {
            json!({ "type": "PAUSE", "duration_secs": self.pause_secs })
        } else {
            json!({ "type": self.failure })
        };
        json!({
            "name": self.name.trim(),
            "target": { "kind": "LOCAL_FLEET", "group": self.group.trim() },
            "selection": { "mode": "COUNT", "value": self.count },
            "max_targets": self.count.max(1),
            "failure": failure,
            "dry_run": self.dry_run,
            "guardrails": {
                "stop_conditions": [{ "type": "MAX_ERROR_RATE", "percent": 50 }],
                "max_duration_secs": 600
            },
            "recovery": { "timeout_secs": 60, "poll_interval_secs": 1, "baseline_samples": 3 }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminate_spec_has_no_pause_duration() {
        let spec = SimpleSpec {
            name: " kill one ".into(),
            group: "web".into(),
            failure: "TERMINATE".into(),
            pause_secs: 10,
            count: 1,
            dry_run: false,
        }
        .to_json();
        assert_eq!(spec["name"], "kill one");
        assert_eq!(spec["failure"], json!({ "type": "TERMINATE" }));
        assert_eq!(spec["selection"]["value"], 1);
        assert_eq!(spec["dry_run"], false);
    }

    #[test]
    fn a_pause_spec_says_for_how_long() {
        let spec = SimpleSpec {
            name: "pause two".into(),
            group: "web".into(),
            failure: "PAUSE".into(),
            pause_secs: 5,
            count: 2,
            dry_run: true,
        }
        .to_json();
        assert_eq!(
            spec["failure"],
            json!({ "type": "PAUSE", "duration_secs": 5 })
        );
        assert_eq!(spec["max_targets"], 2);
    }
}

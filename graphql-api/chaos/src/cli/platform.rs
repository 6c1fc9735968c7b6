//! `chaos platform`, `chaos schedule`, `chaos blackout`: the halt switch, the limits, recurring
//! schedules and blackout windows.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use command_lambdas::clock::{Clock, SystemClock};
use command_lambdas::service::ServiceError;
use domain::Timestamp;
use domain::platform::PlatformConfig;
use domain::schedule::BlackoutWindow;
use embedded_write::sqlite::{OpenMode, open};
use serde_json::json;

use super::{CliError, ProvenanceArgs, context, print_json, read_spec, service_over};

#[derive(Debug, Subcommand)]
pub(crate) enum PlatformCommand {
    /// Print the halt switch and configuration.
    Show,
    /// Turn the halt switch on: no experiment starts until it is lifted.
    Halt {
        /// Why (recorded in the log).
        #[arg(long)]
        reason: String,
    },
    /// Lift the halt switch.
    Unhalt,
    /// Replace the platform-wide limits.
    Config {
        /// Most targets any one run may hit.
        #[arg(long)]
        max_targets_per_run: u32,
        /// Longest run allowed, in seconds.
        #[arg(long)]
        max_duration_secs: u32,
    },
}

pub(crate) async fn platform(
    db: &Path,
    p: &ProvenanceArgs,
    cmd: PlatformCommand,
) -> Result<(), CliError> {
    let ctx = context(p)?;
    let service = service_over(open(db, OpenMode::MustExist).await?);
    let outcome = match cmd {
        PlatformCommand::Show => {
            let state = service.platform().await?;
            let halted = state.aggregate.halted();
            return print_json(&json!({
                "halted": halted.is_some(),
                "halt_reason": halted.map(|h| h.0),
                "halted_at": halted.map(|h| h.1),
                "config": state.aggregate.config(),
                "ledgers": state.books,
            }));
        }
        PlatformCommand::Halt { reason } => service.halt(&reason, &ctx).await?,
        PlatformCommand::Unhalt => service.lift_halt(&ctx).await?,
        PlatformCommand::Config {
            max_targets_per_run,
            max_duration_secs,
        } => {
            let config = PlatformConfig {
                max_targets_per_run,
                max_duration_secs,
            };
            service.update_config(config, &ctx).await?
        }
    };
    print_json(&outcome)
}

#[derive(Debug, Subcommand)]
pub(crate) enum ScheduleCommand {
    /// Run an experiment of SPEC at every time CRON names in the time zone.
    Add {
        /// Schedule id (the runs are named `<id>-<YYYYMMDDTHHMM>Z`, in UTC).
        #[arg(long)]
        id: String,
        /// Five fields: minute hour day-of-month month day-of-week (e.g. "30 10 * * MON-FRI").
        #[arg(long)]
        cron: String,
        /// IANA time zone the times are in (e.g. Europe/Berlin).
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// Spec file of each run, or `-` for standard input.
        #[arg(long)]
        spec: PathBuf,
    },
    /// Remove a schedule (runs it started are not touched).
    Remove {
        /// Schedule id.
        id: String,
    },
    /// The schedules, with each one's next run.
    List,
}

pub(crate) async fn schedules(
    db: &Path,
    p: &ProvenanceArgs,
    cmd: ScheduleCommand,
) -> Result<(), CliError> {
    let ctx = context(p)?;
    let service = service_over(open(db, OpenMode::MustExist).await?);
    match cmd {
        ScheduleCommand::Add { id, cron, tz, spec } => {
            let spec = read_spec(&spec)?;
            print_json(&service.add_schedule(&id, &cron, &tz, spec, &ctx).await?)
        }
        ScheduleCommand::Remove { id } => print_json(&service.remove_schedule(&id, &ctx).await?),
        ScheduleCommand::List => {
            let platform = service.platform().await?.aggregate;
            let now = SystemClock.now();
            let list: Vec<serde_json::Value> = platform
                .schedules()
                .iter()
                .map(|(id, s)| {
                    let next = s.next_after(now);
                    json!({
                        "id": id,
                        "cron": s.cron,
                        "time_zone": s.time_zone,
                        "name": s.spec.name(),
                        "target": s.spec.target().key(),
                        "next_run": next,
                        "next_run_in_blackout": next.and_then(|n| platform.blackout_at(n)),
                    })
                })
                .collect();
            print_json(&list)
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum BlackoutCommand {
    /// Add a window: daily (--daily 22:00-06:00 --tz Europe/Berlin [--days FRI,SAT]) or once
    /// (--from T --to T, RFC 3339).
    Add {
        /// Window id.
        #[arg(long)]
        id: String,
        /// Daily wall-clock span START-END (END before START ends the next morning).
        #[arg(long, conflicts_with_all = ["from", "to"], required_unless_present = "from")]
        daily: Option<String>,
        /// Time zone of a daily window.
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// Days of a daily window (MON..SUN, comma-separated; default every day).
        #[arg(long, value_delimiter = ',')]
        days: Vec<String>,
        /// Start of a one-off window.
        #[arg(long, requires = "to")]
        from: Option<Timestamp>,
        /// End of a one-off window.
        #[arg(long, requires = "from")]
        to: Option<Timestamp>,
    },
    /// Remove a window.
    Remove {
        /// Window id.
        id: String,
    },
    /// The windows, and whether now falls in one.
    List,
}

pub(crate) async fn blackouts(
    db: &Path,
    p: &ProvenanceArgs,
    cmd: BlackoutCommand,
) -> Result<(), CliError> {
    let ctx = context(p)?;
    let service = service_over(open(db, OpenMode::MustExist).await?);
    match cmd {
        BlackoutCommand::Add {
            id,
            daily,
            tz,
            days,
            from,
            to,
        } => {
            let window = match (daily, from, to) {
                (Some(span), _, _) => {
                    let (start, end) = span.split_once('-').ok_or_else(|| {
                        CliError::Service(ServiceError::InvalidInput(domain::spec::SpecError {
                            problems: vec![domain::spec::Problem {
                                field: "daily".into(),
                                message: format!("{span:?} is not START-END, like 22:00-06:00"),
                            }],
                        }))
                    })?;
                    BlackoutWindow::Daily {
                        time_zone: tz,
                        start: start.to_owned(),
                        end: end.to_owned(),
                        days,
                    }
                }
                (None, Some(from), Some(to)) => BlackoutWindow::Once { from, to },
                _ => unreachable_window()?,
            };
            print_json(&service.add_blackout(&id, window, &ctx).await?)
        }
        BlackoutCommand::Remove { id } => print_json(&service.remove_blackout(&id, &ctx).await?),
        BlackoutCommand::List => {
            let platform = service.platform().await?.aggregate;
            print_json(&json!({
                "windows": platform.blackouts(),
                "now_in": platform.blackout_at(SystemClock.now()),
            }))
        }
    }
}

/// clap requires `--daily` or both `--from` and `--to`; this says so if that ever slips.
fn unreachable_window() -> Result<BlackoutWindow, CliError> {
    Err(CliError::Service(ServiceError::InvalidInput(
        domain::spec::SpecError {
            problems: vec![domain::spec::Problem {
                field: "window".into(),
                message: "give --daily START-END, or --from and --to".into(),
            }],
        },
    )))
}

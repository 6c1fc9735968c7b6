//! Hard limits, chosen so that one experiment's stream always loads whole from DynamoDB.
//!
//! The arithmetic is checked by a test (`worst_case_stream_fits_one_dynamodb_page`): the longest
//! stream `decide` can produce (1 created, [`MAX_SCHEDULES`] scheduled, [`MAX_HEALTH_SAMPLES`]
//! health checks and each once-only event, every string at its maximum length, the largest
//! metadata) stays under [`STREAM_BYTE_BUDGET`], half of DynamoDB's 1 MB page, the most
//! dynamo-es reads in one load. The per-type caps carry that bound; [`MAX_EXPERIMENT_EVENTS`]
//! is the backstop the store layer enforces for every aggregate.

/// Upper bound on the events in one experiment stream.
pub const MAX_EXPERIMENT_EVENTS: usize = 256;
/// Most events one book of a ledger holds (its opening and closing events included); the store
/// closes a book sooner when its bytes near [`STREAM_BYTE_BUDGET`].
pub const MAX_BOOK_EVENTS: usize = 1_000;
/// Upper bound on `HealthChecked` events in one run (baseline samples plus recovery polls).
pub const MAX_HEALTH_SAMPLES: u32 = 200;
/// How many times one experiment may be (re)scheduled before it starts.
pub const MAX_SCHEDULES: u32 = 10;
/// No selector may ever hit more targets than this, whatever it asks for.
pub const HARD_TARGET_CAP: u32 = 50;
/// Most stop conditions on one experiment.
pub const MAX_STOP_CONDITIONS: usize = 5;
/// Longest experiment name, in characters.
pub const MAX_NAME_CHARS: usize = 128;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1_024;
/// Longest free-text reason or detail carried in an event, in characters.
pub const MAX_TEXT_CHARS: usize = 512;
/// Longest identifier (experiment, target, group, alarm, actor, command), in characters.
pub const MAX_ID_CHARS: usize = 128;
/// Longest target group name (an Auto Scaling group name may have 255 characters).
pub const MAX_GROUP_CHARS: usize = 255;
/// Longest target id (an EC2 instance id has 19 characters, a local worker id fewer).
pub const MAX_TARGET_ID_CHARS: usize = 64;
/// Budget for one stream as stored, in bytes: half of a DynamoDB query page.
pub const STREAM_BYTE_BUDGET: usize = 512 * 1024;
/// Most webhook subscriptions at once.
pub const MAX_WEBHOOKS: usize = 20;

/// Most API keys in force at once.
pub const MAX_API_KEYS: usize = 100;
/// Most users of the embedded identity provider at once.
pub const MAX_USERS: usize = 200;
/// Longest user name, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;
/// Longest webhook URL, in bytes.
pub const MAX_URL_BYTES: usize = 2_048;

/// Recurring schedules at most (platform-wide).
pub const MAX_RECURRING_SCHEDULES: usize = 50;

/// Blackout windows at most (platform-wide).
pub const MAX_BLACKOUTS: usize = 50;

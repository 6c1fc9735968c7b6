//! What the signed-in user asked to see, from their preferences: times in their time zone,
//! pages of rows of their length, and notices of the outcomes they chose. Whatever shows a time or a page reads [`SHOWN`], and
//! shows them anew when the user changes their preferences.
//!
//! Times read from a form (`datetime-local`) are in that time zone too: the browser's `Intl`
//! says what the zone's clocks read at an instant, and [`web::clock`] finds the instant a
//! reading stands for.

use dioxus::prelude::*;
use serde_json::{Value, json};
use wasm_bindgen::JsValue;
use wasm_bindgen::prelude::wasm_bindgen;
use web::clock;

use super::api::{call, use_api};
use super::session::Session;

/// The preferences that change what pages show.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    /// An IANA time zone (`Europe/Berlin`).
    pub zone: String,
    /// Rows per page of a list.
    pub page_size: u32,
    /// The outcomes the user is told of in the dashboard (`FAILED`, `HALTED`, ...).
    pub notify_on: Vec<String>,
}

impl Shown {
    /// From the API's `Preferences` (`timeZone`, `pageSize`), whatever it lacks as before.
    pub fn from_preferences(preferences: &Value) -> Shown {
        let before = SHOWN.peek().clone();
        Shown {
            zone: preferences["timeZone"]
                .as_str()
                .map_or(before.zone, str::to_owned),
            page_size: preferences["pageSize"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .unwrap_or(before.page_size),
            notify_on: preferences["notifyOn"]
                .as_array()
                .map_or(before.notify_on, |items| {
                    items
                        .iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                }),
        }
    }
}

fn unset() -> Shown {
    Shown {
        zone: "UTC".to_owned(),
        page_size: 20,
        notify_on: Vec::new(),
    }
}

/// The signed-in user's [`Shown`] (UTC, 20 rows and no notices until their preferences are
/// read).
pub static SHOWN: GlobalSignal<Shown> = Signal::global(unset);

fn show(shown: Shown) {
    // Only a change shows anew.
    if *SHOWN.peek() != shown {
        *SHOWN.write() = shown;
    }
}

/// Reads the signed-in user's preferences into [`SHOWN`] when a user signs in (not at each
/// renewal of their session); back to UTC and 20 rows once nobody is signed in.
pub fn use_preferences(session: Signal<Option<Session>>) {
    let mut read_for = None::<String>;
    use_api(move || {
        let user = session.read().as_ref().map(|s| s.user.clone());
        let unread = user.is_some() && user != read_for;
        read_for.clone_from(&user);
        Box::pin(async move {
            if user.is_none() {
                show(unset());
            }
            if !unread {
                return Ok(Value::Null);
            }
            let data = call(
                session,
                "{ preferences { timeZone pageSize notifyOn } }",
                json!({}),
            )
            .await?;
            show(Shown::from_preferences(&data["preferences"]));
            Ok(data)
        })
    });
}

// What the clocks of a time zone read at an instant, from the browser's `Intl` (which knows
// the zones; this bundle does not). `sv-SE` writes dates and times as ISO 8601 does:
// `2026-11-27 09:12:47 CET`. Undefined for a zone the browser does not know. The formatter of
// the last zone is kept: a page formats all its times in one.
#[wasm_bindgen(inline_js = "let last;
export function reading(ms, zone) {
  try {
    if (!last || last.zone !== zone) {
      last = { zone, format: new Intl.DateTimeFormat('sv-SE', { timeZone: zone, year: 'numeric',
        month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
        hourCycle: 'h23', timeZoneName: 'short' }).format };
    }
    return last.format(ms);
  } catch (e) {
    return undefined;
  }
}")]
extern "C" {
    /// `ms` (since the epoch) as the clocks of `zone` read it, with the zone's short name.
    fn reading(ms: f64, zone: &str) -> Option<String>;
}

/// An RFC 3339 time as the user's clocks read it: `2026-11-27 09:12:47 CET`. (In UTC, as
/// stored, if the browser cannot say.)
pub fn when(at: &str) -> String {
    let zone = SHOWN.read().zone.clone();
    let ms = js_sys::Date::parse(at);
    (!ms.is_nan())
        .then(|| reading(ms, &zone))
        .flatten()
        .unwrap_or_else(|| format!("{} UTC", at.get(..19).unwrap_or(at).replace('T', " ")))
}

/// A reading of the user's clocks (`2026-11-27T09:30`, as a `datetime-local` field holds it)
/// as an RFC 3339 UTC time with milliseconds (so that it compares with recorded times as text
/// does); none for an empty or unreadable one.
pub fn utc(local: &str) -> Option<String> {
    let zone = SHOWN.peek().zone.clone();
    let wall_of = |ms: f64| clock::wall_ms(reading(ms, &zone)?.get(..19)?);
    let ms = clock::utc_of_wall(clock::wall_ms(local)?, wall_of)?;
    Some(String::from(
        js_sys::Date::new(&JsValue::from_f64(ms)).to_iso_string(),
    ))
}

/// The start of day `date` (`2026-11-27`, as a date field holds it) plus `days`, on the
/// user's clocks, as [`utc`] gives it; none for an empty or unreadable date. (Through the
/// calendar, not by adding hours: a day with a clock change is not 24 hours long.)
pub fn midnight(date: &str, days: u32) -> Option<String> {
    let day = web::report::parse_day(date)? + i64::from(days);
    utc(&format!("{}T00:00", web::report::format_day(day)))
}

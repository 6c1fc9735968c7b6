//! The Dioxus web dashboard (compiled to wasm32 and served by `chaos serve`).
//!
//! Pages: login, home (health, running experiments live, recent history, halt-all), the
//! experiments list, an experiment with its live timeline, and a form that runs an experiment
//! against a fleet. It talks to the GraphQL API only (queries and mutations over HTTP,
//! subscriptions over `graphql-transport-ws`); it holds no state the server does not have.
//!
//! This library is the dashboard's pure part, the same on every target and unit-tested on the
//! host: its routes, the delays it reconnects after, the spec its form sends, and the results
//! page's figures, chart geometry and exports (CSV, JSON, and PDF from its own small writer), and
//! the instant a reading of a time zone's clocks stands for. The components are in the `web`
//! binary, built for the browser only.

pub mod backoff;
pub mod chart;
pub mod clock;
pub mod export;
pub mod pdf;
pub mod report;
pub mod route;
pub mod spec;
pub mod units;

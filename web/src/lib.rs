//! The Dioxus web dashboard (compiled to wasm32 and served by `chaos serve`).
//!
//! Pages: login, home (health, running experiments, halt-all), experiments and their live
//! timelines, run an experiment, results and analytics, audit log, settings. It talks to the
//! GraphQL API only; it holds no state the server does not have.

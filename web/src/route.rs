//! The dashboard's pages and their paths (the server answers each of these paths with the
//! app, see `graphql-api/src/dashboard.rs`).

/// A page of the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Signing in.
    Login,
    /// Health, running experiments, recent history.
    Home,
    /// The experiments list.
    Experiments,
    /// The form that creates and starts an experiment.
    NewExperiment,
    /// One experiment and its timeline.
    Experiment(String),
    /// Results and analytics of finished runs.
    Results,
    /// The audit log and its hash chain's status.
    Audit,
    /// Profile, preferences, webhooks, API keys and the platform's configuration.
    Settings,
}

impl Route {
    /// One of every page (an experiment's with the id `sample`): the server answers each of
    /// their paths with the app, and its tests check it does. A new page belongs here.
    pub fn every() -> [Route; 8] {
        [
            Route::Login,
            Route::Home,
            Route::Experiments,
            Route::NewExperiment,
            Route::Experiment("sample".to_owned()),
            Route::Results,
            Route::Audit,
            Route::Settings,
        ]
    }

    /// The page at `path` (anything unknown is the home page).
    pub fn parse(path: &str) -> Route {
        let path = path.split(['?', '#']).next().unwrap_or_default();
        let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        match segments.as_slice() {
            ["login"] => Route::Login,
            ["experiments"] => Route::Experiments,
            ["experiments", "new"] => Route::NewExperiment,
            ["experiments", id] => Route::Experiment((*id).to_owned()),
            ["results"] => Route::Results,
            ["audit"] => Route::Audit,
            ["settings"] => Route::Settings,
            _ => Route::Home,
        }
    }

    /// Its path.
    pub fn path(&self) -> String {
        match self {
            Route::Login => "/login".to_owned(),
            Route::Home => "/".to_owned(),
            Route::Experiments => "/experiments".to_owned(),
            Route::NewExperiment => "/experiments/new".to_owned(),
            Route::Experiment(id) => format!("/experiments/{id}"),
            Route::Results => "/results".to_owned(),
            Route::Audit => "/audit".to_owned(),
            Route::Settings => "/settings".to_owned(),
        }
    }

    /// The title the browser shows for it.
    pub fn title(&self) -> String {
        let page = match self {
            Route::Login => "Sign in",
            Route::Home => "Home",
            Route::Experiments => "Experiments",
            Route::NewExperiment => "Run an experiment",
            Route::Experiment(_) => "Experiment",
            Route::Results => "Results",
            Route::Audit => "Audit log",
            Route::Settings => "Settings",
        };
        format!("{page} · Chaos platform")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_pages_agree() {
        for route in Route::every() {
            assert_eq!(Route::parse(&route.path()), route);
        }
        assert_eq!(
            Route::parse("/experiments/0192-abc"),
            Route::Experiment("0192-abc".to_owned())
        );
    }

    #[test]
    fn queries_trailing_slashes_and_unknown_paths() {
        assert_eq!(Route::parse("/experiments/?x=1"), Route::Experiments);
        assert_eq!(
            Route::parse("/experiments/e1#top"),
            Route::Experiment("e1".into())
        );
        assert_eq!(Route::parse("/results/?from=2026-11-01"), Route::Results);
        assert_eq!(Route::Results.title(), "Results · Chaos platform");
        assert_eq!(Route::parse("/results/extra"), Route::Home);
        assert_eq!(Route::parse("/audit?actor=ada"), Route::Audit);
        assert_eq!(Route::parse("/settings/"), Route::Settings);
        assert_eq!(Route::Audit.title(), "Audit log · Chaos platform");
        assert_eq!(Route::parse("/nowhere/at/all"), Route::Home);
        assert_eq!(Route::parse(""), Route::Home);
    }
}

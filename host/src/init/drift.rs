//! Prefix drift: the prefix router's `django_prefixes`, written once by `isthmus init`,
//! compared with what `manage.py isthmus_prefixes` reports now. A prefix added to
//! `urls.py` since then is missing from the config, so its requests reach the SPA; one
//! removed is still sent to Django, which answers 404. `isthmus check` fails on drift,
//! `isthmus run` logs it and serves.
//!
//! The project is named by the config's `[django]` section (`manage`, optional
//! `python`); without it nothing is compared. What Django reports goes through `plan`,
//! the filter `init` writes the config with, so Reflex's reserved paths, STATIC_URL and
//! a served MEDIA_URL are left out here exactly as there.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::discover::Layout;
use super::django::{self, Report};
use super::InitError;
use crate::config::Config;

/// What the prefix router assumes when its config has no `django_prefixes`
/// (guest-plugins/prefix-router, `DEFAULT_DJANGO_PREFIXES`).
const ROUTER_DEFAULT_PREFIXES: [&str; 2] = ["/admin", "/api"];

/// One prefix router whose `django_prefixes` differ from Django's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// `routing.routers[N].config.django_prefixes`.
    pub key: String,
    /// Reported by Django, not in the config: requests there go to the SPA.
    pub added: Vec<String>,
    /// In the config, no longer reported by Django.
    pub gone: Vec<String>,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: differs from Django's URL prefixes now (manage.py isthmus_prefixes):", self.key)?;
        if !self.added.is_empty() {
            write!(
                f,
                " new in Django but missing here (requests there go to the SPA, not Django): {};",
                self.added.join(", ")
            )?;
        }
        if !self.gone.is_empty() {
            write!(
                f,
                " listed here but gone from Django (sent to Django, which has no route): {};",
                self.gone.join(", ")
            )?;
        }
        write!(f, " update the list (or rerun `isthmus init` in a fresh folder and compare)")
    }
}

/// The interpreter and manage.py of the config's `[django]` section, if it has one.
pub fn source(config: &Config) -> Option<(PathBuf, PathBuf)> {
    let django = config.django.as_ref()?;
    Some((django::interpreter(django.python.as_deref()), django.manage.clone()))
}

/// Asks Django for its report: `python manage.py isthmus_prefixes` in manage.py's folder,
/// stopped after `timeout`.
pub fn ask(python: &Path, manage: &Path, timeout: Duration) -> Result<Report, InitError> {
    if !manage.is_file() {
        return Err(InitError::Read {
            path: manage.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file ([django] manage)"),
        });
    }
    let dir = manage.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    django::report(python, dir, None, timeout)
}

/// Each prefix router (`builtin:prefix-router` or a `prefix_router.wasm`) whose
/// `django_prefixes` differ from what `init` would write from `report` now.
pub fn compare(config: &Config, report: &Report) -> Vec<Drift> {
    let layout = Layout { django_dir: ".".into(), reflex_dir: ".".into() };
    let (project, _warnings) = super::plan(Path::new("/"), &layout, "", "", report);
    let wanted = project.prefixes;
    let mut drifts = Vec::new();
    for (i, router) in config.routing.routers.iter().enumerate() {
        if !is_prefix_router(&router.plugin) {
            continue;
        }
        let listed: Vec<String> = match router.config.get("django_prefixes").and_then(|v| v.as_array()) {
            Some(list) => list.iter().filter_map(|v| v.as_str()).map(str::to_owned).collect(),
            None => ROUTER_DEFAULT_PREFIXES.map(String::from).into(),
        };
        let added: Vec<String> = wanted.iter().filter(|p| !listed.contains(p)).cloned().collect();
        let gone: Vec<String> = listed.iter().filter(|p| !wanted.contains(p)).cloned().collect();
        if !added.is_empty() || !gone.is_empty() {
            drifts.push(Drift { key: format!("routing.routers[{i}].config.django_prefixes"), added, gone });
        }
    }
    drifts
}

/// `init`'s advice, in the config's terms: the interpreter is `[django] python` here.
fn for_config(e: &InitError) -> String {
    e.to_string()
        .replace(
            "pass --python with the project's interpreter (e.g. --python .venv/bin/python) or activate its virtualenv",
            "set [django] python to the project's interpreter (e.g. \".venv/bin/python\") or activate its virtualenv",
        )
        .replace(
            "or pass --python with the project's interpreter",
            "or set [django] python to the project's interpreter",
        )
}

fn is_prefix_router(plugin: &str) -> bool {
    plugin == "builtin:prefix-router" || Path::new(plugin).file_name().is_some_and(|f| f == "prefix_router.wasm")
}

/// `isthmus check`: the drift as one message (each router on its own line), `Ok` when
/// there is none or no `[django]` section to ask.
pub fn check(config: &Config) -> Result<(), String> {
    let Some((python, manage)) = source(config) else {
        tracing::debug!("no [django] section in the config: Django's URL prefixes are not compared with it");
        return Ok(());
    };
    let report = ask(&python, &manage, crate::limits::DJANGO_REPORT_TIMEOUT)
        .map_err(|e| format!("django: cannot compare the config's prefixes with Django's: {}", for_config(&e)))?;
    let drifts = compare(config, &report);
    match drifts.is_empty() {
        true => Ok(()),
        false => Err(drifts.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")),
    }
}

/// `isthmus run`: the same comparison on a thread of its own, each drift or failure a
/// warning in the log; serving never waits for it.
pub fn warn_in_background(config: &Config) {
    let Some((python, manage)) = source(config) else {
        tracing::debug!("no [django] section in the config: Django's URL prefixes are not compared with it");
        return;
    };
    let config = config.clone();
    let spawned = std::thread::Builder::new().name("prefix-drift".into()).spawn(move || {
        match ask(&python, &manage, crate::limits::DJANGO_REPORT_TIMEOUT) {
            Ok(report) => {
                let drifts = compare(&config, &report);
                for drift in &drifts {
                    tracing::warn!(file = %config.file.display(), "{drift}");
                }
                if drifts.is_empty() {
                    tracing::debug!("the config's Django prefixes match what Django reports");
                }
            }
            Err(e) => tracing::warn!("cannot compare the config's prefixes with Django's: {}", for_config(&e)),
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("cannot compare the config's prefixes with Django's: no thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(routers: &str) -> Config {
        let text = format!(
            "[listen]\naddr = \"127.0.0.1:3000\"\n[upstreams.django]\nurl = \"http://127.0.0.1:8001\"\n[upstreams.reflex]\nurl = \"http://127.0.0.1:8000\"\n[static.frontend]\nroot = \".\"\n[static.media]\nroot = \".\"\n[routing]\n{routers}"
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("plugins")).unwrap();
        for plugin in ["prefix_router.wasm", "my_router.wasm"] {
            std::fs::write(dir.path().join("plugins").join(plugin), b"checked when loaded, not here").unwrap();
        }
        Config::parse(&text, &dir.path().join("isthmus.toml")).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    fn report(prefixes: &[&str]) -> Report {
        Report {
            prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
            static_url: Some("/static/".into()),
            ..Report::default()
        }
    }

    const ROUTERS: &str = "[[routing.routers]]\nplugin = \"builtin:prefix-router\"\nconfig = { django_prefixes = [\"/_isthmus\", \"/admin\", \"/api\"] }\n";

    #[test]
    fn no_drift_when_django_agrees_after_inits_filtering() {
        // /static (STATIC_URL) and /ping (Reflex's) are left out by init, so not missed here.
        let drifts = compare(&config(ROUTERS), &report(&["/_isthmus", "/admin", "/api", "/ping", "/static"]));
        assert_eq!(drifts, []);
    }

    #[test]
    fn names_added_and_gone_prefixes_with_the_key() {
        let two = format!("[[routing.routers]]\nplugin = \"my_router.wasm\"\n{ROUTERS}");
        let drifts = compare(&config(&two), &report(&["/_isthmus", "/admin", "/shop"]));
        assert_eq!(
            drifts,
            [Drift {
                key: "routing.routers[1].config.django_prefixes".into(),
                added: vec!["/shop".into()],
                gone: vec!["/api".into()]
            }]
        );
        let text = drifts[0].to_string();
        assert!(text.contains("routing.routers[1].config.django_prefixes"), "{text}");
        assert!(text.contains("missing here (requests there go to the SPA, not Django): /shop"), "{text}");
        assert!(text.contains("gone from Django (sent to Django, which has no route): /api"), "{text}");
    }

    #[test]
    fn a_router_without_the_key_is_compared_with_its_default() {
        let drifts = compare(&config("[[routing.routers]]\nplugin = \"prefix_router.wasm\"\n"), &report(&["/admin"]));
        assert_eq!(drifts[0].gone, ["/api"]);
    }

    #[test]
    fn a_served_media_url_is_not_a_django_prefix() {
        let mut r = report(&["/_isthmus", "/admin", "/api", "/media"]);
        r.media_url = Some("/media/".into());
        r.media_root = Some("/srv/media".into());
        assert_eq!(compare(&config(ROUTERS), &r), []);
    }

    #[test]
    fn without_a_django_section_nothing_is_asked() {
        assert!(source(&config(ROUTERS)).is_none());
        assert_eq!(check(&config(ROUTERS)), Ok(()));
    }
}

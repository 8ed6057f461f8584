//! `isthmus init [DIR]`: writes an `isthmus.toml` for a folder holding a Django project
//! (`manage.py`) and a Reflex app (`rxconfig.py`), with the Django URL prefixes, static
//! files and identity settings the project reports through the companion app's
//! `manage.py isthmus_prefixes`, and fresh secrets in a private `isthmus.env` beside it
//! (the toml names them `env:…`, so it can be committed). Never overwrites either file.

mod discover;
mod django;
pub mod drift;
mod files;
mod template;

use std::path::{Path, PathBuf};

use discover::Layout;
use django::Report;

pub const CONFIG_FILE: &str = "isthmus.toml";
pub const ENV_FILE: &str = "isthmus.env";
/// The config's `routing.plugins_dir`, where `init` writes the default policies.
pub const PLUGINS_DIR: &str = "plugins";

/// Reflex's own paths (the prefix router refuses Django prefixes overlapping them).
const REFLEX_PATHS: [&str; 6] = ["/_event", "/_upload", "/_health", "/ping", "/_all_routes", "/auth-codespace"];
const DEFAULT_LOGIN_URL: &str = "/admin/login/";
const DEFAULT_IDENTITY_PATH: &str = "/_isthmus/identity";
const IDENTITY_INCLUDE: &str = "path(\"_isthmus/\", include(\"isthmus_django.urls\"))";

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("`{}` is not a directory", .0.display())]
    NotADirectory(PathBuf),
    #[error("found no {what} in `{}` or its immediate subfolders; `isthmus init` needs both a Django project (manage.py) and a Reflex app (rxconfig.py)", dir.display())]
    Missing { dir: PathBuf, what: String },
    #[error("found several {file}: {}; run `isthmus init` on a folder where there is one", found.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    Ambiguous { file: &'static str, found: Vec<PathBuf> },
    #[error("`{}` already exists; `isthmus init` does not overwrite it (move it away to start afresh)", .0.display())]
    Exists(PathBuf),
    #[error("cannot read `{}`: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write `{}`: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("`{}` sets no DJANGO_SETTINGS_MODULE default (os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"…\")) and the environment has none: set DJANGO_SETTINGS_MODULE", .0.display())]
    NoSettingsModule(PathBuf),
    #[error("`{}` sets no app_name (rx.Config(app_name=\"…\"))", .0.display())]
    NoAppName(PathBuf),
    #[error("cannot run `{}`: {source}; pass --python with the project's interpreter (e.g. --python .venv/bin/python) or activate its virtualenv", python.display())]
    PythonSpawn { python: PathBuf, source: std::io::Error },
    #[error("the companion app is not installed in the Django project: add \"isthmus_django\" to INSTALLED_APPS in {settings}, and make sure its ROOT_URLCONF's urlpatterns have {IDENTITY_INCLUDE} (the event bridge's identity endpoint)")]
    CompanionNotInstalled { settings: String },
    #[error("{package} is not installed for `{command}`; install it, or pass --python with the project's interpreter:\n{stderr}")]
    PackageMissing { command: String, package: &'static str, stderr: String },
    #[error("`{command}` failed ({status}):\n{stderr}")]
    PythonFailed { command: String, status: String, stderr: String },
    #[error("`{command}` did not answer within {}s: stopped", .timeout.as_secs())]
    TimedOut { command: String, timeout: std::time::Duration },
    #[error("`{command}` did not report the project: {message}")]
    BadReport { command: String, message: String },
    #[error("cannot generate a secret: {0}")]
    Random(getrandom::Error),
}

/// Everything the config is written from, paths relative to the project root.
#[derive(Debug, Clone)]
pub struct Project {
    pub django_dir: String,
    pub reflex_dir: String,
    pub settings_module: String,
    pub root_urlconf: String,
    pub app_name: String,
    /// `module:attribute` for uvicorn.
    pub asgi_application: String,
    pub django_health: Option<String>,
    pub prefixes: Vec<String>,
    /// STATIC_URL without its trailing slash.
    pub static_prefix: String,
    /// STATIC_ROOT, when set and STATIC_URL is a path on this site.
    pub static_root: Option<String>,
    /// `(MEDIA_URL without its trailing slash, MEDIA_ROOT)`, when both are set and
    /// MEDIA_URL is a path on this site: the `[static.media]` mount.
    pub media: Option<(String, String)>,
    /// The `[django]` section's `python`: the interpreter given to `init`, if any.
    pub python: Option<String>,
    pub identity_path: String,
    pub session_cookie: String,
    pub login_url: String,
}

/// Runs `isthmus init` on `dir`; prints what it wrote and what to do next.
pub fn run(dir: &Path, python: Option<&Path>) -> Result<(), InitError> {
    if !dir.is_dir() {
        return Err(InitError::NotADirectory(dir.to_owned()));
    }
    let (config_path, env_path) = (dir.join(CONFIG_FILE), dir.join(ENV_FILE));
    for path in [&config_path, &env_path] {
        if path.symlink_metadata().is_ok() {
            return Err(InitError::Exists(path.clone()));
        }
    }
    let layout = discover::layout(dir)?;
    let manage_py = dir.join(&layout.django_dir).join("manage.py");
    let rxconfig_py = dir.join(&layout.reflex_dir).join("rxconfig.py");
    let read =
        |path: &Path| std::fs::read_to_string(path).map_err(|source| InitError::Read { path: path.to_owned(), source });
    let rxconfig = read(&rxconfig_py)?;
    let settings = match std::env::var("DJANGO_SETTINGS_MODULE") {
        Ok(from_env) if !from_env.is_empty() => from_env,
        _ => discover::settings_default(&read(&manage_py)?)
            .ok_or_else(|| InitError::NoSettingsModule(manage_py.clone()))?,
    };
    let app_name = discover::app_name(&rxconfig).ok_or_else(|| InitError::NoAppName(rxconfig_py.clone()))?;
    let report = django::report(
        &django::interpreter(python),
        &dir.join(&layout.django_dir),
        Some(settings.as_str()),
        crate::limits::DJANGO_REPORT_TIMEOUT,
    )?;
    let root = dir.canonicalize().map_err(|source| InitError::Read { path: dir.to_owned(), source })?;
    let (mut project, mut warnings) = plan(&root, &layout, &settings, &app_name, &report);
    // What `check` and `run` ask Django with: a path made absolute (then relative to the
    // project when inside it), a bare name (`python3`) kept for PATH.
    project.python = python.map(|p| match p.components().count() > 1 {
        // Absolute, symlinks kept: a virtualenv's python is a link out of the venv.
        true => project_path(&root, &std::path::absolute(p).unwrap_or_else(|_| p.to_owned())),
        false => p.display().to_string(),
    });
    if !rxconfig.contains("api_url") {
        warnings.push(format!(
            "{} sets no api_url: set api_url=\"http://127.0.0.1:3000\" (the gateway's origin) before `reflex export`, or the SPA talks to the Reflex backend directly",
            rxconfig_py.display()
        ));
    }

    let secret = || files::secret().map_err(InitError::Random);
    let env = template::env_file(&secret()?, &secret()?, &project.settings_module);
    let write = |path: &Path, text: &str, mode| {
        files::create_new(path, text.as_bytes(), mode).map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => InitError::Exists(path.to_owned()),
            _ => InitError::Write { path: path.to_owned(), source },
        })
    };
    write(&env_path, &env, 0o600)?;
    let rest = write(&config_path, &template::config(&project, ENV_FILE), 0o644)
        .and_then(|()| write_builtins(&dir.join(PLUGINS_DIR)));
    let kept = match rest {
        Ok(kept) => kept,
        Err(e) => {
            // All or nothing: a secrets file without its config would block the next try.
            let _ = std::fs::remove_file(&config_path);
            let _ = std::fs::remove_file(&env_path);
            return Err(e);
        }
    };
    // Django makes MEDIA_ROOT at the first upload; the mount needs the folder now.
    if let Some((_, media_root)) = &project.media {
        if let Err(e) = std::fs::create_dir_all(root.join(media_root)) {
            warnings.push(format!(
                "cannot create MEDIA_ROOT {media_root} for [static.media]: {e}; create it before `isthmus check`"
            ));
        }
    }
    for file in kept {
        warnings.push(format!("kept your {PLUGINS_DIR}/{file}: the default policy of that name was not written"));
    }
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    print!("{}", summary(&root, &project));
    Ok(())
}

/// The default policies the binary ships, into the project's plugins folder, for the
/// config to name, and for its authors to read, replace or put their own beside.
/// A file already there is the user's: kept (its name is returned).
fn write_builtins(plugins: &Path) -> Result<Vec<&'static str>, InitError> {
    std::fs::create_dir_all(plugins).map_err(|source| InitError::Write { path: plugins.to_owned(), source })?;
    let mut kept = Vec::new();
    for builtin in crate::builtin::all() {
        let path = plugins.join(builtin.file_name);
        match files::create_new(&path, builtin.bytes, 0o644) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => kept.push(builtin.file_name),
            Err(source) => return Err(InitError::Write { path, source }),
        }
    }
    Ok(kept)
}

/// The project's config values from its layout and Django's report, plus warnings
/// about what the gateway cannot route as the project stands.
pub fn plan(root: &Path, layout: &Layout, settings: &str, app_name: &str, report: &Report) -> (Project, Vec<String>) {
    let mut warnings = Vec::new();
    let urlconf = report.root_urlconf.clone().unwrap_or_else(|| "ROOT_URLCONF".into());
    let settings_module = report.settings_module.clone().unwrap_or_else(|| settings.to_owned());

    let (static_prefix, static_root) = static_files(root, report, &mut warnings);
    let media = media_files(root, report, &static_prefix, &mut warnings);
    let mut prefixes = Vec::new();
    for prefix in &report.prefixes {
        if *prefix == static_prefix || media.as_ref().is_some_and(|(media, _)| media == prefix) {
            continue; // STATIC_URL and a served MEDIA_URL have their own rules.
        }
        if let Some(reserved) = REFLEX_PATHS.iter().find(|r| under(r, prefix) || under(prefix, r)) {
            warnings.push(format!(
                "the Django prefix {prefix} overlaps Reflex's {reserved}, which the gateway sends to Reflex: left out"
            ));
        } else if prefix.split('/').any(|s| s == "." || s == "..")
            || prefix.chars().any(|c| c.is_whitespace() || c.is_control() || "?#\\".contains(c))
        {
            warnings.push(format!("the Django prefix {prefix:?} can never match a canonical path: left out"));
        } else {
            prefixes.push(prefix.clone());
        }
    }
    if !report.unresolved.is_empty() {
        warnings.push(format!(
            "these patterns of {urlconf} have no fixed first segment, so the gateway cannot send them to Django (they reach the SPA): {}; put them under a prefix",
            report.unresolved.join(", ")
        ));
    }
    if let Some(url) = report.media_url.as_deref().filter(|m| m.starts_with('/') && media.is_none()) {
        let url = url.trim_end_matches('/');
        if !prefixes.iter().any(|p| under(url, p)) {
            warnings.push(format!("MEDIA_URL {url}/ matches no pattern of {urlconf}: uploaded files there are not served; serve them from Django or a [static] mount"));
        }
    }
    let identity_path = report.identity_path.clone().unwrap_or_else(|| {
        warnings.push(format!("{urlconf} does not include the companion's URLs: add {IDENTITY_INCLUDE} to its urlpatterns, or the event bridge finds no Django identity"));
        DEFAULT_IDENTITY_PATH.into()
    });
    let login_url = match report.login_url.as_deref() {
        Some(url) if is_site_path(url) => url.to_owned(),
        other => {
            warnings.push(format!("LOGIN_URL {other:?} is not a path on this site: the bridge sends logged-out users to {DEFAULT_LOGIN_URL}; change [bridge.policy.config] login_url if that is wrong"));
            DEFAULT_LOGIN_URL.into()
        }
    };
    let asgi_application = report.asgi_application.clone().unwrap_or_else(|| {
        let guess = format!("{}.asgi:application", settings_module.rsplit_once('.').map_or(settings_module.as_str(), |(package, _)| package));
        warnings.push(format!("found no ASGI application (ASGI_APPLICATION, or an asgi.py beside WSGI_APPLICATION or the settings): wrote {guess} into upstreams.django.run; check it"));
        guess
    });
    // A Django page: LOGIN_URL, when it is under a prefix routed to Django.
    let django_health = Some(login_url.clone()).filter(|url| prefixes.iter().any(|p| under(url, p)));

    let project = Project {
        django_dir: slash_path(&layout.django_dir),
        reflex_dir: slash_path(&layout.reflex_dir),
        settings_module,
        root_urlconf: urlconf,
        app_name: app_name.to_owned(),
        asgi_application,
        django_health,
        prefixes,
        static_prefix,
        static_root,
        media,
        python: None,
        identity_path,
        session_cookie: report.session_cookie.clone().unwrap_or_else(|| "sessionid".into()),
        login_url,
    };
    (project, warnings)
}

/// `(static_prefix, static_root)`: the router's STATIC_URL rule, and the folder the
/// gateway serves it from (relative to `root` when inside it) when there is one.
fn static_files(root: &Path, report: &Report, warnings: &mut Vec<String>) -> (String, Option<String>) {
    let default = "/static".to_owned();
    let Some(url) = report.static_url.as_deref().filter(|u| !u.is_empty()) else {
        return (default, None);
    };
    let prefix = url.trim_end_matches('/');
    if !url.starts_with('/') || url.starts_with("//") || prefix.is_empty() {
        warnings.push(format!(
            "STATIC_URL {url} is not a path under the site's root: the gateway does not serve static files"
        ));
        return (default, None);
    }
    let Some(static_root) = &report.static_root else {
        warnings.push(format!("STATIC_ROOT is not set: {url} goes to Django, which serves static files only with DEBUG (or WhiteNoise); set it and run collectstatic to let the gateway serve them"));
        return (prefix.to_owned(), None);
    };
    (prefix.to_owned(), Some(project_path(root, static_root)))
}

/// `(MEDIA_URL's prefix, MEDIA_ROOT)` when the gateway can serve uploaded files: MEDIA_URL
/// a path on this site other than STATIC_URL, and MEDIA_ROOT set. A MEDIA_URL without
/// MEDIA_ROOT is left to the "matches no pattern" warning of `plan`.
fn media_files(
    root: &Path,
    report: &Report,
    static_prefix: &str,
    warnings: &mut Vec<String>,
) -> Option<(String, String)> {
    let url = report.media_url.as_deref().filter(|u| !u.is_empty())?;
    let prefix = url.trim_end_matches('/');
    if !is_site_path(url) || prefix.is_empty() {
        warnings.push(format!(
            "MEDIA_URL {url} is not a path under the site's root: the gateway does not serve uploaded files (whatever answers {url} must)"
        ));
        return None;
    }
    if prefix == static_prefix || REFLEX_PATHS.iter().any(|r| under(r, prefix) || under(prefix, r)) {
        warnings.push(format!(
            "MEDIA_URL {url} overlaps STATIC_URL or a Reflex path: the gateway does not serve uploaded files there"
        ));
        return None;
    }
    let media_root = report.media_root.as_deref()?;
    Some((prefix.to_owned(), project_path(root, media_root)))
}

/// `path` relative to `root` when inside it (`.` for `root` itself), else as it is.
fn project_path(root: &Path, path: &Path) -> String {
    // Django's BASE_DIR is usually resolved already; a folder through a symlink is not.
    let relative = path
        .strip_prefix(root)
        .map(Path::to_owned)
        .ok()
        .or_else(|| path.canonicalize().ok()?.strip_prefix(root).ok().map(Path::to_owned));
    match relative {
        Some(rel) if rel.as_os_str().is_empty() => ".".to_owned(),
        Some(rel) => slash_path(&rel),
        None => path.display().to_string(),
    }
}

/// Is `path` equal to `prefix` or under `prefix + "/"`?
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// What the django-bridge policy accepts as `login_url`.
fn is_site_path(url: &str) -> bool {
    url.starts_with('/')
        && !url.starts_with("//")
        && !url.chars().any(|c| c.is_whitespace() || c.is_control() || "?#\\".contains(c))
}

fn slash_path(path: &Path) -> String {
    path.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

fn summary(dir: &Path, p: &Project) -> String {
    let mut static_files = match &p.static_root {
        Some(root) => format!("; STATIC_URL {}/ from {root}", p.static_prefix),
        None => String::new(),
    };
    if let Some((prefix, root)) = &p.media {
        static_files += &format!("; MEDIA_URL {prefix}/ from {root}");
    }
    let django_dir = &p.django_dir;
    let reflex_dir = &p.reflex_dir;
    format!(
        "Wrote {config}, {ENV_FILE} (the secrets, mode 0600) and {PLUGINS_DIR}/ in {dir}:\n\
         \x20 Django  {django_dir}/ ({settings}): {prefixes}{static_files}\n\
         \x20 Reflex  {reflex_dir}/ (app {app})\n\n\
         Next, in {dir}:\n\
         \x20 1. keep the secrets out of version control:  echo {ENV_FILE} >> .gitignore\n\
         \x20 2. the environment of the gateway, Django and Reflex:  set -a; . ./{ENV_FILE}; set +a\n\
         \x20 3. policies: {PLUGINS_DIR}/ holds the default ones (prefix_router.wasm, django_bridge.wasm); write\n\
         \x20      your own beside them with `isthmus plugin new --lang rust|python|js|c --world router|bridge DIR`\n\
         \x20 4. static files:  (cd {django_dir} && python manage.py collectstatic --noinput)\n\
         \x20                   (cd {reflex_dir} && reflex export --frontend-only --no-zip)\n\
         \x20 5. isthmus check --config {config}\n\
         \x20 6. isthmus run --config {config}   (or start Django and Reflex yourself and `isthmus serve`)\n",
        config = CONFIG_FILE,
        dir = dir.display(),
        settings = p.settings_module,
        prefixes = if p.prefixes.is_empty() { "no URL prefixes".to_owned() } else { p.prefixes.join(" ") },
        app = p.app_name,
    )
}

#[cfg(test)]
impl Project {
    /// The shop example's values.
    pub fn example() -> Project {
        Project {
            django_dir: "backend".into(),
            reflex_dir: "frontend".into(),
            settings_module: "shopsite.settings".into(),
            root_urlconf: "shopsite.urls".into(),
            app_name: "shop_frontend".into(),
            asgi_application: "shopsite.asgi:application".into(),
            django_health: Some("/admin/login/".into()),
            prefixes: vec!["/_isthmus".into(), "/admin".into(), "/api".into()],
            static_prefix: "/static".into(),
            static_root: Some("backend/staticfiles".into()),
            media: Some(("/media".into(), "backend/media".into())),
            python: None,
            identity_path: DEFAULT_IDENTITY_PATH.into(),
            session_cookie: "sessionid".into(),
            login_url: DEFAULT_LOGIN_URL.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(root: &Path) -> Report {
        Report {
            settings_module: Some("shopsite.settings".into()),
            root_urlconf: Some("shopsite.urls".into()),
            prefixes: ["/_isthmus", "/admin", "/api", "/ping", "/static", "/webhooks"].map(String::from).into(),
            static_url: Some("/static/".into()),
            static_root: Some(root.join("backend/staticfiles")),
            media_url: None,
            media_root: None,
            unresolved: vec!["<slug:page>/".into()],
            identity_path: Some(DEFAULT_IDENTITY_PATH.into()),
            login_url: Some("/admin/login/".into()),
            session_cookie: Some("sessionid".into()),
            asgi_application: Some("shopsite.asgi:application".into()),
        }
    }

    fn layout() -> Layout {
        Layout { django_dir: "backend".into(), reflex_dir: "frontend".into() }
    }

    #[test]
    fn plan_of_the_shop() {
        let root = Path::new("/srv/shop");
        let (p, warnings) = plan(root, &layout(), "shopsite.settings", "shop_frontend", &report(root));
        assert_eq!(p.prefixes, ["/_isthmus", "/admin", "/api", "/webhooks"]);
        assert_eq!(p.static_root.as_deref(), Some("backend/staticfiles"));
        assert_eq!(p.static_prefix, "/static");
        assert_eq!(p.django_health.as_deref(), Some("/admin/login/"));
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("/ping overlaps Reflex's /ping"), "{warnings:?}");
        assert!(warnings[1].contains("<slug:page>/"), "{warnings:?}");
    }

    #[test]
    fn plan_without_companion_urls_static_root_or_asgi() {
        let root = Path::new("/srv/shop");
        let mut r = report(root);
        r.identity_path = None;
        r.static_root = None;
        r.asgi_application = None;
        r.unresolved.clear();
        r.login_url = Some("https://sso.example.com/login".into());
        r.media_url = Some("/media/".into());
        r.static_url = Some("/assets/".into());
        let (p, warnings) = plan(root, &layout(), "shopsite.settings", "shop_frontend", &r);
        let all = warnings.join("\n");
        assert!(all.contains(IDENTITY_INCLUDE), "{all}");
        assert!(all.contains("STATIC_ROOT is not set"), "{all}");
        assert!(all.contains("wrote shopsite.asgi:application"), "{all}");
        assert!(all.contains("MEDIA_URL /media/"), "{all}");
        assert!(all.contains("sso.example.com"), "{all}");
        assert_eq!((p.static_prefix.as_str(), p.static_root), ("/assets", None));
        assert_eq!(p.prefixes, ["/_isthmus", "/admin", "/api", "/static", "/webhooks"]);
        assert_eq!(p.login_url, DEFAULT_LOGIN_URL);
        assert_eq!(p.identity_path, DEFAULT_IDENTITY_PATH);
    }

    #[test]
    fn static_root_outside_the_project_stays_absolute() {
        let root = Path::new("/srv/shop");
        let mut r = report(root);
        r.static_root = Some("/var/www/static".into());
        let (p, _) = plan(root, &layout(), "s", "a", &r);
        assert_eq!(p.static_root.as_deref(), Some("/var/www/static"));
    }

    #[test]
    fn prefix_matching() {
        assert!(under("/admin/login/", "/admin") && under("/admin", "/admin"));
        assert!(!under("/administrator", "/admin"));
        assert!(is_site_path("/accounts/login/") && !is_site_path("//evil") && !is_site_path("/a?b"));
    }
}

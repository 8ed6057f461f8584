//! What the Django project says about itself: `manage.py isthmus_prefixes` (the companion
//! app's command) run with the project's Python, its JSON report parsed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::InitError;

/// `manage.py isthmus_prefixes`'s JSON; keys a newer companion adds are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Report {
    pub settings_module: Option<String>,
    pub root_urlconf: Option<String>,
    pub prefixes: Vec<String>,
    pub static_url: Option<String>,
    pub static_root: Option<PathBuf>,
    pub media_url: Option<String>,
    pub media_root: Option<PathBuf>,
    #[serde(default)]
    pub unresolved: Vec<String>,
    pub identity_path: Option<String>,
    pub login_url: Option<String>,
    pub session_cookie: Option<String>,
    pub asgi_application: Option<String>,
}

/// `--python`, else the active virtualenv's interpreter, else `python3` from PATH.
pub fn interpreter(explicit: Option<&Path>) -> PathBuf {
    if let Some(python) = explicit {
        return python.to_owned();
    }
    match std::env::var_os("VIRTUAL_ENV") {
        Some(venv) if !venv.is_empty() => Path::new(&venv).join("bin").join("python"),
        _ => PathBuf::from("python3"),
    }
}

/// Runs `python manage.py isthmus_prefixes` in `django_dir`, with `settings` as
/// DJANGO_SETTINGS_MODULE when given (else the environment's or manage.py's own default),
/// stopping it after `timeout`: importing a project can take seconds, and no caller
/// should wait on a hung one.
pub fn report(
    python: &Path,
    django_dir: &Path,
    settings: Option<&str>,
    timeout: Duration,
) -> Result<Report, InitError> {
    let command = format!("{} manage.py isthmus_prefixes", python.display());
    let mut cmd = Command::new(python);
    cmd.args(["manage.py", "isthmus_prefixes"])
        .current_dir(django_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(settings) = settings {
        cmd.env("DJANGO_SETTINGS_MODULE", settings);
    }
    let mut child = cmd.spawn().map_err(|source| InitError::PythonSpawn { python: python.to_owned(), source })?;
    // Both pipes drained beside the wait, so a chatty project cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < timeout => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(InitError::TimedOut { command, timeout });
            }
        }
    };
    let (stdout, stderr) = (stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default());
    if !status.success() {
        let settings = settings.unwrap_or("DJANGO_SETTINGS_MODULE");
        return Err(explain_failure(&command, settings, &stderr, status.code()));
    }
    parse(&stdout).map_err(|message| InitError::BadReport { command, message })
}

/// The report is the last line of stdout: settings that print a banner do not spoil it.
fn parse(stdout: &str) -> Result<Report, String> {
    let line = stdout.lines().rev().find(|l| !l.trim().is_empty()).ok_or("it printed nothing")?;
    serde_json::from_str(line).map_err(|e| format!("its output is not the expected JSON ({e}): {line}"))
}

/// A failed run told apart by what Python wrote on stderr.
fn explain_failure(command: &str, settings: &str, stderr: &str, status: Option<i32>) -> InitError {
    let stderr = stderr.trim().to_owned();
    if stderr.contains("Unknown command: 'isthmus_prefixes'") {
        return InitError::CompanionNotInstalled { settings: settings.to_owned() };
    }
    for (module, package) in
        [("isthmus_django", "isthmus (the isthmus companion, python/ in the isthmus repository)"), ("django", "Django")]
    {
        if stderr.contains(&format!("No module named '{module}'")) {
            return InitError::PackageMissing { command: command.to_owned(), package, stderr };
        }
    }
    let status = status.map_or_else(|| "a signal".to_owned(), |c| format!("exit status {c}"));
    InitError::PythonFailed { command: command.to_owned(), status, stderr }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_last_line_and_ignores_new_keys() {
        let out = "settings banner\n{\"prefixes\": [\"/admin\"], \"static_url\": \"/static/\", \"static_root\": null, \"media_url\": null, \"identity_path\": null, \"login_url\": \"/accounts/login/\", \"session_cookie\": \"sessionid\", \"asgi_application\": \"a.asgi:application\", \"settings_module\": \"a.settings\", \"root_urlconf\": \"a.urls\", \"unresolved\": [], \"later\": 1}\n\n";
        let report = parse(out).unwrap();
        assert_eq!(report.prefixes, ["/admin"]);
        assert_eq!(report.asgi_application.as_deref(), Some("a.asgi:application"));
        assert!(parse("").unwrap_err().contains("nothing"));
        assert!(parse("Traceback\n").unwrap_err().contains("Traceback"));
    }

    #[test]
    fn tells_failures_apart() {
        let unknown = "Unknown command: 'isthmus_prefixes'\nType 'manage.py help' for usage.\n";
        let err = explain_failure("py manage.py isthmus_prefixes", "shop.settings", unknown, Some(1)).to_string();
        assert!(
            err.contains("\"isthmus_django\"") && err.contains("INSTALLED_APPS") && err.contains("shop.settings"),
            "{err}"
        );

        let no_django = "Traceback (most recent call last):\nModuleNotFoundError: No module named 'django'\n";
        let err = explain_failure("py manage.py isthmus_prefixes", "s", no_django, Some(1)).to_string();
        assert!(
            err.contains("Django is not installed")
                && err.contains("--python")
                && err.contains("No module named 'django'"),
            "{err}"
        );

        let other = "django.core.exceptions.ImproperlyConfigured: SECRET_KEY must not be empty\n";
        let err = explain_failure("py manage.py isthmus_prefixes", "s", other, Some(1)).to_string();
        assert!(err.contains("exit status 1") && err.contains("SECRET_KEY must not be empty"), "{err}");
    }
}

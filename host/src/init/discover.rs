//! Where the Django project and the Reflex app are, and what their entry files say:
//! found by reading `manage.py` and `rxconfig.py` as text, without running anything.

use std::path::{Path, PathBuf};

use super::InitError;

/// The Django and Reflex folders of a project, relative to its root (`.` for the root).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub django_dir: PathBuf,
    pub reflex_dir: PathBuf,
}

/// Finds `manage.py` and `rxconfig.py` in `root` or one of its immediate subfolders.
pub fn layout(root: &Path) -> Result<Layout, InitError> {
    match (locate(root, "manage.py")?, locate(root, "rxconfig.py")?) {
        (Some(django_dir), Some(reflex_dir)) => Ok(Layout { django_dir, reflex_dir }),
        (django, reflex) => {
            let missing: Vec<&str> =
                [(django.is_none(), "manage.py (a Django project)"), (reflex.is_none(), "rxconfig.py (a Reflex app)")]
                    .into_iter()
                    .filter_map(|(missing, what)| missing.then_some(what))
                    .collect();
            Err(InitError::Missing { dir: root.to_owned(), what: missing.join(" nor ") })
        }
    }
}

/// `Some(folder)` holding `file`: `root` itself first, else its only subfolder that has
/// one. Hidden folders and `node_modules` are not looked into.
fn locate(root: &Path, file: &'static str) -> Result<Option<PathBuf>, InitError> {
    if root.join(file).is_file() {
        return Ok(Some(PathBuf::from(".")));
    }
    let entries = std::fs::read_dir(root).map_err(|source| InitError::Read { path: root.to_owned(), source })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| PathBuf::from(e.file_name()))
        .filter(|name| {
            let name = name.to_string_lossy();
            !name.starts_with('.') && name != "node_modules"
        })
        .filter(|name| root.join(name).join(file).is_file())
        .collect();
    found.sort();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        _ => Err(InitError::Ambiguous { file, found: found.iter().map(|d| d.join(file)).collect() }),
    }
}

/// The module in manage.py's `os.environ.setdefault("DJANGO_SETTINGS_MODULE", "…")`.
pub fn settings_default(manage_py: &str) -> Option<String> {
    quoted_after(manage_py, "DJANGO_SETTINGS_MODULE", ',')
}

/// The `app_name` of rxconfig.py's `rx.Config(app_name="…")`.
pub fn app_name(rxconfig: &str) -> Option<String> {
    quoted_after(rxconfig, "app_name", '=')
}

/// The string literal after the first uncommented `key`, its closing quote if any and
/// `separator`: enough for the lines startproject and `reflex init` write.
fn quoted_after(text: &str, key: &str, separator: char) -> Option<String> {
    text.lines().filter_map(|line| line.split('#').next()).find_map(|code| {
        code.match_indices(key).find_map(|(at, _)| {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                return None;
            }
            let rest = code[at + key.len()..].trim_start_matches(['"', '\'']).trim_start();
            let rest = rest.strip_prefix(separator)?.trim_start();
            let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
            let (value, _) = rest[1..].split_once(quote)?;
            (!value.is_empty()).then(|| value.to_owned())
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "").unwrap();
    }

    #[test]
    fn finds_both_in_subfolders_or_at_the_root() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "backend/manage.py");
        touch(dir.path(), "frontend/rxconfig.py");
        touch(dir.path(), ".venv/manage.py");
        touch(dir.path(), "node_modules/x/rxconfig.py");
        assert_eq!(layout(dir.path()).unwrap(), Layout { django_dir: "backend".into(), reflex_dir: "frontend".into() });
        // reflex-django's layout: both side by side at the root, which wins over subfolders.
        touch(dir.path(), "manage.py");
        touch(dir.path(), "rxconfig.py");
        assert_eq!(layout(dir.path()).unwrap(), Layout { django_dir: ".".into(), reflex_dir: ".".into() });
    }

    #[test]
    fn names_what_is_missing_or_ambiguous() {
        let dir = tempfile::tempdir().unwrap();
        let err = layout(dir.path()).unwrap_err().to_string();
        assert!(err.contains("manage.py (a Django project) nor rxconfig.py (a Reflex app)"), "{err}");
        touch(dir.path(), "site/manage.py");
        let err = layout(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no rxconfig.py") && !err.contains("manage.py ("), "{err}");
        touch(dir.path(), "a/rxconfig.py");
        touch(dir.path(), "b/rxconfig.py");
        let err = layout(dir.path()).unwrap_err().to_string();
        assert!(err.contains("a/rxconfig.py, b/rxconfig.py"), "{err}");
    }

    #[test]
    fn reads_the_settings_module_and_the_app_name() {
        let manage = "import os\n# os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'old.settings')\ndef main():\n    os.environ.setdefault(\n        \"DJANGO_SETTINGS_MODULE\", \"shopsite.settings\")\n";
        assert_eq!(settings_default(manage).as_deref(), Some("shopsite.settings"));
        let manage = "def main():\n    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'config.settings.dev')  # dev\n";
        assert_eq!(settings_default(manage).as_deref(), Some("config.settings.dev"));
        assert_eq!(settings_default("os.environ['DJANGO_SETTINGS_MODULE']\n"), None);

        let rx = "config = rx.Config(\n    my_app_name=\"no\",\n    app_name = 'shop_frontend',\n)\n";
        assert_eq!(app_name(rx).as_deref(), Some("shop_frontend"));
        assert_eq!(app_name("config = rx.Config()\n"), None);
    }
}

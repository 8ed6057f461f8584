//! `isthmus init` as a user runs it: the real binary on a temporary project, with a
//! stand-in Python that answers `manage.py isthmus_prefixes` as the companion app does.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use isthmus::config::Config;

const MANAGE_PY: &str =
    "import os, sys\n\ndef main():\n    os.environ.setdefault(\"DJANGO_SETTINGS_MODULE\", \"shopsite.settings\")\n";
const RXCONFIG_PY: &str =
    "import reflex as rx\n\nconfig = rx.Config(app_name=\"shop_frontend\", api_url=\"http://127.0.0.1:3000\")\n";

/// Held while writing a stand-in Python and while running the binary: a fork in another
/// test thread while the script is open for writing would make its exec fail (ETXTBSY).
static EXEC: Mutex<()> = Mutex::new(());

fn run(command: &mut Command) -> Output {
    let _guard = EXEC.lock().unwrap_or_else(|e| e.into_inner());
    command.output().unwrap()
}

struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    /// backend/manage.py and frontend/rxconfig.py, like examples/shop.
    fn new() -> Project {
        let project = Project { dir: tempfile::tempdir().unwrap() };
        project.write("backend/manage.py", MANAGE_PY);
        project.write("frontend/rxconfig.py", RXCONFIG_PY);
        project
    }

    fn root(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }

    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// An executable standing in for Python: logs its folder, arguments and
    /// DJANGO_SETTINGS_MODULE to `python.log`, prints `stdout`, `stderr`, exits `status`.
    fn fake_python(&self, rel: &str, stdout: &str, stderr: &str, status: i32) -> PathBuf {
        let log = self.dir.path().join("python.log");
        let script = format!(
            "#!/bin/sh\necho \"$PWD|$*|$DJANGO_SETTINGS_MODULE\" > '{}'\ncat <<'EOF'\n{stdout}\nEOF\ncat >&2 <<'EOF'\n{stderr}\nEOF\nexit {status}\n",
            log.display()
        );
        let _guard = EXEC.lock().unwrap_or_else(|e| e.into_inner());
        let path = self.write(rel, &script);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// What the companion reports for the shop, STATIC_ROOT inside the project.
    fn shop_report(&self) -> String {
        serde_json::json!({
            "settings_module": "shopsite.settings",
            "root_urlconf": "shopsite.urls",
            "prefixes": ["/_isthmus", "/admin", "/api", "/webhooks"],
            "static_url": "/static/",
            "static_root": self.root().join("backend/staticfiles"),
            "media_url": null,
            "media_root": null,
            "unresolved": [],
            "identity_path": "/_isthmus/identity",
            "login_url": "/admin/login/",
            "session_cookie": "sessionid",
            "asgi_application": "shopsite.asgi:application",
        })
        .to_string()
    }

    fn python_log(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.path().join("python.log")).ok()
    }

    fn init(&self, args: &[&str]) -> Output {
        run(Command::new(env!("CARGO_BIN_EXE_isthmus"))
            .arg("init")
            .arg(self.dir.path())
            .args(args)
            .env_remove("DJANGO_SETTINGS_MODULE")
            .env_remove("VIRTUAL_ENV"))
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn python_arg(path: &Path) -> [String; 2] {
    ["--python".into(), path.display().to_string()]
}

#[test]
fn writes_a_config_the_real_loader_accepts_and_secrets_beside_it() {
    let project = Project::new();
    let python = project.fake_python("venv/bin/python", &project.shop_report(), "", 0);
    let [flag, path] = python_arg(&python);
    let out = project.init(&[&flag, &path]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("isthmus check --config isthmus.toml"), "{stdout}");
    assert_eq!(stderr(&out), "", "no warnings for the shop");
    // manage.py's default settings, run from the Django folder.
    let root = project.root();
    assert_eq!(
        project.python_log().unwrap().trim(),
        format!("{}|manage.py isthmus_prefixes|shopsite.settings", root.join("backend").display())
    );

    // The secrets: private, fresh, long enough; the toml only names them.
    let env_path = root.join("isthmus.env");
    assert_eq!(std::fs::metadata(&env_path).unwrap().permissions().mode() & 0o777, 0o600);
    let env_text = std::fs::read_to_string(&env_path).unwrap();
    let vars: Vec<(&str, &str)> =
        env_text.lines().filter(|l| !l.starts_with('#')).map(|l| l.split_once('=').unwrap()).collect();
    assert_eq!(
        vars.iter().map(|v| v.0).collect::<Vec<_>>(),
        ["ISTHMUS_IDENTITY_SECRET", "ISTHMUS_BRIDGE_SECRET", "DJANGO_SETTINGS_MODULE"]
    );
    assert!(vars[0].1.len() >= 32 && vars[1].1.len() >= 32 && vars[0].1 != vars[1].1);
    let toml_text = std::fs::read_to_string(root.join("isthmus.toml")).unwrap();
    assert!(!toml_text.contains(vars[0].1) && !toml_text.contains(vars[1].1), "a secret leaked into isthmus.toml");

    // The default policies, from the binary, for the config to name.
    for (file, builtin) in [("prefix_router.wasm", "prefix-router"), ("django_bridge.wasm", "django-bridge")] {
        let written = std::fs::read(root.join("plugins").join(file)).unwrap();
        let shipped = isthmus::builtin::all().find(|b| b.name == builtin).unwrap();
        assert!(written == shipped.bytes, "plugins/{file} is not the built-in {builtin}");
    }

    // What `isthmus check` needs on disk besides the config.
    project.write("frontend/.web/build/client/index.html", "<!doctype html>");
    std::fs::create_dir_all(root.join("backend/staticfiles")).unwrap();
    for (name, value) in &vars[..2] {
        std::env::set_var(name, value); // only this test of this binary reads them
    }
    let config = Config::load(&root.join("isthmus.toml")).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    assert_eq!(config.listen.addr.to_string(), "127.0.0.1:3000");
    assert!(config.listen.tls.is_none(), "HTTPS is offered commented out");
    // Uncommented, the TLS section is one the gateway takes.
    std::fs::create_dir_all(root.join("acme")).unwrap();
    let with_tls = toml_text
        .replace("# [listen.tls]", "[listen.tls]")
        .replace("# cert = ", "cert = ")
        .replace("# key = ", "key = ")
        .replace("# redirect_addr = ", "redirect_addr = ")
        .replace("# acme_challenge_dir = ", "acme_challenge_dir = ");
    let tls = Config::parse(&with_tls, &root.join("isthmus.toml"))
        .unwrap_or_else(|e| panic!("{e}\n{with_tls}"))
        .listen
        .tls
        .unwrap();
    assert_eq!((tls.cert, tls.redirect_addr), (root.join("tls/cert.pem"), Some("0.0.0.0:80".parse().unwrap())));
    let django = &config.upstreams["django"];
    assert_eq!(
        django.run.as_deref(),
        Some("python -m uvicorn shopsite.asgi:application --host 127.0.0.1 --port {port}")
    );
    assert_eq!(django.cwd.as_deref(), Some(root.join("backend").as_path()));
    assert_eq!(django.health.as_ref().map(|h| h.path.as_str()), Some("/admin/login/"));
    assert_eq!(config.upstreams["reflex"].health.as_ref().map(|h| h.path.as_str()), Some("/ping"));
    assert_eq!(config.static_mounts["django_static"].root, root.join("backend/staticfiles"));
    assert_eq!(config.static_mounts["django_static"].strip_prefix.as_deref(), Some("/static"));
    assert_eq!(config.static_mounts["frontend"].fallback.as_deref(), Some("index.html"));
    let router = &config.routing.routers[0];
    assert_eq!(router.plugin, "prefix_router.wasm");
    assert_eq!(
        router.config["django_prefixes"],
        toml::Value::try_from(["/_isthmus", "/admin", "/api", "/webhooks"]).unwrap()
    );
    let bridge = config.bridge.as_ref().unwrap();
    assert_eq!(bridge.identity_secret.expose(), vars[0].1.as_bytes());
    assert_eq!(bridge.policy.plugin, "django_bridge.wasm");
    assert_eq!(bridge.policy.config["login_url"].as_str(), Some("/admin/login/"));
}

#[test]
fn the_active_virtualenv_python_is_the_default() {
    let project = Project::new();
    project.fake_python("venv/bin/python", &project.shop_report(), "", 0);
    let out = run(Command::new(env!("CARGO_BIN_EXE_isthmus"))
        .arg("init")
        .current_dir(project.dir.path())
        .env("VIRTUAL_ENV", project.dir.path().join("venv"))
        .env("DJANGO_SETTINGS_MODULE", "shopsite.settings_prod"));
    assert!(out.status.success(), "{}", stderr(&out));
    // The environment's settings module wins over manage.py's default, as in manage.py.
    assert!(project.python_log().unwrap().trim().ends_with("|shopsite.settings_prod"));
}

#[test]
fn missing_manage_py_is_a_clear_error_and_writes_nothing() {
    let project = Project { dir: tempfile::tempdir().unwrap() };
    project.write("frontend/rxconfig.py", RXCONFIG_PY);
    let out = project.init(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("found no manage.py (a Django project)") && !err.contains("rxconfig.py (a Reflex app) in"),
        "{err}"
    );
    assert!(!project.dir.path().join("isthmus.toml").exists() && !project.dir.path().join("isthmus.env").exists());
}

#[test]
fn an_existing_config_is_refused_and_left_untouched() {
    let project = Project::new();
    let python = project.fake_python("venv/bin/python", &project.shop_report(), "", 0);
    let config = project.write("isthmus.toml", "# mine\n");
    let [flag, path] = python_arg(&python);
    let out = project.init(&[&flag, &path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already exists; `isthmus init` does not overwrite it"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(config).unwrap(), "# mine\n");
    assert!(!project.dir.path().join("isthmus.env").exists());
    assert_eq!(project.python_log(), None, "refused before running anything");

    // An isthmus.env left behind is not overwritten either.
    std::fs::remove_file(project.dir.path().join("isthmus.toml")).unwrap();
    project.write("isthmus.env", "ISTHMUS_IDENTITY_SECRET=kept\n");
    let out = project.init(&[&flag, &path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("isthmus.env` already exists"));
    assert_eq!(
        std::fs::read_to_string(project.dir.path().join("isthmus.env")).unwrap(),
        "ISTHMUS_IDENTITY_SECRET=kept\n"
    );
}

#[test]
fn python_failures_are_explained() {
    let project = Project::new();
    let cases = [
        (
            "Unknown command: 'isthmus_prefixes'\nType 'manage.py help' for usage.",
            "add \"isthmus_django\" to INSTALLED_APPS in shopsite.settings",
        ),
        (
            "django.core.exceptions.ImproperlyConfigured: The SECRET_KEY setting must not be empty.",
            "The SECRET_KEY setting must not be empty.",
        ),
    ];
    for (python_stderr, expected) in cases {
        let python = project.fake_python("venv/bin/python", "", python_stderr, 1);
        let [flag, path] = python_arg(&python);
        let out = project.init(&[&flag, &path]);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains(expected), "{}", stderr(&out));
        assert!(!project.dir.path().join("isthmus.toml").exists() && !project.dir.path().join("isthmus.env").exists());
    }
    let out = project.init(&["--python", "/nonexistent/python"]);
    assert!(
        stderr(&out).contains("cannot run `/nonexistent/python`") && stderr(&out).contains("--python"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn policies_already_in_the_plugins_folder_are_kept() {
    let project = Project::new();
    let python = project.fake_python("venv/bin/python", &project.shop_report(), "", 0);
    let mine = project.write("plugins/prefix_router.wasm", "my own router");
    let [flag, path] = python_arg(&python);
    let out = project.init(&[&flag, &path]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(mine).unwrap(), "my own router");
    assert!(stderr(&out).contains("kept your plugins/prefix_router.wasm"), "{}", stderr(&out));
    assert!(project.dir.path().join("plugins/django_bridge.wasm").is_file());
}

/// The project `init` wrote the shop's config for, with what `isthmus check` needs on
/// disk, and Django's report changed to `prefixes` afterwards.
fn initialised_shop_reporting(prefixes: &[&str]) -> (Project, PathBuf) {
    let project = Project::new();
    let python = project.fake_python("venv/bin/python", &project.shop_report(), "", 0);
    let [flag, path] = python_arg(&python);
    let out = project.init(&[&flag, &path]);
    assert!(out.status.success(), "{}", stderr(&out));
    project.write("frontend/.web/build/client/index.html", "<!doctype html>");
    std::fs::create_dir_all(project.root().join("backend/staticfiles")).unwrap();
    let mut report: serde_json::Value = serde_json::from_str(&project.shop_report()).unwrap();
    report["prefixes"] = serde_json::json!(prefixes);
    project.fake_python("venv/bin/python", &report.to_string(), "", 0);
    let config = project.root().join("isthmus.toml");
    (project, config)
}

/// `isthmus check` with the secrets `init` wrote in its environment.
fn check(project: &Project, config: &Path) -> Output {
    let env_text = std::fs::read_to_string(project.root().join("isthmus.env")).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_isthmus"));
    command.args(["check", "--config"]).arg(config).env_remove("DJANGO_SETTINGS_MODULE").env_remove("VIRTUAL_ENV");
    for (name, value) in env_text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split_once('=')) {
        command.env(name, value);
    }
    run(&mut command)
}

#[test]
fn check_passes_while_django_reports_what_init_wrote() {
    let (project, config) =
        initialised_shop_reporting(&["/_isthmus", "/admin", "/api", "/ping", "/static", "/webhooks"]);
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("[django]\nmanage = \"backend/manage.py\"\npython = \"venv/bin/python\""), "{text}");
    let out = check(&project, &config);
    assert!(out.status.success(), "{}", stderr(&out));
    // Asked from manage.py's folder, with the environment's settings (isthmus.env's here).
    let root = project.root();
    assert_eq!(
        project.python_log().unwrap().trim(),
        format!("{}|manage.py isthmus_prefixes|shopsite.settings", root.join("backend").display())
    );
}

#[test]
fn check_names_a_prefix_added_to_django_and_one_gone_from_it() {
    let (project, config) = initialised_shop_reporting(&["/_isthmus", "/admin", "/api", "/shop"]);
    let out = check(&project, &config);
    assert!(!out.status.success(), "drift must fail the check");
    let err = stderr(&out);
    assert!(err.contains("routing.routers[0].config.django_prefixes"), "{err}");
    assert!(err.contains("missing here (requests there go to the SPA, not Django): /shop;"), "{err}");
    assert!(err.contains("gone from Django (sent to Django, which has no route): /webhooks;"), "{err}");
}

#[test]
fn check_explains_a_failing_manage_py() {
    let (project, config) = initialised_shop_reporting(&[]);
    let python = project.fake_python(
        "venv/bin/python",
        "",
        "django.core.exceptions.ImproperlyConfigured: SECRET_KEY must not be empty",
        1,
    );
    assert!(python.exists());
    let out = check(&project, &config);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("cannot compare the config's prefixes with Django's"), "{err}");
    assert!(
        err.contains("manage.py isthmus_prefixes` failed (exit status 1)")
            && err.contains("SECRET_KEY must not be empty"),
        "{err}"
    );
}

#[test]
fn without_a_django_section_check_asks_nothing() {
    let (project, config) = initialised_shop_reporting(&["/shop"]);
    let text = std::fs::read_to_string(&config).unwrap();
    let start = text.find("[django]").unwrap();
    let end = start + text[start..].find("\n\n").unwrap();
    std::fs::write(&config, format!("{}{}", &text[..start], &text[end..])).unwrap();
    std::fs::remove_file(project.root().join("python.log")).ok();
    let out = check(&project, &config);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(project.python_log(), None, "manage.py was run without a [django] section");
}

#[test]
fn init_mounts_media_root_at_media_url() {
    let project = Project::new();
    let mut report: serde_json::Value = serde_json::from_str(&project.shop_report()).unwrap();
    report["prefixes"] = serde_json::json!(["/_isthmus", "/admin", "/api", "/media"]);
    report["media_url"] = "/media/".into();
    report["media_root"] = project.root().join("backend/media").display().to_string().into();
    let python = project.fake_python("venv/bin/python", &report.to_string(), "", 0);
    let [flag, path] = python_arg(&python);
    let out = project.init(&[&flag, &path]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "a served MEDIA_URL is no warning");
    let doc: toml::Table = std::fs::read_to_string(project.root().join("isthmus.toml")).unwrap().parse().unwrap();
    let media = &doc["static"]["media"];
    assert_eq!((media["root"].as_str(), media["strip_prefix"].as_str()), (Some("backend/media"), Some("/media")));
    let router = &doc["routing"]["routers"][0]["config"];
    assert_eq!(router["media_prefix"].as_str(), Some("/media"));
    assert_eq!(router["media_mount"].as_str(), Some("media"));
    assert_eq!(router["django_prefixes"], toml::Value::try_from(["/_isthmus", "/admin", "/api"]).unwrap());

    // MEDIA_URL on another host: nothing to serve here, and said so.
    let other = Project::new();
    report["media_url"] = "https://cdn.example.com/media/".into();
    let python = other.fake_python("venv/bin/python", &report.to_string(), "", 0);
    let [flag, path] = python_arg(&python);
    let out = other.init(&[&flag, &path]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("MEDIA_URL https://cdn.example.com/media/ is not a path under the site's root"),
        "{}",
        stderr(&out)
    );
    let text = std::fs::read_to_string(other.root().join("isthmus.toml")).unwrap();
    assert!(!text.contains("[static.media]"), "{text}");
}

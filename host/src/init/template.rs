//! The text of the `isthmus.toml` and `isthmus.env` that `isthmus init` writes:
//! commented like examples/shop/isthmus.toml, every value escaped by the toml crate.

use super::Project;

pub const IDENTITY_SECRET_VAR: &str = "ISTHMUS_IDENTITY_SECRET";
pub const BRIDGE_SECRET_VAR: &str = "ISTHMUS_BRIDGE_SECRET";

/// A TOML literal: a quoted string or an inline array of them.
fn lit(value: impl Into<toml::Value>) -> String {
    value.into().to_string()
}

pub fn config(p: &Project, env_file: &str) -> String {
    let mut t = String::new();
    let django_dir = p.django_dir.as_str();
    let reflex_dir = p.reflex_dir.as_str();
    t += &format!(
        "# isthmus config written by `isthmus init`: one origin, http://127.0.0.1:3000, for\n\
         #   Django  {django_dir}/manage.py, settings {settings}, ROOT_URLCONF {urlconf}\n\
         #   Reflex  {reflex_dir}/rxconfig.py, app {app}\n\
         # Every key is described in the isthmus README (\"Configuration: isthmus.toml\").\n\
         #\n\
         # Before `isthmus check` / `isthmus run`:\n\
         #   - policies: {plugins}/ holds the default ones `isthmus init` wrote (prefix_router.wasm,\n\
         #     django_bridge.wasm; also built in as builtin:prefix-router, builtin:django-bridge);\n\
         #   - secrets: {env_file} holds them and DJANGO_SETTINGS_MODULE, for the gateway, Django and\n\
         #     Reflex alike: `set -a; . ./{env_file}; set +a`. Never commit {env_file};\n\
         #   - static files: `python manage.py collectstatic` in {django_dir}/ and\n\
         #     `reflex export --frontend-only --no-zip` in {reflex_dir}/.\n\n",
        plugins = super::PLUGINS_DIR,
        settings = p.settings_module,
        urlconf = p.root_urlconf,
        app = p.app_name,
    );
    t += "[listen]\naddr = \"127.0.0.1:3000\"\n\n";
    t += "# HTTPS without nginx or Caddy: uncomment, point `cert` (the chain) and `key` at PEM files, and\n\
          # the gateway serves https:// and wss:// itself (HTTP/2 by ALPN; the files are reloaded when they\n\
          # change and on SIGHUP). Then tell Django (ISTHMUS_PUBLIC_ORIGIN=https://…, SESSION_COOKIE_SECURE,\n\
          # CSRF_COOKIE_SECURE: `manage.py check` names what is missing) and Reflex (api_url) the https origin.\n\
          # [listen.tls]\n\
          # cert = \"tls/cert.pem\"\n\
          # key = \"tls/key.pem\"\n\
          # redirect_addr = \"0.0.0.0:80\"     # plain http answered with 308 to the https origin\n\
          # acme_challenge_dir = \"acme\"      # served there for certbot --webroot / lego --http.webroot\n\n";

    t += "# Django under uvicorn (pip install uvicorn), on loopback: the gateway is its only door.\n";
    t += &format!(
        "[upstreams.django]\nurl = \"http://127.0.0.1:8001\"\nrun = {}\ncwd = {}\n",
        lit(format!("python -m uvicorn {} --host 127.0.0.1 --port {{port}}", p.asgi_application)),
        lit(django_dir)
    );
    match &p.django_health {
        Some(path) => t += &format!("health = {}\n", lit(path.as_str())),
        None => t += "# health = \"/some/page/\"   # a path answering 2xx once Django is ready\n",
    }
    t += "\n# The Reflex backend alone (Socket.IO on /_event, /_upload, /ping); the SPA is exported.\n";
    t += &format!(
        "[upstreams.reflex]\nurl = \"http://127.0.0.1:8000\"\nrun = \"reflex run --env prod --backend-only --backend-host 127.0.0.1 --backend-port {{port}}\"\ncwd = {}\nhealth = \"/ping\"\n\n",
        lit(reflex_dir)
    );

    t += "# The exported Reflex single-page app (`reflex export --frontend-only --no-zip`).\n";
    t += &format!(
        "[static.frontend]\nroot = {}\nfallback = \"index.html\"\n\n",
        lit(join(reflex_dir, ".web/build/client"))
    );
    if let Some(root) = &p.static_root {
        t += &format!(
            "# Django's STATIC_ROOT (`manage.py collectstatic`), served at STATIC_URL {}/.\n",
            p.static_prefix
        );
        t += &format!(
            "[static.django_static]\nroot = {}\nstrip_prefix = {}\n\n",
            lit(root.as_str()),
            lit(p.static_prefix.as_str())
        );
    }

    if let Some((prefix, root)) = &p.media {
        t += &format!("# Django's MEDIA_ROOT (uploaded files), served at MEDIA_URL {prefix}/.\n");
        t += &format!("[static.media]\nroot = {}\nstrip_prefix = {}\n\n", lit(root.as_str()), lit(prefix.as_str()));
    }

    t += "# The Django project `isthmus check` and `isthmus run` ask for its URL prefixes now\n";
    t += "# (`manage.py isthmus_prefixes`), to name those the router below no longer matches.\n";
    t += &format!("[django]\nmanage = {}\n", lit(join(django_dir, "manage.py")));
    match &p.python {
        Some(python) => t += &format!("python = {}\n\n", lit(python.as_str())),
        None => t += "# python = \".venv/bin/python\"   # default: $VIRTUAL_ENV/bin/python, else python3\n\n",
    }

    t += &format!("[routing]\nplugins_dir = {}\n\n", lit(super::PLUGINS_DIR));
    t += "# Reflex's own paths go to reflex; the prefixes of ROOT_URLCONF's top-level patterns (found by\n";
    t += "# `manage.py isthmus_prefixes`) to django; STATIC_URL to Django's static files (MEDIA_URL to the\n";
    t += "# uploaded ones); the rest to the SPA. `isthmus check` fails when Django's prefixes drift from these.\n";
    let mut router = vec![format!("django_prefixes = {}", lit(p.prefixes.clone()))];
    if p.static_prefix != "/static" {
        router.push(format!("static_prefix = {}", lit(p.static_prefix.as_str())));
    }
    if p.static_root.is_some() {
        router.push("static_mount = \"django_static\"".into());
    }
    if let Some((prefix, _)) = &p.media {
        router.push(format!("media_prefix = {}", lit(prefix.as_str())));
        router.push("media_mount = \"media\"".into());
    }
    router.push("spa_mount = \"frontend\"".into());
    t += &format!("[[routing.routers]]\nplugin = \"prefix_router.wasm\"\nconfig = {{ {} }}\n\n", router.join(", "));

    t += "# The event bridge on Reflex's /_event WebSocket: the Django identity of the session cookie,\n";
    t += "# judged per event by the django-bridge policy and signed into router_data. The secrets are\n";
    t += &format!("# read from the environment ({env_file}).\n");
    t += &format!(
        "[bridge]\nidentity_secret = \"env:{IDENTITY_SECRET_VAR}\"\nbridge_secret = \"env:{BRIDGE_SECRET_VAR}\"\n"
    );
    if p.identity_path != "/_isthmus/identity" {
        t += &format!("identity_path = {}\n", lit(p.identity_path.as_str()));
    }
    if p.session_cookie != "sessionid" {
        t += &format!("session_cookie = {}\n", lit(p.session_cookie.as_str()));
    }
    t += "\n[bridge.policy]\nplugin = \"django_bridge.wasm\"\n\n";
    t += &format!(
        "[bridge.policy.config]\nlogin_url = {}\n\
         # \"any\" lets every event through that no rule names; a production site sets\n\
         # \"authenticated\" or writes a rule for every handler it cares about.\n\
         default = \"any\"\n\
         # First match wins. Event names are Reflex's full handler paths, each state named\n\
         # `<module, dots as ___>____<class in snake_case>`, e.g.\n\
         # reflex___state____state.{app}___state____admin_state.delete_all\n\
         # Requirements: any, authenticated, staff, superuser, group:NAME, perm:app_label.codename.\n\
         rules = [\n\
         \x20   # {{ event = \"*____admin_state.*\", require = \"staff\" }},\n\
         ]\n",
        lit(p.login_url.as_str()),
        app = p.app_name,
    );
    t
}

/// `KEY=value` lines: read by `set -a; . FILE`, systemd's EnvironmentFile, docker's
/// --env-file and python-dotenv alike.
pub fn env_file(identity_secret: &str, bridge_secret: &str, settings_module: &str) -> String {
    format!(
        "# Written by `isthmus init`. Private (mode 0600): never commit it.\n\
         # Shared by the gateway ([bridge] identity_secret) and Django (isthmus_django):\n\
         {IDENTITY_SECRET_VAR}={identity_secret}\n\
         # Shared by the gateway ([bridge] bridge_secret) and the Reflex process (isthmus_reflex):\n\
         {BRIDGE_SECRET_VAR}={bridge_secret}\n\
         # The settings of the Django server and of the Reflex process's ORM:\n\
         DJANGO_SETTINGS_MODULE={settings_module}\n"
    )
}

/// `dir/rest`, without a leading `./`.
fn join(dir: &str, rest: &str) -> String {
    if dir == "." {
        rest.to_owned()
    } else {
        format!("{dir}/{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_values_and_writes_only_non_defaults() {
        let mut p = Project::example();
        p.django_dir = "back \"end\"".into();
        p.static_prefix = "/assets".into();
        p.session_cookie = "shop_sid".into();
        p.identity_path = "/gw/identity".into();
        let text = config(&p, "isthmus.env");
        let doc: toml::Table = text.parse().unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(doc["upstreams"]["django"]["cwd"].as_str(), Some("back \"end\""));
        let router = &doc["routing"]["routers"][0]["config"];
        assert_eq!(router["static_prefix"].as_str(), Some("/assets"));
        assert_eq!(router["django_prefixes"].as_array().unwrap().len(), 3);
        assert_eq!(doc["bridge"]["session_cookie"].as_str(), Some("shop_sid"));
        assert_eq!(doc["bridge"]["identity_path"].as_str(), Some("/gw/identity"));
        assert_eq!(doc["bridge"]["policy"]["config"]["rules"].as_array().unwrap().len(), 0);
        assert!(text.contains("Never commit isthmus.env"));
    }

    #[test]
    fn without_static_root_or_health_the_keys_are_left_out() {
        let mut p = Project::example();
        p.static_root = None;
        p.django_health = None;
        p.django_dir = ".".into();
        p.reflex_dir = ".".into();
        let doc: toml::Table = config(&p, "isthmus.env").parse().unwrap();
        assert!(doc["static"].get("django_static").is_none());
        assert!(doc["routing"]["routers"][0]["config"].get("static_mount").is_none());
        assert!(doc["upstreams"]["django"].get("health").is_none());
        assert_eq!(doc["static"]["frontend"]["root"].as_str(), Some(".web/build/client"));
        assert!(doc["bridge"].get("session_cookie").is_none());
    }

    #[test]
    fn env_file_lines() {
        let text = env_file("a".repeat(64).as_str(), "b".repeat(64).as_str(), "shop.settings");
        let vars: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            vars,
            [
                format!("ISTHMUS_IDENTITY_SECRET={}", "a".repeat(64)),
                format!("ISTHMUS_BRIDGE_SECRET={}", "b".repeat(64)),
                "DJANGO_SETTINGS_MODULE=shop.settings".into()
            ]
        );
    }
}

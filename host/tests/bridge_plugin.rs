//! The default bridge policy component (`django_bridge.wasm`) loaded through the
//! plugin runtime: its rules, its deny-reason protocol, and `isthmus check`.

mod common;

use std::sync::Arc;

use common::*;
use isthmus::config::Config;
use isthmus::plugin::{PluginError, PluginHost, WasmBridge};
use isthmus::policy::RouteRequest;
use isthmus::policy::{BridgeEvent, BridgePolicy, EventKind, Refusal, Verdict};
use isthmus::policy::{Identity, Resolved};

const RULES: &str = r#"{ login_url = "/accounts/login/", default = "authenticated", rules = [
  { event = "*.staff_state.*", require = "staff" },
  { event = "*.reports_state.export", require = ["authenticated", "group:analysts"] },
  { event = "*.product_state.delete", require = "perm:shop.delete_product" },
  { event = "*.public_state.*", require = "any" },
] }"#;

fn site(config: &str) -> (Site, std::path::PathBuf) {
    let site = Site::new();
    std::fs::copy(plugin_path("django_bridge.wasm"), site.path().join("plugins/django_bridge.wasm")).unwrap();
    let text = format!(
        r#"[listen]
addr = "127.0.0.1:0"
[upstreams.django]
url = "http://127.0.0.1:9"
[[routing.routers]]
plugin = "test.wasm"
[bridge]
identity_secret = "0123456789abcdef0123456789abcdef"
bridge_secret = "fedcba9876543210fedcba9876543210"
[bridge.policy]
plugin = "django_bridge.wasm"
config = {config}
"#
    );
    let file = site.write("isthmus.toml", &text);
    (site, file)
}

fn load(config: &str) -> Result<Arc<WasmBridge>, PluginError> {
    let (_site, file) = site(config);
    let config = Config::parse(&std::fs::read_to_string(&file).unwrap(), &file).unwrap();
    load_policy(&config)
}

/// The bridge policy alone (the router of the config is a placeholder file).
fn load_policy(config: &Config) -> Result<Arc<WasmBridge>, PluginError> {
    let policy = &config.bridge.as_ref().expect("a [bridge] section").policy;
    PluginHost::new().unwrap().load_bridge(policy, &config.routing.plugins_dir, Some(config.cache_dir()), 1)
}

fn user(name: &str) -> Identity {
    Identity { authenticated: true, user_id: Some("7".into()), username: name.into(), ..Identity::default() }
}

fn ev(name: &str) -> Arc<BridgeEvent> {
    Arc::new(BridgeEvent {
        name: name.into(),
        payload_json: "{}".into(),
        route: "/reports".into(),
        query: "page=2".into(),
        ..BridgeEvent::default()
    })
}

/// A refusal in the notation clients see (`login_required:<url>`, `forbidden:<why>`).
fn refused(text: &str) -> Verdict {
    Verdict::Refuse(match text.split_once(':') {
        Some(("login_required", url)) => Refusal::LoginRequired(url.into()),
        Some(("forbidden", why)) => Refusal::Forbidden(why.into()),
        _ => panic!("not a refusal: {text}"),
    })
}

#[test]
fn each_rule_kind_allows_and_denies() {
    // `raise_exception`: logged-in users lacking a requirement are told which one.
    let policy = load(&RULES.replacen("{ ", "{ raise_exception = true, ", 1)).unwrap();
    let anon = Resolved::anonymous();
    let plain = Resolved::new(user("bob"));
    let staff = Resolved::new(Identity { is_staff: true, ..user("sue") });
    let analyst = Resolved::new(Identity { groups: vec!["analysts".into()], ..user("ann") });
    let deleter = Resolved::new(Identity { permissions: vec!["shop.delete_product".into()], ..user("dan") });
    let root = Resolved::new(Identity { is_superuser: true, ..user("root") });
    let verdict = |name: &str, who: &Arc<Resolved>| policy.on_event(&ev(name), who).unwrap();
    let allowed = |v: &Verdict| matches!(v, Verdict::Allow(_));

    let staff_event = "state.staff_state.restock";
    assert_eq!(verdict(staff_event, &anon), refused("login_required:/accounts/login/"));
    assert_eq!(verdict(staff_event, &plain), refused("forbidden:staff"));
    assert!(allowed(&verdict(staff_event, &staff)));

    let export = "state.reports_state.export";
    assert_eq!(verdict(export, &plain), refused("forbidden:group:analysts"));
    assert!(allowed(&verdict(export, &analyst)));
    assert!(!allowed(&verdict(export, &root)), "superusers are in no group by right, as in Django");

    let delete = "state.product_state.delete";
    assert_eq!(verdict(delete, &plain), refused("forbidden:perm:shop.delete_product"));
    assert!(allowed(&verdict(delete, &deleter)));
    assert!(allowed(&verdict(delete, &root)), "superusers have every permission");

    assert!(allowed(&verdict("state.public_state.view", &anon)));
    assert_eq!(verdict("state.other_state.x", &anon), refused("login_required:/accounts/login/"), "the default");
    assert_eq!(verdict("state.staff_state.restock", &staff), Verdict::Allow(vec![("rule".into(), "0".into())]));
    assert!(matches!(verdict("", &staff), Verdict::Close(_)));
    // By default they are sent to the login page, as Django's decorators do.
    let redirecting = load(RULES).unwrap();
    assert_eq!(redirecting.on_event(&ev(staff_event), &plain).unwrap(), refused("login_required:/accounts/login/"));
    let handshake = Arc::new(RouteRequest { path: "/_event/".into(), ..RouteRequest::default() });
    assert!(allowed(&policy.on_connect(&handshake, &anon).unwrap()));
}

#[test]
fn a_bad_rule_is_a_setup_error_naming_the_key() {
    let err = load(r#"{ rules = [ { event = "*", require = "staf" } ] }"#).unwrap_err().to_string();
    assert!(err.contains("django_bridge") && err.contains("rules[0].require") && err.contains("staf"), "{err}");
}

#[test]
fn a_router_component_is_refused_as_a_bridge() {
    let (site, _) = site("{}");
    std::fs::copy(plugin_path("prefix_router.wasm"), site.path().join("plugins/django_bridge.wasm")).unwrap();
    let file = site.path().join("isthmus.toml");
    let config = Config::parse(&std::fs::read_to_string(&file).unwrap(), &file).unwrap();
    let err = load_policy(&config).unwrap_err().to_string();
    assert!(err.contains("bridge") && err.contains("on-connect"), "{err}");
}

#[test]
fn check_loads_the_bridge_policy() {
    let (site, file) = site(RULES);
    std::fs::copy(plugin_path("prefix_router.wasm"), site.path().join("plugins/test.wasm")).unwrap();
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("plugin = \"test.wasm\"", "plugin = \"test.wasm\"\nconfig = { spa_mount = \"frontend\" }");
    std::fs::write(&file, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_isthmus"))
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("bridge on /_event with policy django_bridge"), "{stdout}");
}

/// Every method of the lent `users.identity` handle, through a real guest that echoes
/// what it was answered (`test_identity_echo.wasm`).
#[test]
fn a_policy_reads_the_whole_identity_through_the_handle() {
    let (site, file) = site("{}");
    std::fs::copy(plugin_path("test_identity_echo.wasm"), site.path().join("plugins/django_bridge.wasm")).unwrap();
    let config = Config::parse(&std::fs::read_to_string(&file).unwrap(), &file).unwrap();
    let policy = load_policy(&config).unwrap();
    let who = Resolved::new(Identity {
        email: "sue@example.org".into(),
        first_name: "Sue".into(),
        last_name: "Smith".into(),
        is_staff: true,
        groups: vec!["clerks".into(), "analysts".into()],
        permissions: vec!["shop.view_product".into(), "shop.change_product".into()],
        session: [("cart".to_string(), "[1,2]".to_string()), ("theme".to_string(), "\"dark\"".to_string())].into(),
        ..user("sue")
    });
    let echo = |who: &Arc<Resolved>, ask: &str| -> std::collections::HashMap<String, String> {
        let ev = Arc::new(BridgeEvent {
            payload_json: ask.into(),
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            ..(*ev("state.x")).clone()
        });
        match policy.on_event(&ev, who).unwrap() {
            Verdict::Allow(fields) => fields.into_iter().collect(),
            other => panic!("{other:?}"),
        }
    };
    let got = echo(&who, "analysts");
    let field = |k: &str| got[k].as_str();
    assert_eq!(
        (field("authenticated"), field("user-id"), field("username"), field("email")),
        ("true", "7", "sue", "sue@example.org")
    );
    assert_eq!((field("first-name"), field("last-name")), ("Sue", "Smith"));
    assert_eq!((field("is-staff"), field("is-superuser")), ("true", "false"));
    assert_eq!(field("groups"), "clerks,analysts");
    assert_eq!(field("permissions"), "shop.view_product,shop.change_product");
    assert_eq!(field("session"), "cart=[1,2];theme=\"dark\"");
    assert_eq!((field("in-group"), field("has-permission")), ("true", "false"));
    assert_eq!(echo(&who, "shop.change_product")["has-permission"], "true");
    assert_eq!((echo(&who, "theme")["session-value"].as_str(), field("session-value")), ("\"dark\"", "none"));
    // The lent event answers too.
    assert_eq!(
        (field("kind"), field("event"), field("route"), field("query")),
        ("Client", "state.x", "/reports", "page=2")
    );
    assert_eq!(field("traceparent"), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    let upload = Arc::new(BridgeEvent { kind: EventKind::Upload, ..(*ev("state.x")).clone() });
    match policy.on_event(&upload, &who).unwrap() {
        Verdict::Allow(fields) => assert!(fields.contains(&("kind".into(), "Upload".into()))),
        other => panic!("{other:?}"),
    }
    let anon = echo(&Resolved::anonymous(), "clerks");
    assert_eq!(
        (anon["authenticated"].as_str(), anon["user-id"].as_str(), anon["in-group"].as_str()),
        ("false", "none", "false")
    );
    // Each call lends the handle afresh and takes it back: many calls, one instance.
    for _ in 0..200 {
        assert_eq!(echo(&who, "clerks")["in-group"], "true");
    }
}

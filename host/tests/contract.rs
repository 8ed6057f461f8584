//! The policy contract `isthmus:policy@0.3.0` as the gateway carries it out: refusals
//! answered as a login redirect or 403, the Django user lent to routers that declare
//! `needs.identity` (and only to them), failures answered generically, and components
//! of another contract version refused with a message that says so.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use http::{Request, StatusCode};
use isthmus::config::Config;
use isthmus::dispatch::Gateway;
use isthmus::plugin::PluginHost;
use isthmus::policy::{Decision, Refusal, Router, RouterChain};

const SECRETS: &str = r#"identity_secret = "0123456789abcdef0123456789abcdef"
bridge_secret = "fedcba9876543210fedcba9876543210"
"#;

#[tokio::test]
async fn refusals_are_a_login_redirect_with_next_or_a_403() {
    let site = Site::new();
    let up = upstream(|_req| async { text("upstream") }).await;
    let config = site.config(&[("django", up)], "");
    let refuse = router("guard", |req| {
        Ok(match req.path.as_str() {
            "/staff/report" => Decision::Refuse(Refusal::LoginRequired("/admin/login/".into())),
            "/elsewhere" => Decision::Refuse(Refusal::LoginRequired("/login/?lang=fr".into())),
            "/secret" => Decision::Refuse(Refusal::Forbidden("staff only".into())),
            _ => forward("django"),
        })
    });
    let gw = start_gateway(&config, vec![refuse]).await;
    let (status, headers, _) = get(&gw.url("/staff/report?tab=a%20b&x=1")).await;
    assert_eq!(status, StatusCode::FOUND);
    // As Django's redirect_to_login: the page with its query, escaped but for slashes.
    assert_eq!(headers["location"], "/admin/login/?next=/staff/report%3Ftab%3Da%2520b%26x%3D1");
    let (_, headers, _) = get(&gw.url("/elsewhere")).await;
    assert_eq!(headers["location"], "/login/?lang=fr&next=/elsewhere");
    let (status, _, body) = get(&gw.url("/secret")).await;
    assert_eq!((status, &body[..]), (StatusCode::FORBIDDEN, &b"forbidden: staff only\n"[..]));
    let (status, _, body) = get(&gw.url("/other")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"upstream"[..]));
}

/// A site whose router is `test_hostile.wasm` in `mode`, with Django's identity
/// endpoint stubbed: cookie `sessionid=sue` is Sue, any other is anonymous.
async fn identity_site(mode: &str, with_bridge: bool) -> (Site, Config, Arc<Mutex<usize>>) {
    let asked = Arc::new(Mutex::new(0));
    let counter = asked.clone();
    let django = upstream(move |req: Request<hyper::body::Incoming>| {
        let counter = counter.clone();
        async move {
            *counter.lock().unwrap() += 1;
            let cookie = req.headers().get("cookie").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
            if cookie == "sessionid=sue" {
                text(r#"{"authenticated": true, "user_id": "3", "username": "sue", "first_name": "Sue"}"#)
            } else {
                text(r#"{"authenticated": false, "user_id": null}"#)
            }
        }
    })
    .await;
    let site = Site::new();
    std::fs::copy(plugin_path("test_hostile.wasm"), site.path().join("plugins/test.wasm")).unwrap();
    std::fs::copy(plugin_path("test_identity_echo.wasm"), site.path().join("plugins/bridge.wasm")).unwrap();
    let mut text = format!(
        "[listen]\naddr = \"127.0.0.1:0\"\n[upstreams.django]\nurl = \"http://{django}\"\n\
         [[routing.routers]]\nplugin = \"test.wasm\"\nconfig = {{ mode = \"{mode}\" }}\n"
    );
    if with_bridge {
        text += &format!("[bridge]\n{SECRETS}[bridge.policy]\nplugin = \"bridge.wasm\"\n");
    }
    let file = site.write("isthmus.toml", &text);
    let config = Config::parse(&text, &file).unwrap();
    (site, config, asked)
}

async fn gateway_of(config: &Config) -> std::io::Result<Gateway> {
    let plugins = PluginHost::new().unwrap().load(config, None).unwrap();
    let routers: Vec<Arc<dyn Router>> = plugins.routers.into_iter().map(|r| r as Arc<dyn Router>).collect();
    let bridge = plugins.bridge.map(|b| b as Arc<dyn isthmus::policy::BridgePolicy>);
    Gateway::new(config, RouterChain::new(routers), bridge, metrics(config))
}

#[tokio::test]
async fn a_router_that_declares_the_need_is_lent_the_django_user() {
    let (_site, config, asked) = identity_site("whoami", true).await;
    let gw = start_with(Arc::new(gateway_of(&config).await.unwrap()), &config).await;
    let with_cookie = |cookie: &'static str| {
        Request::get(gw.url("/where")).header("cookie", cookie).body(http_body_util::Full::default()).unwrap()
    };
    let (status, _, body) = send(with_cookie("theme=dark; sessionid=sue")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"sue GET /where"[..]));
    let (_, _, body) = send(with_cookie("sessionid=nobody")).await;
    assert_eq!(&body[..], b"anonymous GET /where");
    let (_, _, body) = get(&gw.url("/where")).await;
    assert_eq!(&body[..], b"anonymous GET /where", "no session cookie: anonymous without asking Django");
    let before = *asked.lock().unwrap();
    send(with_cookie("sessionid=sue")).await;
    assert_eq!(*asked.lock().unwrap(), before, "cached per session cookie");
    assert_eq!(before, 2, "one question per cookie value");
}

#[tokio::test]
async fn a_router_that_did_not_declare_it_traps_and_the_client_is_told_nothing_more() {
    let (_site, config, asked) = identity_site("undeclared", true).await;
    let gw = start_with(Arc::new(gateway_of(&config).await.unwrap()), &config).await;
    let req = Request::get(gw.url("/where")).header("cookie", "sessionid=sue").body(Default::default()).unwrap();
    let (status, _, body) = send(req).await;
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.starts_with("503 Service Unavailable\nrequest id: "), "{body}");
    assert!(!body.contains("test") && !body.contains("trap") && !body.contains("needs"), "{body}");
    assert_eq!(*asked.lock().unwrap(), 0, "no router needs the user: Django is not asked");
}

#[tokio::test]
async fn a_router_that_needs_the_user_needs_the_identity_settings() {
    let (_site, config, _) = identity_site("whoami", false).await;
    let err = gateway_of(&config).await.err().expect("refused").to_string();
    assert!(err.contains("router `test` needs the Django user") && err.contains("[bridge]"), "{err}");
}

/// The smallest component of contract 0.2.0's shape: it exports `init`, not `setup`.
const CONTRACT_0_2: &str = r#"(component
  (core module $m (func (export "f")))
  (core instance $i (instantiate $m))
  (func $init (canon lift (core func $i "f")))
  (export "init" (func $init))
  (func $route (canon lift (core func $i "f")))
  (export "route" (func $route)))"#;

#[test]
fn a_component_of_the_previous_contract_is_refused_naming_both_versions() {
    let site = Site::new();
    std::fs::write(site.path().join("plugins/test.wasm"), wat::parse_str(CONTRACT_0_2).unwrap()).unwrap();
    let config = site.config(&[("django", "127.0.0.1:9".parse().unwrap())], "");
    let err = PluginHost::new().unwrap().load(&config, None).map(|p| p.routers).unwrap_err().to_string();
    assert!(
        err.contains("built against isthmus:policy@0.2.0")
            && err.contains("speaks isthmus:policy@0.3.0")
            && err.contains("isthmus plugin new"),
        "{err}"
    );
}

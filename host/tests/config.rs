//! Config errors name the file, the key and what is wrong.

use std::path::Path;

use isthmus::config::Config;

fn site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    std::fs::write(dir.path().join("plugins/router.wasm"), b"x").unwrap();
    std::fs::create_dir_all(dir.path().join("spa")).unwrap();
    std::fs::write(dir.path().join("spa/index.html"), b"<html>").unwrap();
    dir
}

const GOOD: &str = r#"
[listen]
addr = "127.0.0.1:3000"

[upstreams.django]
url = "http://127.0.0.1:8001"
health = "/healthz"

[static.frontend]
root = "spa"
fallback = "index.html"

[[routing.routers]]
plugin = "router.wasm"
deadline = "5ms"
config = { django_prefixes = ["/admin"] }
"#;

fn error(text: &str) -> String {
    let dir = site();
    let file = dir.path().join("isthmus.toml");
    match Config::parse(text, &file) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.starts_with(&file.display().to_string()), "names the file: {msg}");
            msg
        }
    }
}

fn with(find: &str, replace: &str) -> String {
    assert!(GOOD.contains(find), "{find}");
    GOOD.replace(find, replace)
}

#[test]
fn a_good_config_loads_with_defaults_and_resolved_paths() {
    let dir = site();
    let config = Config::parse(GOOD, &dir.path().join("isthmus.toml")).unwrap();
    assert_eq!(config.listen.addr.port(), 3000);
    assert_eq!(config.timeouts.connect, isthmus::limits::CONNECT_TIMEOUT);
    assert_eq!(config.static_mounts["frontend"].root, dir.path().join("spa"));
    assert_eq!(config.routing.plugins_dir, dir.path().join("plugins"));
    let router = &config.routing.routers[0];
    assert_eq!(router.display_name(), "router");
    assert_eq!(router.deadline, std::time::Duration::from_millis(5));
    assert_eq!(router.config_json(), r#"{"django_prefixes":["/admin"]}"#);
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let msg = error(&with("health = \"/healthz\"", "health = \"/healthz\"\nhealth_check = \"/x\""));
    assert!(msg.contains("upstreams.django") && msg.contains("health_check"), "{msg}");
    let msg = error(&format!("colour = \"blue\"\n{GOOD}"));
    assert!(msg.contains("colour"), "{msg}");
    let msg = error(&with("addr = \"127.0.0.1:3000\"", "addr = \"127.0.0.1:3000\"\nworkerz = 1"));
    assert!(msg.contains("listen") && msg.contains("workerz"), "{msg}");
    // Found by fuzzing (host/fuzz/seeds/config/05-empty-key.toml): the key was named by "".
    let msg = error(&format!("\"\" = 0\n{GOOD}"));
    assert!(msg.contains(": \"\": unknown field"), "{msg}");
    let msg = error(&with("addr = \"127.0.0.1:3000\"", "addr = \"127.0.0.1:3000\"\n\"a.b\" = 1"));
    assert!(msg.contains(": listen.\"a.b\": unknown field"), "{msg}");
}

#[test]
fn bad_values_name_the_key() {
    let cases = [
        (with("127.0.0.1:3000", "localhost"), "listen.addr"),
        (with("http://127.0.0.1:8001", "https://127.0.0.1:8001"), "upstreams.django.url"),
        (with("http://127.0.0.1:8001", "http://127.0.0.1"), "upstreams.django.url"),
        (with("http://127.0.0.1:8001", "http://127.0.0.1:8001/app"), "upstreams.django.url"),
        (with("/healthz", "healthz"), "upstreams.django.health"),
        (with("root = \"spa\"", "root = \"missing\""), "static.frontend.root"),
        (with("fallback = \"index.html\"", "fallback = \"../isthmus.toml\""), "static.frontend.fallback"),
        (with("router.wasm", "missing.wasm"), "routing.routers[0].plugin"),
        (with("router.wasm", "../router.wasm"), "routing.routers[0].plugin"),
        (with("router.wasm", "builtin:router"), "routing.routers[0].plugin"),
        (with("[listen]", "[routing]\nstartup_wait = \"later\"\n[listen]"), "routing"),
        (with("deadline = \"5ms\"", "deadline = \"soon\""), "routing.routers[0].deadline"),
        (with("deadline = \"5ms\"", "deadline = \"5ms\"\nfail = \"sometimes\""), "routing.routers[0].fail"),
        (with("[upstreams.django]", "[upstreams.\"dj ango\"]"), "upstreams.dj ango"),
        (with("[listen]", "[timeouts]\nconnect = \"0s\"\n[listen]"), "timeouts.connect"),
        (
            with("addr = \"127.0.0.1:3000\"", "addr = \"127.0.0.1:3000\"\nhttp2_max_concurrent_streams = 0"),
            "listen.http2_max_concurrent_streams",
        ),
        (with("addr = \"127.0.0.1:3000\"", "addr = \"127.0.0.1:3000\"\nmax_connections = 0"), "listen.max_connections"),
        (with("addr = \"127.0.0.1:3000\"", "addr = \"127.0.0.1:3000\"\nmax_websockets = 0"), "listen.max_websockets"),
        (
            with("addr = \"127.0.0.1:3000\"", "addr = \"127.0.0.1:3000\"\nmax_connections_per_ip = -1"),
            "listen.max_connections_per_ip",
        ),
        (with("health = \"/healthz\"", "max_connections = 0"), "upstreams.django.max_connections"),
        (with("[listen]", "[timeouts]\nclient_body = \"0s\"\n[listen]"), "timeouts.client_body"),
        (with("[listen]", "[timeouts]\nclient_send = \"0s\"\n[listen]"), "timeouts.client_send"),
    ];
    for (text, key) in cases {
        let msg = error(&text);
        assert!(msg.contains(key), "expected key `{key}` in: {msg}");
    }
}

#[test]
fn missing_sections_and_syntax_errors_are_named() {
    let msg = error(&GOOD.replace("[listen]\naddr = \"127.0.0.1:3000\"\n", ""));
    assert!(msg.contains("listen"), "{msg}");
    let msg = error("[listen\naddr = 1");
    assert!(msg.contains("line 1"), "{msg}");
}

#[test]
fn a_missing_file_is_named() {
    let err = Config::load(Path::new("/nonexistent/isthmus.toml")).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/isthmus.toml") && err.contains("cannot read"), "{err}");
}

#[test]
fn builtins_are_named_and_checked_against_their_world() {
    let dir = site();
    let text = with("plugin = \"router.wasm\"", "plugin = \"builtin:prefix-router\"");
    let config = Config::parse(&text, &dir.path().join("isthmus.toml")).unwrap();
    assert_eq!(config.routing.routers[0].display_name(), "prefix-router");
    assert_eq!(config.routing.startup_wait, isthmus::limits::PLUGIN_STARTUP_WAIT);

    let msg = error(&with("router.wasm", "builtin:prefix_router"));
    assert!(msg.contains("routing.routers[0].plugin"), "{msg}");
    assert!(msg.contains("the built-ins are builtin:prefix-router, builtin:django-bridge"), "{msg}");
    let msg = error(&with("router.wasm", "builtin:django-bridge"));
    assert!(msg.contains("`builtin:django-bridge` is a bridge policy; this entry takes a router policy"), "{msg}");
}

#[test]
fn bridge_values_name_the_key() {
    let bridge = "\n[bridge]\nidentity_secret = \"0123456789abcdef0123456789abcdef\"\nbridge_secret = \"fedcba9876543210fedcba9876543210\"\n";
    let policy = "\n[bridge.policy]\nplugin = \"builtin:django-bridge\"\n";
    let good = format!("{GOOD}{bridge}{policy}");
    let dir = site();
    let config = Config::parse(&good, &dir.path().join("isthmus.toml")).unwrap();
    let b = config.bridge.unwrap();
    assert_eq!(
        (b.browser_cookie.as_str(), b.rebind_path.as_str(), b.upload_path.as_str()),
        ("isthmus_browser", "/_isthmus/rebind", "/_upload")
    );
    assert_eq!((b.on_identity_change, b.max_upload_bytes), (None, isthmus::limits::BRIDGE_MAX_UPLOAD_BYTES));
    let cases = [
        ("browser_cookie = \"a b\"", "bridge.browser_cookie"),
        ("browser_cookie = \"sessionid\"", "bridge.browser_cookie"),
        ("browser_cookie = \"__Host-x\"", "bridge.browser_cookie"),
        ("session_cookie = \"a;b\"", "bridge.session_cookie"),
        ("rebind_path = \"rebind\"", "bridge.rebind_path"),
        ("upload_path = \"/_upload/\"", "bridge.upload_path"),
        ("on_identity_change = \"a b\"", "bridge.on_identity_change"),
        ("max_upload_bytes = -1", "bridge"),
    ];
    for (line, key) in cases {
        let msg = error(&format!("{GOOD}{bridge}{line}\n{policy}"));
        assert!(msg.contains(key), "expected key `{key}` in: {msg}");
    }
}

#[test]
fn redis_values_name_the_key_and_never_show_the_url() {
    let bridge = "\n[bridge]\nidentity_secret = \"0123456789abcdef0123456789abcdef\"\nbridge_secret = \"fedcba9876543210fedcba9876543210\"\n[bridge.policy]\nplugin = \"builtin:django-bridge\"\n";
    let redis = |lines: &str| format!("{GOOD}{bridge}\n[redis]\n{lines}\n");
    let dir = site();
    let config = Config::parse(&redis("url = \"redis://127.0.0.1:6379\""), &dir.path().join("isthmus.toml")).unwrap();
    let r = config.redis.unwrap();
    assert_eq!((r.url.expose_str(), r.channel.as_str()), ("redis://127.0.0.1:6379", isthmus::limits::REDIS_CHANNEL));
    assert!(Config::parse(GOOD, &dir.path().join("isthmus.toml")).unwrap().redis.is_none(), "absent: none");

    let msg = error(&format!("{GOOD}\n[redis]\nurl = \"redis://127.0.0.1:6379\"\n"));
    assert!(msg.contains(": redis: ") && msg.contains("[bridge]"), "{msg}");
    let cases = [
        ("url = \"rediss://:hunter2@redis.example:6380\"", "redis.url", "TLS"),
        ("url = \"http://:hunter2@127.0.0.1:6379\"", "redis.url", "not a Redis URL"),
        ("url = \"redis://:hunter2@\"", "redis.url", "not a Redis URL"),
        ("url = \"env:ISTHMUS_TEST_SURELY_UNSET\"", "redis.url", "ISTHMUS_TEST_SURELY_UNSET` is not set"),
        ("url = \"redis://127.0.0.1\"\nchannel = \"\"", "redis.channel", "non-empty"),
        ("url = \"redis://127.0.0.1\"\nchannel = \"a b\"", "redis.channel", "spaces"),
        ("url = \"redis://127.0.0.1\"\npassword = \"x\"", "redis.password", "unknown field"),
        ("channel = \"x\"", "redis", "missing field `url`"),
    ];
    for (lines, key, says) in cases {
        let msg = error(&redis(lines));
        assert!(msg.contains(&format!(": {key}: ")) && msg.contains(says), "expected `{key}` and `{says}` in: {msg}");
        assert!(!msg.contains("hunter2"), "the URL's password is never shown: {msg}");
    }
}

#[test]
fn tls_values_name_the_key() {
    let tls = |extra: &str| {
        with(
            "addr = \"127.0.0.1:3000\"\n",
            &format!("addr = \"127.0.0.1:3000\"\n[listen.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"\n{extra}"),
        )
    };
    let cases = [
        (
            tls("redirect_addr = \"127.0.0.1:3000\""),
            "listen.tls.redirect_addr",
            "give the plain-HTTP redirect its own port",
        ),
        (tls("redirect_addr = \"0.0.0.0:3000\""), "listen.tls.redirect_addr", "is the address HTTPS is served on"),
        (tls("acme_challenge_dir = \"spa\""), "listen.tls.acme_challenge_dir", "set listen.tls.redirect_addr too"),
        (
            tls("redirect_addr = \"127.0.0.1:80\"\nacme_challenge_dir = \"acme\""),
            "listen.tls.acme_challenge_dir",
            "is not a directory",
        ),
        (tls("certificates = [{ cert = \"a.pem\" }]"), "listen.tls.certificates", "missing field `key`"),
        (tls("ciphers = \"all\""), "listen.tls", "unknown field `ciphers`"),
        (
            with("addr = \"127.0.0.1:3000\"\n", "addr = \"127.0.0.1:3000\"\n[listen.tls]\ncert = \"c.pem\"\n"),
            "listen.tls",
            "missing field `key`",
        ),
    ];
    for (text, key, message) in cases {
        let msg = error(&text);
        assert!(msg.contains(key) && msg.contains(message), "expected `{key}` and `{message}` in: {msg}");
    }
    // Paths are the config folder's; whether the files hold a good pair is `isthmus::tls`'s to say.
    let dir = site();
    std::fs::create_dir_all(dir.path().join("acme")).unwrap();
    let text = tls("certificates = [{ cert = \"b.pem\", key = \"bk.pem\" }]\nredirect_addr = \"127.0.0.1:80\"\nacme_challenge_dir = \"acme\"");
    let config = Config::parse(&text, &dir.path().join("isthmus.toml")).unwrap();
    let tls = config.listen.tls.unwrap();
    assert_eq!((tls.cert, tls.key), (dir.path().join("c.pem"), dir.path().join("k.pem")));
    assert_eq!(tls.certificates[0].key, dir.path().join("bk.pem"));
    assert_eq!(tls.acme_challenge_dir, Some(dir.path().join("acme")));
    assert_eq!(config.listen.http2_max_concurrent_streams, isthmus::limits::HTTP2_MAX_CONCURRENT_STREAMS);
}

#[test]
fn metrics_listener_defaults_to_loopback_and_never_the_public_port() {
    let dir = site();
    let file = dir.path().join("isthmus.toml");
    assert!(Config::parse(GOOD, &file).unwrap().metrics.is_none(), "no table, no listener");
    let config = Config::parse(&format!("{GOOD}\n[metrics]\n"), &file).unwrap();
    let metrics = config.metrics.expect("the table turns it on");
    assert_eq!(metrics.listen, "127.0.0.1:9464".parse().unwrap());
    assert!(!metrics.allow_remote);
    let remote = format!("{GOOD}\n[metrics]\nlisten = \"0.0.0.0:9464\"\nallow_remote = true\n");
    assert!(Config::parse(&remote, &file).unwrap().metrics.unwrap().allow_remote);

    let cases = [
        ("listen = \"127.0.0.1:3000\"", "metrics.listen", "port of listen.addr"),
        ("listen = \"[::1]:3000\"", "metrics.listen", "port of listen.addr"),
        ("listen = \"0.0.0.0:9464\"", "metrics.listen", "allow_remote"),
        ("listen = \"192.0.2.1:9464\"", "metrics.listen", "allow_remote"),
        ("listen = \"localhost:9464\"", "metrics.listen", "socket address"),
        ("listen = 9464", "metrics.listen", "invalid type"),
        ("path = \"/m\"", "metrics", "path"),
        ("allow_remote = \"yes\"", "metrics.allow_remote", "invalid type"),
    ];
    for (line, key, what) in cases {
        let msg = error(&format!("{GOOD}\n[metrics]\n{line}\n"));
        assert!(msg.contains(key) && msg.contains(what), "expected `{key}` and `{what}` in: {msg}");
    }
}

#[test]
fn tracing_is_on_without_export_by_default_and_its_errors_name_the_key() {
    let dir = site();
    let config = Config::parse(GOOD, &dir.path().join("isthmus.toml")).unwrap();
    assert!(config.tracing.trust_client);
    assert_eq!(config.tracing.sample_ratio, isthmus::limits::TRACE_SAMPLE_RATIO);
    assert!(config.tracing.otlp.is_none(), "no export unless configured");
    assert_eq!(config.log.format, isthmus::config::LogFormat::Text);

    let text = GOOD.to_owned() + "[tracing.otlp]\nendpoint = \"http://127.0.0.1:4318/v1/traces\"\n";
    let config = Config::parse(&text, &dir.path().join("isthmus.toml")).unwrap();
    let otlp = config.tracing.otlp.unwrap();
    assert_eq!(otlp.uri.port_u16(), Some(4318));
    assert_eq!(otlp.service_name, isthmus::limits::OTLP_SERVICE_NAME);
    assert_eq!(otlp.queue_spans, isthmus::limits::OTLP_QUEUE_SPANS);

    for (extra, key, part) in [
        ("[tracing]\nsample_ratio = 1.5\n", "tracing.sample_ratio", "between 0 and 1"),
        ("[tracing]\ntrust = true\n", "tracing.trust", "unknown field"),
        ("[tracing.otlp]\nendpoint = \"https://collector:4318/v1/traces\"\n", "tracing.otlp.endpoint", "http://"),
        ("[tracing.otlp]\nendpoint = \"http://127.0.0.1:4318\"\n", "tracing.otlp.endpoint", "/v1/traces"),
        ("[tracing.otlp]\nservice_name = \"x\"\n", "tracing.otlp", "endpoint"),
        (
            "[tracing.otlp]\nendpoint = \"http://127.0.0.1:4318/v1/traces\"\nqueue_spans = 0\n",
            "tracing.otlp.queue_spans",
            "greater than zero",
        ),
        (
            "[tracing.otlp]\nendpoint = \"http://127.0.0.1:4318/v1/traces\"\nbatch_spans = 10000\nqueue_spans = 10\n",
            "tracing.otlp.batch_spans",
            "queue_spans",
        ),
        (
            "[tracing.otlp]\nendpoint = \"http://127.0.0.1:4318/v1/traces\"\nexport_timeout = \"0s\"\n",
            "tracing.otlp.export_timeout",
            "greater than zero",
        ),
        ("[log]\nformat = \"xml\"\n", "log.format", "unknown variant"),
    ] {
        let msg = error(&(GOOD.to_owned() + extra));
        assert!(msg.contains(&format!(": {key}: ")) && msg.contains(part), "{extra}: {msg}");
    }
}

#[test]
fn the_headers_section_names_the_key() {
    let dir = site();
    let config = Config::parse(GOOD, &dir.path().join("isthmus.toml")).unwrap();
    assert!(config.headers.remove.is_empty() && config.headers.keep.is_empty() && !config.headers.allow_underscores);
    for (extra, key, part) in [
        ("[headers]\nremove = [\"bad header\"]\n", "headers.remove[0]", "not a header name"),
        (
            "[headers]\nkeep = [\"remote-user\", \"authorization\"]\n",
            "headers.keep[1]",
            "not one of the identity headers",
        ),
        ("[headers]\nremove = [\"X-Isthmus-User\"]\n", "headers.remove[0]", "always removed"),
        ("[headers]\nstrip = []\n", "headers.strip", "unknown field"),
    ] {
        let msg = error(&(GOOD.to_owned() + extra));
        assert!(msg.contains(key) && msg.contains(part), "{extra}: {msg}");
    }
    let text = GOOD.to_owned() + "[headers]\nkeep = [\"Remote-User\"]\nremove = [\"x-api-user\"]\n";
    assert!(Config::parse(&text, &dir.path().join("isthmus.toml")).is_ok());
}

/// `[upstreams.django]` of GOOD with `fields` in place of its url and health lines.
fn pool(fields: &str) -> String {
    with("url = \"http://127.0.0.1:8001\"\nhealth = \"/healthz\"", fields)
}

#[test]
fn pools_load_endpoints_replicas_balance_and_health_checks() {
    let dir = site();
    let file = dir.path().join("isthmus.toml");
    let text = pool(
        "url = \"http://127.0.0.1:8001\"\nreplicas = 3\nrun = \"serve {port}\"\nbalance = \"hash\"\n\
         hash_key = [\"query:token\", \"header:Reflex-Client-Token\"]\n\
         health = { path = \"/ping\", interval = \"500ms\", timeout = \"100ms\", healthy_threshold = 1 }",
    );
    let config = Config::parse(&text, &file).unwrap_or_else(|e| panic!("{e}"));
    let django = &config.upstreams["django"];
    let ports: Vec<_> = django.addresses.iter().map(|a| a.port().unwrap()).collect();
    assert_eq!(ports, [8001, 8002, 8003]);
    assert_eq!(django.balance, isthmus::config::Balance::Hash);
    assert_eq!(django.hash_keys.len(), 2);
    let health = django.health.as_ref().unwrap();
    assert_eq!(health.path, "/ping");
    assert_eq!(health.interval, std::time::Duration::from_millis(500));
    assert_eq!(health.timeout, std::time::Duration::from_millis(100));
    assert_eq!(health.healthy_threshold, 1);
    assert_eq!(health.unhealthy_threshold, isthmus::limits::HEALTH_UNHEALTHY_THRESHOLD);

    let text = pool("endpoints = [\"http://10.0.0.1:8000\", \"http://reflex-1.reflex:8000\"]\nhealth = \"/ping\"");
    let config = Config::parse(&text, &file).unwrap_or_else(|e| panic!("{e}"));
    let django = &config.upstreams["django"];
    assert_eq!(django.addresses.len(), 2);
    assert_eq!(django.balance, isthmus::config::Balance::LeastConn);
    assert_eq!(django.health.as_ref().unwrap().interval, isthmus::limits::HEALTH_CHECK_INTERVAL);
    assert_eq!(django.addresses[0].to_string(), "10.0.0.1:8000");
}

#[test]
fn unix_sockets_load_from_url_endpoints_and_commands() {
    use isthmus::config::Address;
    let dir = site();
    let file = dir.path().join("isthmus.toml");
    std::fs::create_dir(dir.path().join("run")).unwrap();
    // A relative path is the config folder's; `{uds}` is filled with the url's path.
    let config = Config::parse(&pool("url = \"unix:run/django.sock\"\nrun = \"uvicorn a:b --uds {uds}\""), &file)
        .unwrap_or_else(|e| panic!("{e}"));
    let django = &config.upstreams["django"];
    assert_eq!(django.addresses, [Address::Unix(dir.path().join("run/django.sock"))]);
    assert!(!django.picks_sockets);
    let socket = dir.path().join("run/b.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    let text =
        pool(&format!("endpoints = [\"unix:run/a.sock\", \"unix:{}\", \"http://127.0.0.1:8002\"]", socket.display()));
    let config = Config::parse(&text, &file).unwrap_or_else(|e| panic!("{e}"));
    let labels: Vec<_> = config.upstreams["django"].addresses.iter().map(ToString::to_string).collect();
    assert_eq!(labels[1..], [format!("unix:{}", socket.display()), "127.0.0.1:8002".to_owned()]);
    // `{uds}` without a url: `isthmus run` picks one socket per replica, named here and
    // placed in its private folder when it starts.
    let config = Config::parse(&pool("replicas = 2\nrun = \"uvicorn a:b --uds {uds}\""), &file)
        .unwrap_or_else(|e| panic!("{e}"));
    let django = &config.upstreams["django"];
    assert!(django.picks_sockets);
    assert_eq!(django.addresses, [Address::Unix("django-0.sock".into()), Address::Unix("django-1.sock".into())]);
}

#[test]
fn unix_socket_mistakes_name_the_key() {
    let dir = site();
    std::fs::write(dir.path().join("plain-file"), b"x").unwrap();
    let long = format!("/{}", "d".repeat(110));
    let cases = [
        (pool("url = \"unix:\""), "upstreams.django.url", "unix:/path/to/app.sock"),
        (pool("url = \"unix:///run/a.sock\""), "upstreams.django.url", "unix:/path/to/app.sock"),
        (pool(&format!("url = \"unix:{long}.sock\"")), "upstreams.django.url", "at most 107"),
        (
            pool("url = \"unix:/no/such/folder/a.sock\""),
            "upstreams.django.url",
            "folder `/no/such/folder` does not exist",
        ),
        (
            pool(&format!("url = \"unix:{}\"", dir.path().join("plain-file").display())),
            "upstreams.django.url",
            "is not a socket",
        ),
        (
            pool("endpoints = [\"http://127.0.0.1:8001\", \"unix:/no/such/folder/a.sock\"]"),
            "upstreams.django.endpoints",
            "does not exist",
        ),
        (
            pool("url = \"unix:/tmp/a.sock\"\nreplicas = 2\nrun = \"x {uds}\""),
            "upstreams.django.replicas",
            "leave `url` out and put `{uds}` in `run`",
        ),
        (pool("url = \"unix:/tmp/a.sock\"\nrun = \"x --port {port}\""), "upstreams.django.run", "must contain `{uds}`"),
        (
            pool("url = \"unix:/tmp/a.sock\"\nrun = \"x --uds {uds} --port {port}\""),
            "upstreams.django.run",
            "use `{uds}`",
        ),
        (pool("url = \"http://127.0.0.1:8001\"\nrun = \"x {port} {uds}\""), "upstreams.django.run", "use `{port}`"),
        (pool("run = \"x --port {port}\""), "upstreams.django.url", "`{uds}` in `run`"),
        (
            pool("run = \"x --uds {uds}\"")
                + "\n[upstreams.reflex]\nurl = \"http://127.0.0.1:8002\"\nrun = \"y {port} {port:django}\"\n",
            "upstreams.reflex.run",
            "upstream `django` listens on a Unix socket, not a port",
        ),
        (
            pool("url = \"unix:/tmp/same.sock\"\nrun = \"x {uds}\"")
                + "\n[upstreams.reflex]\nurl = \"unix:/tmp/same.sock\"\nrun = \"y {uds}\"\n",
            "upstreams.",
            "`unix:/tmp/same.sock` is also where `isthmus run` starts upstream",
        ),
    ];
    for (text, key, message) in cases {
        let msg = error(&text);
        assert!(msg.contains(key) && msg.contains(message), "expected `{key}` and `{message}` in: {msg}\n{text}");
    }
}

#[test]
fn pool_mistakes_name_the_key() {
    let two = "endpoints = [\"http://127.0.0.1:8001\", \"http://127.0.0.1:8002\"]";
    let cases = [
        (pool(""), "upstreams.django.url", "required (or `endpoints`"),
        (pool(&format!("url = \"http://127.0.0.1:8001\"\n{two}")), "upstreams.django.endpoints", "not both"),
        (pool("endpoints = [\"http://127.0.0.1:8001\", \"ftp://x:1\"]"), "upstreams.django.endpoints", "http://"),
        (
            pool("endpoints = [\"http://127.0.0.1:8001\", \"http://127.0.0.1:8001\"]"),
            "upstreams.django.endpoints",
            "twice",
        ),
        (pool(&format!("{two}\nreplicas = 2\nrun = \"x {{port}}\"")), "upstreams.django.replicas", "goes with `url`"),
        (pool("url = \"http://127.0.0.1:8001\"\nreplicas = 2"), "upstreams.django.replicas", "needs `run`"),
        (
            pool("url = \"http://127.0.0.1:8001\"\nreplicas = 0\nrun = \"x {port}\""),
            "upstreams.django.replicas",
            "from 1",
        ),
        (
            pool("url = \"http://127.0.0.1:65534\"\nreplicas = 3\nrun = \"x {port}\""),
            "upstreams.django.replicas",
            "past port 65535",
        ),
        (pool(&format!("{two}\nbalance = \"random\"")), "upstreams.django.balance", "least_conn"),
        (pool(&format!("{two}\nbalance = \"hash\"")), "upstreams.django.hash_key", "needs the attribute"),
        (pool(&format!("{two}\nhash_key = \"query:token\"")), "upstreams.django.hash_key", "only read with"),
        (
            pool(&format!("{two}\nbalance = \"hash\"\nhash_key = \"cookie:sessionid\"")),
            "upstreams.django.hash_key",
            "query:NAME",
        ),
        (
            pool(&format!("{two}\nhealth = {{ path = \"/ping\", intervall = \"1s\" }}")),
            "upstreams.django.health",
            "healthy_threshold",
        ),
        (pool(&format!("{two}\nhealth = {{ path = \"ping\" }}")), "upstreams.django.health", "starting with `/`"),
        (
            pool(&format!("{two}\nhealth = {{ path = \"/ping\", unhealthy_threshold = 0 }}")),
            "upstreams.django.health",
            "at least 1",
        ),
        (
            pool(&format!("{two}\nhealth = {{ path = \"/ping\", interval = \"0s\" }}")),
            "upstreams.django.health",
            "longer than 0",
        ),
        (
            pool("endpoints = [\"http://127.0.0.1:8001\", \"http://10.0.0.1:8001\"]\nrun = \"x {port}\""),
            "upstreams.django.endpoints",
            "must be on 127.0.0.1",
        ),
        (pool(&format!("{two}\ndev_run = \"x {{port}}\"")), "upstreams.django.dev_run", "starts one process"),
        (
            pool("url = \"http://127.0.0.1:8001\"\nreplicas = 2\nrun = \"x {port}\"")
                + "\n[upstreams.reflex]\nurl = \"http://127.0.0.1:8002\"\nrun = \"y {port}\"\n",
            "upstreams.",
            "port 8002 is also where `isthmus run` starts upstream",
        ),
    ];
    for (text, key, message) in cases {
        let msg = error(&text);
        assert!(msg.contains(key) && msg.contains(message), "expected `{key}` and `{message}` in: {msg}\n{text}");
    }
}

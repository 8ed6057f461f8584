//! TLS on the public listener, against a CA and leaves made by the test: ALPN h2 and
//! http/1.1, the scheme upstreams are told, SNI, certificates reloaded while
//! connections stay open, bad pairs refused with the key named, the plain-HTTP
//! redirect with ACME challenges, and HTTP/2's stream limit.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::pki::{self, presented, Leaf, Pki};
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use isthmus::config::Config;
use isthmus::dispatch::Gateway;
use isthmus::policy::RouterChain;
use isthmus::redirect::Redirect;
use isthmus::reload::spawn_reloader;
use isthmus::tls::Tls;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;

const TLS: &str = "[listen.tls]\ncert = \"tls/site.pem\"\nkey = \"tls/site.key\"\n";

/// An HTTPS gateway in front of an upstream that answers with what it received.
async fn https_site(pki: &Pki, extra: &str) -> (Site, Config, Tls, RunningGateway) {
    let up = upstream(|req: Request<hyper::body::Incoming>| async move {
        let seen = serde_json::json!({
            "proto": req.headers().get("x-forwarded-proto").and_then(|v| v.to_str().ok()),
            "host": req.headers().get("host").and_then(|v| v.to_str().ok()),
            "path": req.uri().path(),
        });
        text(seen.to_string())
    })
    .await;
    let site = Site::new();
    site.write_pair("site", &pki.leaf(&["localhost", "127.0.0.1"]));
    let config = site.config(&[("app", up)], &format!("{extra}{TLS}"));
    let metrics = metrics(&config);
    let tls = Tls::new(config.listen.tls.as_ref().unwrap(), &metrics).unwrap();
    let chain = RouterChain::new(vec![router("r", |_| Ok(forward("app")))]);
    let gateway = Arc::new(Gateway::new(&config, chain, None, metrics).unwrap());
    let gw = start_serving(gateway, &config, Some(tls.acceptor())).await;
    (site, config, tls, gw)
}

async fn connect(gw: &RunningGateway, connector: &tokio_rustls::TlsConnector, sni: &str) -> TlsStream<TcpStream> {
    pki::connect(gw.addr, connector, sni).await
}

type H2 = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

async fn h2(stream: TlsStream<TcpStream>) -> H2 {
    let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    send
}

async fn h2_get(send: &mut H2, path: &str) -> (http::Version, serde_json::Value) {
    let req = Request::get(format!("https://localhost{path}")).body(Empty::new()).unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let version = res.version();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (version, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn https_speaks_http2_and_http1_by_alpn_and_tells_upstreams_https() {
    let pki = Pki::new();
    let (_site, _config, _tls, gw) = https_site(&pki, "").await;

    let stream = connect(&gw, &pki.client(&[b"h2", b"http/1.1"]), "localhost").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut send = h2(stream).await;
    let (version, seen) = h2_get(&mut send, "/over-h2").await;
    assert_eq!(version, http::Version::HTTP_2);
    assert_eq!((seen["proto"].as_str(), seen["path"].as_str()), (Some("https"), Some("/over-h2")));
    assert_eq!(seen["host"], "localhost", "Host comes from :authority");

    let stream = connect(&gw, &pki.client(&[b"http/1.1"]), "localhost").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::get("/over-h1").header("host", "localhost").body(Empty::<Bytes>::new()).unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_11);
    let seen: serde_json::Value = serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(seen["proto"], "https");

    // A client offering no ALPN at all gets HTTP/1.1.
    let stream = connect(&gw, &pki.client(&[]), "localhost").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), None);

    // Plain HTTP on the TLS port is no request at all: the handshake fails, nothing is served.
    let (status, _, _) = match tokio::time::timeout(Duration::from_secs(5), async {
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build_http::<Empty<Bytes>>()
            .request(Request::get(gw.url("/plain")).body(Empty::new()).unwrap())
            .await
    })
    .await
    .expect("a plain request on the TLS port must end at once")
    {
        Ok(res) => (res.status(), (), ()),
        Err(_) => (StatusCode::IM_A_TEAPOT, (), ()),
    };
    assert_eq!(status, StatusCode::IM_A_TEAPOT, "plain HTTP got an answer: {status}");
}

#[tokio::test]
async fn sni_chooses_the_certificate_and_the_default_serves_the_rest() {
    let pki = Pki::new();
    let shop = pki.leaf(&["shop.test", "*.shop.test"]);
    let site_leaf = pki.leaf(&["localhost"]);
    let site = Site::new();
    site.write_pair("site", &site_leaf);
    site.write_pair("shop", &shop);
    let up = upstream(|_req: Request<hyper::body::Incoming>| async move { text("{}") }).await;
    let config = site.config(
        &[("app", up)],
        &format!("{TLS}certificates = [{{ cert = \"tls/shop.pem\", key = \"tls/shop.key\" }}]\n"),
    );
    let metrics = metrics(&config);
    let tls = Tls::new(config.listen.tls.as_ref().unwrap(), &metrics).unwrap();
    let chain = RouterChain::new(vec![router("r", |_| Ok(forward("app")))]);
    let gateway = Gateway::new(&config, chain, None, metrics.clone()).unwrap();
    let gw = start_serving(Arc::new(gateway), &config, Some(tls.acceptor())).await;

    // The client checks the chain up to the CA; which leaf it got is compared directly.
    for (sni, expected) in [
        ("shop.test", &shop.der),
        ("SHOP.test", &shop.der),
        ("www.shop.test", &shop.der),
        ("localhost", &site_leaf.der),
        ("other.test", &site_leaf.der),
        ("a.b.shop.test", &site_leaf.der),
    ] {
        let der = presented_any(&gw, &pki, sni).await;
        assert_eq!(&der, expected, "SNI {sni}");
    }
    // Each certificate's expiry is a gauge, labelled by its first name.
    let scrape = metrics.encode(false);
    for (label, leaf) in [("localhost", &site_leaf), ("shop.test", &shop)] {
        let line = format!(
            "isthmus_tls_certificate_expiry_timestamp_seconds{{certificate=\"{label}\"}} {}",
            leaf.not_after_unix
        );
        assert!(scrape.contains(&line), "no `{line}` in:\n{scrape}");
    }
    let names: Vec<Vec<String>> = tls.certificates().iter().map(|c| c.names.clone()).collect();
    assert_eq!(names, vec![vec!["localhost".to_owned()], vec!["shop.test".to_owned(), "*.shop.test".to_owned()]]);
}

/// The leaf presented for `sni`, whether or not it is valid for that name.
async fn presented_any(gw: &RunningGateway, pki: &Pki, sni: &str) -> CertificateDer<'static> {
    #[derive(Debug)]
    struct AnyName(Arc<rustls::client::WebPkiServerVerifier>);
    impl rustls::client::danger::ServerCertVerifier for AnyName {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            ocsp: &[u8],
            now: rustls_pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            // Checked against the CA under a name every test leaf carries.
            let name = ServerName::try_from("localhost").unwrap();
            match self.0.verify_server_cert(end_entity, intermediates, &name, ocsp, now) {
                Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext { .. }))
                | Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)) => {
                    Ok(rustls::client::danger::ServerCertVerified::assertion())
                }
                other => other,
            }
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.supported_verify_schemes()
        }
    }
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let provider = Arc::new(isthmus::tls::crypto_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyName(verifier)))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    presented(&connect(gw, &connector, sni).await)
}

#[tokio::test]
async fn certificates_reload_on_change_without_dropping_connections_and_bad_pairs_keep_the_old() {
    let pki = Pki::new();
    let (site, _config, tls, gw) = https_site(&pki, "").await;
    let reloader = spawn_reloader(vec![tls.reloadable()], vec![]);
    let connector = pki.client(&[b"h2"]);
    let first = connect(&gw, &connector, "localhost").await;
    let old = presented(&first);
    let mut open = h2(first).await;
    h2_get(&mut open, "/before").await;

    // A renewed certificate: new handshakes get it once the watcher has seen the files.
    let renewed = pki.leaf(&["localhost"]);
    site.write_pair("site", &renewed);
    let start = std::time::Instant::now();
    while presented(&connect(&gw, &connector, "localhost").await) != renewed.der {
        assert!(start.elapsed() < Duration::from_secs(10), "the renewed certificate was not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(old, renewed.der);
    // The connection made before the swap still serves.
    let (_, seen) = h2_get(&mut open, "/after").await;
    assert_eq!(seen["path"], "/after");

    // A key that is not the certificate's: refused, the renewed pair keeps serving.
    let stranger = pki.leaf(&["localhost"]);
    std::fs::write(site.path().join("tls/site.key"), &stranger.key_pem).unwrap();
    isthmus::reload::Reload::refresh(&*tls.reloadable(), false);
    assert_eq!(presented(&connect(&gw, &connector, "localhost").await), renewed.der);
    // Garbage in place of the certificate: the same.
    std::fs::write(site.path().join("tls/site.pem"), "not a certificate").unwrap();
    isthmus::reload::Reload::refresh(&*tls.reloadable(), false);
    assert_eq!(presented(&connect(&gw, &connector, "localhost").await), renewed.der);
    h2_get(&mut open, "/still").await;
    reloader.stop().await;
}

#[tokio::test]
async fn bad_pairs_are_refused_naming_the_file() {
    let pki = Pki::new();
    let site = Site::new();
    let up = dead_port().await;
    let leaf = pki.leaf(&["localhost"]);
    let other = pki.leaf(&["localhost"]);
    let tls_of = |site: &Site| {
        let config = site.config(&[("app", up)], TLS);
        Tls::new(config.listen.tls.as_ref().unwrap(), &metrics(&config)).err().map(|e| e.to_string())
    };
    site.write("tls/site.pem", &leaf.cert_pem);
    site.write("tls/site.key", &other.key_pem);
    let err = tls_of(&site).expect("a key of another certificate is refused");
    assert!(err.contains("does not belong to the certificate") && err.contains("site.key"), "{err}");
    site.write("tls/site.key", &leaf.key_pem);
    assert_eq!(tls_of(&site), None);
    site.write("tls/site.pem", "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n");
    let err = tls_of(&site).unwrap();
    assert!(err.contains("site.pem") && err.contains("not a PEM certificate chain"), "{err}");
    site.write("tls/site.pem", "");
    let err = tls_of(&site).unwrap();
    assert!(err.contains("holds no CERTIFICATE block"), "{err}");
    site.write("tls/site.pem", &leaf.cert_pem);
    site.write("tls/site.key", &leaf.cert_pem);
    let err = tls_of(&site).unwrap();
    assert!(err.contains("site.key") && err.contains("no PEM private key"), "{err}");
    std::fs::remove_file(site.path().join("tls/site.key")).unwrap();
    let err = tls_of(&site).unwrap();
    assert!(err.contains("site.key: cannot read"), "{err}");
}

#[tokio::test]
async fn validity_names_expired_and_soon_expiring_certificates() {
    let pki = Pki::new();
    let now = std::time::SystemTime::now();
    let check = |leaf: &Leaf| {
        let site = Site::new();
        site.write_pair("site", leaf);
        let config = site.config(&[("app", "127.0.0.1:1".parse().unwrap())], TLS);
        let tls = Tls::new(config.listen.tls.as_ref().unwrap(), &metrics(&config)).unwrap();
        let c = tls.certificates().remove(0);
        c.validity(now, isthmus::limits::TLS_EXPIRY_WARNING)
    };
    let expired = check(&pki.leaf_until(&["old.test"], rcgen::date_time_ymd(2020, 1, 1))).unwrap_err();
    assert!(expired.contains("old.test") && expired.contains("expired on") && expired.contains("2020"), "{expired}");
    // From the same `now` the check uses (a clock read later, on a loaded machine, could
    // make it five whole days), an hour short of five days.
    let soon = time::OffsetDateTime::from(now) + time::Duration::days(5) - time::Duration::hours(1);
    let warning = check(&pki.leaf_until(&["soon.test"], soon)).unwrap().expect("a warning");
    assert!(warning.contains("soon.test") && warning.contains("expires in 4 days"), "{warning}");
    assert_eq!(check(&pki.leaf(&["fine.test"])), Ok(None));
}

#[tokio::test]
async fn http2_over_tls_streams_bodies_both_ways_and_serves_static_ranges() {
    const SIZE: usize = 8 * 1024 * 1024;
    let pki = Pki::new();
    // The upstream counts what it receives while it streams back SIZE bytes.
    let up = upstream(|req: Request<hyper::body::Incoming>| async move {
        let mut body = req.into_body();
        let mut received = 0usize;
        while let Some(frame) = body.frame().await {
            received += frame.unwrap().data_ref().map_or(0, |d| d.len());
        }
        let chunks = futures_util::stream::iter(
            (0..SIZE / 65536)
                .map(|_| Ok::<_, isthmus::body::BoxError>(hyper::body::Frame::data(Bytes::from(vec![7u8; 65536])))),
        );
        let mut res = http::Response::new(http_body_util::StreamBody::new(chunks).boxed_unsync());
        res.headers_mut().insert("x-received", received.to_string().parse().unwrap());
        res
    })
    .await;
    let site = Site::new();
    site.write_pair("site", &pki.leaf(&["localhost"]));
    site.write("files/app.js", "0123456789");
    let config =
        site.config(&[("app", up)], &format!("{TLS}\n[static.files]\nroot = \"files\"\nstrip_prefix = \"/static\"\n"));
    let metrics = metrics(&config);
    let tls = Tls::new(config.listen.tls.as_ref().unwrap(), &metrics).unwrap();
    let chain = RouterChain::new(vec![router("r", |req| {
        Ok(if req.path.starts_with("/static/") {
            isthmus::policy::Decision::ServeStatic("files".into())
        } else {
            forward("app")
        })
    })]);
    let gw =
        start_serving(Arc::new(Gateway::new(&config, chain, None, metrics).unwrap()), &config, Some(tls.acceptor()))
            .await;
    let stream = connect(&gw, &pki.client(&[b"h2"]), "localhost").await;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);

    let upload = futures_util::stream::iter(
        (0..SIZE / 65536)
            .map(|_| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from(vec![1u8; 65536])))),
    );
    let req = Request::post("https://localhost/upload").body(http_body_util::StreamBody::new(upload)).unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!((res.status(), res.version()), (StatusCode::OK, http::Version::HTTP_2));
    assert_eq!(res.headers()["x-received"], SIZE.to_string().as_str());
    let mut body = res.into_body();
    let mut got = 0usize;
    while let Some(frame) = body.frame().await {
        got += frame.unwrap().data_ref().map_or(0, |d| d.len());
    }
    assert_eq!(got, SIZE);

    let mut send = h2(connect(&gw, &pki.client(&[b"h2"]), "localhost").await).await;
    let req = Request::get("https://localhost/static/app.js").header("range", "bytes=2-4").body(Empty::new()).unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(&res.into_body().collect().await.unwrap().to_bytes()[..], b"234");
}

/// Opens `n` streams on `client` and resets each at once, as fast as the connection
/// takes them; the first error, if any.
async fn open_and_reset(client: &mut h2::client::SendRequest<Bytes>, n: usize) -> Option<h2::Error> {
    for _ in 0..n {
        let req = Request::post("https://localhost/reset").body(()).unwrap();
        match client.send_request(req, false) {
            Ok((_, mut body)) => body.send_reset(h2::Reason::CANCEL),
            Err(e) => return Some(e),
        }
        match client.clone().ready().await {
            Ok(ready) => *client = ready,
            Err(e) => return Some(e),
        }
    }
    None
}

#[tokio::test]
async fn http2_rapid_reset_closes_the_connection_and_others_are_served() {
    let pki = Pki::new();
    let (_site, _config, _tls, gw) = https_site(&pki, "").await;
    let stream = connect(&gw, &pki.client(&[b"h2"]), "localhost").await;
    let (client, conn) = h2::client::handshake(stream).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();

    // A few cancelled streams are normal (a browser leaving a page): the connection serves on.
    assert!(open_and_reset(&mut client, isthmus::limits::HTTP2_MAX_PENDING_RESET_STREAMS / 2).await.is_none());
    let (res, _) = client.send_request(Request::get("https://localhost/fine").body(()).unwrap(), true).unwrap();
    assert_eq!(res.await.unwrap().status(), StatusCode::OK);

    // Streams opened and cancelled in one burst, far past the limit: the "rapid reset"
    // pattern. The gateway ends the connection (GOAWAY, then close; the client may see
    // either first).
    let burst = open_and_reset(&mut client, isthmus::limits::HTTP2_MAX_PENDING_RESET_STREAMS * 20).await;
    let ended =
        tokio::time::timeout(Duration::from_secs(10), conn).await.expect("the connection was not closed").unwrap();
    let err = ended.err().or(burst).expect("the gateway ends the connection with an error");
    assert!(err.is_go_away() || err.is_io(), "the connection ended otherwise than by the gateway closing it: {err:?}");
    // Everyone else is still served.
    let mut other = h2(connect(&gw, &pki.client(&[b"h2"]), "localhost").await).await;
    h2_get(&mut other, "/after-the-attack").await;
}

#[tokio::test]
async fn websockets_ride_http2_by_extended_connect() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{protocol::Role, Message};
    let pki = Pki::new();
    // A WebSocket echo upstream, spoken to in HTTP/1.1 as ever.
    let up = websocket_echo().await;
    let site = Site::new();
    site.write_pair("site", &pki.leaf(&["localhost"]));
    let config = site.config(&[("ws", up)], TLS);
    let metrics = metrics(&config);
    let tls = Tls::new(config.listen.tls.as_ref().unwrap(), &metrics).unwrap();
    let chain = RouterChain::new(vec![router("r", |_| Ok(forward("ws")))]);
    let gw =
        start_serving(Arc::new(Gateway::new(&config, chain, None, metrics).unwrap()), &config, Some(tls.acceptor()))
            .await;

    let stream = connect(&gw, &pki.client(&[b"h2"]), "localhost").await;
    let (mut send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    // Two sockets on one HTTP/2 connection, beside an ordinary request.
    let mut sockets = Vec::new();
    for _ in 0..2 {
        let mut req = Request::connect("https://localhost/_event/?EIO=4&transport=websocket")
            .header("sec-websocket-version", "13")
            .body(Empty::new())
            .unwrap();
        req.extensions_mut().insert(hyper::ext::Protocol::from_static("websocket"));
        let mut res = send.send_request(req).await.unwrap();
        assert_eq!((res.status(), res.version()), (StatusCode::OK, http::Version::HTTP_2));
        assert!(!res.headers().contains_key("sec-websocket-accept") && !res.headers().contains_key("connection"));
        let upgraded = hyper::upgrade::on(&mut res).await.unwrap();
        sockets.push(
            tokio_tungstenite::WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await,
        );
    }
    for (i, ws) in sockets.iter_mut().enumerate() {
        for n in 0..20 {
            let msg = format!("42/_event,[\"event\",{{\"socket\":{i},\"n\":{n}}}]");
            ws.send(Message::text(msg.clone())).await.unwrap();
            assert_eq!(ws.next().await.unwrap().unwrap().into_text().unwrap().as_str(), msg);
        }
    }
    // A plain CONNECT (no :protocol) is no WebSocket: not tunneled.
    let res = send.send_request(Request::connect("https://localhost/x").body(Empty::new()).unwrap()).await;
    assert!(res.map_or(true, |r| r.status() != StatusCode::OK), "a CONNECT without :protocol was answered 200");
    for mut ws in sockets {
        ws.close(None).await.unwrap();
    }
}

#[tokio::test]
async fn http2_stream_limit_is_advertised() {
    let pki = Pki::new();
    let (_site, _config, _tls, gw) = https_site(&pki, "").await;
    let mut send = h2(connect(&gw, &pki.client(&[b"h2"]), "localhost").await).await;
    h2_get(&mut send, "/settings-seen").await;
    let raw = h2_raw(&gw, &pki).await;
    assert_eq!(raw, isthmus::limits::HTTP2_MAX_CONCURRENT_STREAMS as usize);

    let (_site, _config, _tls, gw) = https_site(&pki, "http2_max_concurrent_streams = 7\n").await;
    assert_eq!(h2_raw(&gw, &pki).await, 7);
}

/// The server's SETTINGS_MAX_CONCURRENT_STREAMS as an h2 client sees it.
async fn h2_raw(gw: &RunningGateway, pki: &Pki) -> usize {
    let stream = connect(gw, &pki.client(&[b"h2"]), "localhost").await;
    let (client, conn) = h2::client::handshake(stream).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    // The server's SETTINGS arrive with its first frames; one request makes sure of them.
    let (res, _) = client.send_request(Request::get("https://localhost/").body(()).unwrap(), true).unwrap();
    res.await.unwrap();
    client.current_max_send_streams()
}

/// The plain-HTTP redirect beside HTTPS on `https_port`, with the default timeouts and caps.
fn redirect_handler(site: &Site, https_port: u16, acme: Option<std::path::PathBuf>) -> Arc<Redirect> {
    let config = site.config(&[("app", "127.0.0.1:9".parse().unwrap())], "");
    let caps = isthmus::caps::ConnectionCaps::from_config(&config.listen, &metrics(&config));
    Arc::new(Redirect::new(https_port, acme, &config.timeouts, caps))
}

#[tokio::test]
async fn plain_http_is_redirected_to_https_and_acme_challenges_are_served() {
    let site = Site::new();
    site.write("acme/tok-EN_123", "tok-EN_123.thumbprint");
    site.write("secret.txt", "not for the world");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let redirect = redirect_handler(&site, 8443, Some(site.path().join("acme")));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(redirect.serve(listener, async {
        let _ = stopped.await;
    }));
    let url = |path: &str| format!("http://{addr}{path}");
    let with_host = |method: http::Method, path: &str, host: &str| {
        Request::builder()
            .method(method)
            .uri(url(path))
            .header("host", host)
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap()
    };

    let (status, headers, _) = send(with_host(http::Method::GET, "/shop/?q=1&r=%2F", "example.com:8080")).await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(headers["location"], "https://example.com:8443/shop/?q=1&r=%2F");
    let (status, headers, _) = send(with_host(http::Method::POST, "/login/", "[::1]")).await;
    assert_eq!(
        (status, headers["location"].to_str().unwrap()),
        (StatusCode::PERMANENT_REDIRECT, "https://[::1]:8443/login/")
    );
    let (status, _, _) = send(with_host(http::Method::GET, "/", "bad host")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, headers, body) =
        send(with_host(http::Method::GET, "/.well-known/acme-challenge/tok-EN_123", "example.com")).await;
    assert_eq!((status, &body[..]), (StatusCode::OK, &b"tok-EN_123.thumbprint"[..]));
    assert_eq!(headers["content-type"], "application/octet-stream");
    for path in [
        "/.well-known/acme-challenge/missing",
        "/.well-known/acme-challenge/..%2Fsecret.txt",
        "/.well-known/acme-challenge/",
    ] {
        let (status, _, _) = send(with_host(http::Method::GET, path, "example.com")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(5), task).await.expect("the redirect listener stops").unwrap();

    // On 443 the port is left out.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(redirect_handler(&site, 443, None).serve(listener, std::future::pending()));
    let req = Request::get(format!("http://{addr}/.well-known/acme-challenge/x"))
        .header("host", "example.com")
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let (status, headers, _) = send(req).await;
    assert_eq!(
        (status, headers["location"].to_str().unwrap()),
        (StatusCode::PERMANENT_REDIRECT, "https://example.com/.well-known/acme-challenge/x")
    );
}

//! An upstream's `run` / `dev_run` string made into an argument vector: `{port}` and
//! `{host}` filled in from its url, `{port:NAME}` with upstream NAME's port (one process
//! serving two upstreams, as `reflex run --env dev` does), then split as a POSIX shell splits words (quotes
//! and backslashes) but run without a shell, so signals reach the program itself.
//! `{host}` is the url's address, `localhost` being 127.0.0.1, so that a child is never
//! told to listen on more than loopback.

use http::Uri;

pub fn argv(command: &str, uri: &Uri, port_of: &dyn Fn(&str) -> Option<u16>) -> Result<Vec<String>, String> {
    let port = uri.port_u16().ok_or("the url names no port")?;
    let mut filled = command.replace("{port}", &port.to_string()).replace("{host}", bind_host(uri));
    while let Some(start) = filled.find("{port:") {
        let end = filled[start..].find('}').ok_or_else(|| format!("`{command}`: `{{port:` is not closed"))? + start;
        let name = &filled[start + 6..end];
        let port = port_of(name).ok_or_else(|| format!("`{{port:{name}}}`: `{name}` is not in [upstreams]"))?;
        filled.replace_range(start..=end, &port.to_string());
    }
    match shlex::split(&filled) {
        Some(argv) if !argv.is_empty() => Ok(argv),
        Some(_) => Err("names no program".into()),
        None => Err(format!("`{command}` has an unbalanced quote or a trailing backslash")),
    }
}

/// The address a child started for `uri` listens on.
pub fn bind_host(uri: &Uri) -> &str {
    match uri.host().unwrap_or("localhost").trim_start_matches('[').trim_end_matches(']') {
        "localhost" => "127.0.0.1",
        host => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        s.parse().unwrap()
    }

    fn argv(command: &str, uri: &Uri) -> Result<Vec<String>, String> {
        super::argv(command, uri, &|name| (name == "frontend").then_some(3001))
    }

    #[test]
    fn fills_port_and_host_then_splits_like_a_shell() {
        let a = argv(
            r#"python -m uvicorn app:asgi --host {host} --port {port} --log-config "my log.ini""#,
            &uri("http://127.0.0.1:8001"),
        )
        .unwrap();
        assert_eq!(
            a,
            [
                "python",
                "-m",
                "uvicorn",
                "app:asgi",
                "--host",
                "127.0.0.1",
                "--port",
                "8001",
                "--log-config",
                "my log.ini"
            ]
        );
        assert_eq!(
            argv("serve --bind=[{host}]:{port}", &uri("http://[::1]:9000")).unwrap(),
            ["serve", "--bind=[::1]:9000"]
        );
        assert_eq!(argv("serve {host}", &uri("http://localhost:9000")).unwrap(), ["serve", "127.0.0.1"]);
        assert_eq!(
            argv("reflex run --backend-port {port} --frontend-port {port:frontend}", &uri("http://127.0.0.1:8000"))
                .unwrap()[2..],
            ["--backend-port", "8000", "--frontend-port", "3001"]
        );
    }

    #[test]
    fn refuses_what_cannot_be_run() {
        assert!(argv(r#"python "unclosed"#, &uri("http://127.0.0.1:1")).unwrap_err().contains("unbalanced quote"));
        assert!(argv("   ", &uri("http://127.0.0.1:1")).unwrap_err().contains("no program"));
        assert!(argv("x {port:nope}", &uri("http://127.0.0.1:1"))
            .unwrap_err()
            .contains("`nope` is not in [upstreams]"));
        assert!(argv("x {port:frontend", &uri("http://127.0.0.1:1")).unwrap_err().contains("is not closed"));
    }
}

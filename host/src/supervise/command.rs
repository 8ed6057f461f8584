//! An upstream's `run` / `dev_run` string made into an argument vector: split as a POSIX
//! shell splits words (quotes and backslashes) but run without a shell, so signals reach
//! the program itself; then, in each word, `{port}` and `{host}` filled in from its TCP
//! address, `{uds}` with its Unix socket's path (after the split: a path with a space
//! stays one argument), and `{port:NAME}` with upstream NAME's port (one process
//! serving two upstreams, as `reflex run --env dev` does).
//! `{host}` is the url's address, `localhost` being 127.0.0.1, so that a child is never
//! told to listen on more than loopback.

use crate::config::{Address, UDS_PLACEHOLDER};

pub fn argv(
    command: &str,
    address: &Address,
    port_of: &dyn Fn(&str) -> Result<u16, String>,
) -> Result<Vec<String>, String> {
    let words = match shlex::split(command) {
        Some(words) if !words.is_empty() => words,
        Some(_) => return Err("names no program".into()),
        None => return Err(format!("`{command}` has an unbalanced quote or a trailing backslash")),
    };
    let wrong = |placeholder: &'static str| command.contains(placeholder).then_some(placeholder);
    let (port, host, socket) = match address {
        Address::Tcp { host, port } => match wrong(UDS_PLACEHOLDER) {
            Some(p) => {
                return Err(format!("`{p}` is a Unix socket's path, and `{address}` is a TCP address: use `{{port}}`"))
            }
            None => (port.to_string(), bind_host(host).to_owned(), String::new()),
        },
        Address::Unix(path) => match wrong("{port}").or(wrong("{host}")) {
            Some(p) => {
                return Err(format!(
                    "`{p}`: the upstream listens on the Unix socket `{address}`: use `{UDS_PLACEHOLDER}`"
                ))
            }
            None => (String::new(), String::new(), path.display().to_string()),
        },
    };
    words
        .into_iter()
        .map(|word| {
            let mut filled = word.replace("{port}", &port).replace("{host}", &host).replace(UDS_PLACEHOLDER, &socket);
            while let Some(start) = filled.find("{port:") {
                let end =
                    filled[start..].find('}').ok_or_else(|| format!("`{command}`: `{{port:` is not closed"))? + start;
                let port = port_of(&filled[start + 6..end]).map_err(|m| format!("`{}`: {m}", &filled[start..=end]))?;
                filled.replace_range(start..=end, &port.to_string());
            }
            Ok(filled)
        })
        .collect()
}

/// The address a child started on `host` (as written in its url) listens on.
pub fn bind_host(host: &str) -> &str {
    match host.trim_start_matches('[').trim_end_matches(']') {
        "localhost" => "127.0.0.1",
        host => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(url: &str) -> Address {
        Address::parse(url, std::path::Path::new("/srv/site")).unwrap()
    }

    fn argv(command: &str, url: &str) -> Result<Vec<String>, String> {
        super::argv(command, &at(url), &|name| match name {
            "frontend" => Ok(3001),
            _ => Err(format!("`{name}` is not in [upstreams]")),
        })
    }

    #[test]
    fn fills_port_and_host_then_splits_like_a_shell() {
        let a = argv(
            r#"python -m uvicorn app:asgi --host {host} --port {port} --log-config "my log.ini""#,
            "http://127.0.0.1:8001",
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
        assert_eq!(argv("serve --bind=[{host}]:{port}", "http://[::1]:9000").unwrap(), ["serve", "--bind=[::1]:9000"]);
        assert_eq!(argv("serve {host}", "http://localhost:9000").unwrap(), ["serve", "127.0.0.1"]);
        assert_eq!(
            argv("reflex run --backend-port {port} --frontend-port {port:frontend}", "http://127.0.0.1:8000").unwrap()
                [2..],
            ["--backend-port", "8000", "--frontend-port", "3001"]
        );
    }

    #[test]
    fn fills_a_socket_path_as_one_word() {
        assert_eq!(
            argv("python -m uvicorn app:asgi --uds {uds}", "unix:/run/my app/django.sock").unwrap()[3..],
            ["app:asgi", "--uds", "/run/my app/django.sock"]
        );
        assert_eq!(
            argv("gunicorn --bind=unix:{uds}", "unix:d.sock").unwrap(),
            ["gunicorn", "--bind=unix:/srv/site/d.sock"]
        );
    }

    #[test]
    fn refuses_what_cannot_be_run() {
        assert!(argv(r#"python "unclosed"#, "http://127.0.0.1:1").unwrap_err().contains("unbalanced quote"));
        assert!(argv("   ", "http://127.0.0.1:1").unwrap_err().contains("no program"));
        assert!(argv("x {port:nope}", "http://127.0.0.1:1").unwrap_err().contains("`nope` is not in [upstreams]"));
        assert!(argv("x {port:frontend", "http://127.0.0.1:1").unwrap_err().contains("is not closed"));
        assert!(argv("x --uds {uds}", "http://127.0.0.1:1").unwrap_err().contains("use `{port}`"));
        assert!(argv("x --port {port} --uds {uds}", "unix:/a.sock").unwrap_err().contains("use `{uds}`"));
        assert!(argv("x --host {host} --uds {uds}", "unix:/a.sock").unwrap_err().contains("`{host}`"));
    }
}

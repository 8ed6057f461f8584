//! One supervised process: started in its own process group with its output prefixed
//! by the upstream's name, and stopped as a whole group so that workers it forked
//! (uvicorn's, Reflex's) go with it.

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

use super::command::bind_host;
use crate::config::Address;
use crate::limits;

#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub argv: Vec<String>,
    pub cwd: Option<PathBuf>,
    /// Where it listens: a TCP address is also told in `PORT` / `HOST`, for programs
    /// that read them.
    pub address: Address,
    /// What the companion reads to find the gateway (see `supervise::gateway_env`).
    pub env: Vec<(&'static str, String)>,
}

pub struct Running {
    child: Child,
    pgid: i32,
}

impl Spec {
    pub fn spawn(&self) -> std::io::Result<Running> {
        let mut cmd = Command::new(&self.argv[0]);
        match &self.address {
            Address::Tcp { host, port } => {
                cmd.env("PORT", port.to_string()).env("HOST", bind_host(host));
            }
            // A socket left by the previous run would make a fresh bind fail (uvicorn
            // with --workers binds without removing it first).
            Address::Unix(path) => remove_stale_socket(path),
        }
        cmd.args(&self.argv[1..])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        if std::env::var_os("PYTHONUNBUFFERED").is_none() {
            // Python buffers a pipe: without this its log lines would arrive in bursts.
            cmd.env("PYTHONUNBUFFERED", "1");
        }
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        let parent = std::process::id();
        // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(move || {
                // Should isthmus die without stopping it (SIGKILL), the child is told.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 || libc::getppid() as u32 != parent {
                    return Err(std::io::Error::other("the supervisor is gone"));
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn()?;
        let pgid = child.id().expect("a just-spawned child has a pid") as i32;
        for stream in [child.stdout.take().map(boxed), child.stderr.take().map(boxed)].into_iter().flatten() {
            tokio::spawn(forward_lines(self.name.clone(), stream));
        }
        Ok(Running { child, pgid })
    }
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.pgid
    }

    pub async fn wait(&mut self) -> std::io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// SIGTERM to the whole group; SIGKILL to whatever is left after `grace`.
    /// Returns whether it had to kill.
    pub async fn stop(mut self, grace: Duration) -> bool {
        signal_group(self.pgid, libc::SIGTERM);
        let deadline = Instant::now() + grace;
        let _ = tokio::time::timeout(grace, self.child.wait()).await;
        self.finish_group(deadline).await
    }

    /// After the leader exited on its own: gives what it left in its group a short
    /// grace, then kills it, so a restarted process finds its port free.
    pub async fn clear_group(mut self) -> bool {
        let _ = self.child.wait().await;
        if !group_alive(self.pgid) {
            return false;
        }
        signal_group(self.pgid, libc::SIGTERM);
        self.finish_group(Instant::now() + limits::CHILD_LEFTOVER_GRACE).await
    }

    async fn finish_group(&mut self, deadline: Instant) -> bool {
        while group_alive(self.pgid) && Instant::now() < deadline {
            // The leader must be reaped for the group to look empty.
            let _ = self.child.try_wait();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let killed = group_alive(self.pgid);
        if killed {
            signal_group(self.pgid, libc::SIGKILL);
        }
        let _ = self.child.wait().await;
        killed
    }
}

fn remove_stale_socket(path: &std::path::Path) {
    use std::os::unix::fs::FileTypeExt;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
        let _ = std::fs::remove_file(path);
    }
}

#[allow(unsafe_code)]
fn signal_group(pgid: i32, signal: i32) {
    // SAFETY: killpg has no memory-safety preconditions; ESRCH (group gone) is fine.
    unsafe { libc::killpg(pgid, signal) };
}

#[allow(unsafe_code)]
fn group_alive(pgid: i32) -> bool {
    // SAFETY: signal 0 only checks that the group exists.
    unsafe { libc::killpg(pgid, 0) == 0 }
}

fn boxed(s: impl AsyncRead + Send + Unpin + 'static) -> Box<dyn AsyncRead + Send + Unpin> {
    Box::new(s)
}

/// Each line of the child's output, to isthmus's stderr as `name | line`.
async fn forward_lines(name: String, stream: Box<dyn AsyncRead + Send + Unpin>) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                eprintln!("{name} | {}", text.trim_end_matches(['\n', '\r']));
            }
        }
    }
}

//! The Unix sockets `isthmus run` picks for upstreams whose command takes `{uds}` and
//! that name no `url`: one per replica, in a folder of its own that only this user can
//! enter (0700, under `$XDG_RUNTIME_DIR` when set, else the temporary folder), so no
//! other user can connect to an upstream behind the gateway's back. The folder and
//! what is in it are removed when `isthmus run` ends (not when it is killed: SIGKILL
//! leaves it, as any killed process leaves its temporary files).

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::SuperviseError;
use crate::config::{Address, Config};
use crate::upstream::address::MAX_SOCKET_PATH;

/// The folder of the picked sockets; removed when dropped.
pub struct SocketDir {
    path: PathBuf,
}

impl SocketDir {
    /// Creates the folder when an upstream picks its sockets and joins it to their names
    /// in `config`, so that the pools connect there and the commands get those paths.
    pub fn place(config: &mut Config) -> Result<Option<SocketDir>, SuperviseError> {
        let parent = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from).filter(|d| d.is_dir());
        SocketDir::place_in(config, &parent.unwrap_or_else(std::env::temp_dir))
    }

    fn place_in(config: &mut Config, parent: &Path) -> Result<Option<SocketDir>, SuperviseError> {
        if !config.upstreams.values().any(|u| u.picks_sockets) {
            return Ok(None);
        }
        let dir = SocketDir::create(parent)
            .map_err(|error| SuperviseError::SocketDir { dir: parent.display().to_string(), error })?;
        for (name, upstream) in config.upstreams.iter_mut().filter(|(_, u)| u.picks_sockets) {
            for address in &mut upstream.addresses {
                let Address::Unix(file) = address else { continue };
                *address = Address::socket(dir.path.join(&*file)).map_err(|message| SuperviseError::Command {
                    file: config.file.display().to_string(),
                    name: name.clone(),
                    field: "run",
                    message: format!("{message} (a shorter upstream name, or a shorter $XDG_RUNTIME_DIR or $TMPDIR)"),
                })?;
            }
        }
        tracing::debug!(dir = %dir.path.display(), "upstream sockets");
        Ok(Some(dir))
    }

    /// `isthmus-` and a random suffix: a new folder each time (`create` fails on one that
    /// exists, so nobody can have prepared it), taken again on the rare collision.
    fn create(parent: &Path) -> io::Result<SocketDir> {
        loop {
            let mut suffix = [0u8; 6];
            getrandom::fill(&mut suffix).expect("the OS random source");
            let name: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
            let path = parent.join(format!("isthmus-{name}"));
            if path.as_os_str().len() + 2 > MAX_SOCKET_PATH {
                return Err(io::Error::other(format!("`{}` leaves no room for a socket's name", path.display())));
            }
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(SocketDir { path }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(dir = %self.path.display(), error = %e, "cannot remove the upstreams' socket folder");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_private_folder_per_run_with_a_socket_per_replica_removed_at_the_end() {
        let parent = tempfile::tempdir().unwrap();
        let text = "[listen]\naddr = \"127.0.0.1:0\"\n[upstreams.django]\nreplicas = 2\n\
                    run = \"uvicorn app:application --uds {uds}\"\n[upstreams.reflex]\nurl = \"http://127.0.0.1:8000\"\n\
                    [routing]\nrouters = [{ plugin = \"builtin:prefix-router\" }]\n";
        let mut config = Config::parse(text, Path::new("isthmus.toml")).unwrap();
        assert!(config.upstreams["django"].picks_sockets);
        let dir = SocketDir::place_in(&mut config, parent.path()).unwrap().expect("an upstream picks its sockets");
        let folder = dir.path.clone();
        assert_eq!(std::fs::metadata(&folder).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(folder.starts_with(parent.path()));
        let sockets: Vec<_> = config.upstreams["django"].addresses.iter().map(ToString::to_string).collect();
        assert_eq!(
            sockets,
            [format!("unix:{}/django-0.sock", folder.display()), format!("unix:{}/django-1.sock", folder.display())]
        );
        assert_eq!(config.upstreams["reflex"].addresses[0].to_string(), "127.0.0.1:8000");
        drop(dir);
        assert!(!folder.exists());
    }
}

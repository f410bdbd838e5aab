//! The local cluster's processes, found through `/proc`, for the control-plane fault cases: kill one
//! and start it again exactly as it was started (same program, arguments, environment, working
//! folder and log file), as a supervisor would.
//!
//! Only processes that belong to one cluster are ever touched: their arguments must mention the
//! cluster's folder.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// A running process and what it takes to start it again.
#[derive(Debug, Clone)]
pub struct Process {
    /// Its process id.
    pub pid: u32,
    /// The program file (`/proc/<pid>/exe`).
    pub exe: PathBuf,
    /// Its arguments, `argv[0]` first (which may differ from the program's name).
    pub argv: Vec<OsString>,
    /// Its environment.
    pub env: Vec<(OsString, OsString)>,
    /// Its working folder.
    pub cwd: PathBuf,
    /// Where its standard output goes, when that is a regular file.
    pub log: Option<PathBuf>,
}

/// Splits a `/proc/<pid>/cmdline` or `environ` buffer (NUL-terminated strings).
pub fn split_nul(bytes: &[u8]) -> Vec<OsString> {
    bytes
        .split(|b| *b == 0)
        .filter(|part| !part.is_empty())
        .map(|part| OsString::from_vec(part.to_vec()))
        .collect()
}

/// The command name a process runs as: the last path element of `argv[0]`.
pub fn command_name(argv: &[OsString]) -> Option<String> {
    let first = argv.first()?.to_string_lossy().into_owned();
    Some(first.rsplit('/').next().unwrap_or(&first).to_owned())
}

/// True when `argv` runs `name` and one of its arguments mentions `marker`.
pub fn matches(argv: &[OsString], name: &str, marker: &str) -> bool {
    command_name(argv).as_deref() == Some(name)
        && argv
            .iter()
            .skip(1)
            .any(|a| a.to_string_lossy().contains(marker))
}

fn read_process(pid: u32) -> Result<Process> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let argv = split_nul(&std::fs::read(dir.join("cmdline"))?);
    let env = split_nul(&std::fs::read(dir.join("environ"))?)
        .into_iter()
        .filter_map(|kv| {
            let kv = kv.into_vec();
            let eq = kv.iter().position(|b| *b == b'=')?;
            Some((
                OsString::from_vec(kv[..eq].to_vec()),
                OsString::from_vec(kv[eq + 1..].to_vec()),
            ))
        })
        .collect();
    let log = std::fs::read_link(dir.join("fd/1"))
        .ok()
        .filter(|p| p.is_file());
    // A binary rebuilt while the process ran reads `<path> (deleted)`; the path names the new build,
    // which is what a restart or a server started beside it should run.
    let exe = std::fs::read_link(dir.join("exe"))?;
    let exe = match exe.to_str().and_then(|p| p.strip_suffix(" (deleted)")) {
        Some(path) => PathBuf::from(path),
        None => exe,
    };
    Ok(Process {
        pid,
        exe,
        argv,
        env,
        cwd: std::fs::read_link(dir.join("cwd"))?,
        log,
    })
}

/// The one live process running `name` whose arguments mention `marker` (a cluster's folder).
pub fn find(name: &str, marker: &str) -> Result<Process> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").context("reading /proc")? {
        let Some(pid) = entry
            .ok()
            .and_then(|e| e.file_name().to_str()?.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if matches(&split_nul(&cmdline), name, marker) {
            found.push(pid);
        }
    }
    match found.as_slice() {
        [pid] => read_process(*pid).with_context(|| format!("reading process {pid} ({name})")),
        [] => bail!("no running {name} process of the cluster in {marker}"),
        many => bail!("{} {name} processes of the cluster: {many:?}", many.len()),
    }
}

/// True while `/proc/<pid>` exists and the process is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

impl Process {
    /// Sends `signal` (`KILL`, `TERM`, ...) and waits up to `wait` for the process to be gone.
    pub fn kill(&self, signal: &str, wait: Duration) -> Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status()
            .context("running kill")?;
        if !status.success() && is_alive(self.pid) {
            bail!("kill -{signal} {} failed: {status}", self.pid);
        }
        let start = Instant::now();
        while is_alive(self.pid) {
            if start.elapsed() > wait {
                bail!(
                    "process {} still alive {wait:?} after SIG{signal}",
                    self.pid
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// Starts the same command again, detached in a process group of its own so it outlives
    /// the test, appending to the same log file. Returns the new process id.
    pub fn respawn(&self) -> Result<u32> {
        let mut command = Command::new(&self.exe);
        if let Some(arg0) = self.argv.first() {
            command.arg0(arg0);
        }
        command
            .args(self.argv.iter().skip(1))
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd)
            .stdin(Stdio::null())
            .process_group(0);
        match &self.log {
            Some(path) => {
                let file = OpenOptions::new().append(true).open(path)?;
                command.stdout(file.try_clone()?).stderr(file);
            }
            None => {
                command.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {} again", self.exe.display()))?;
        Ok(child.id())
    }

    /// The value of `--<flag>=value` among the arguments.
    pub fn flag(&self, flag: &str) -> Option<String> {
        let prefix = format!("--{flag}=");
        self.argv
            .iter()
            .find_map(|a| a.to_str()?.strip_prefix(&prefix).map(str::to_owned))
    }
}

/// The cluster folder a kwokctl kubeconfig lives in (`.../clusters/<name>/kubeconfig.yaml`).
pub fn cluster_dir(kubeconfig: &Path) -> Option<&Path> {
    kubeconfig.parent()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(parts: &[&str]) -> Vec<OsString> {
        parts.iter().map(OsString::from).collect()
    }

    #[test]
    fn nul_separated_buffers_split_into_arguments() {
        assert_eq!(
            split_nul(b"etcd\0--data-dir=/c/etcd\0\0"),
            argv(&["etcd", "--data-dir=/c/etcd"])
        );
        assert!(split_nul(b"").is_empty());
    }

    #[test]
    fn a_process_matches_by_command_name_and_a_mention_of_the_cluster() {
        let apiserver = argv(&[
            "/c/bin/kube-apiserver",
            "--etcd-servers=x",
            "--cert-dir=/c/pki",
        ]);
        assert!(matches(&apiserver, "kube-apiserver", "/c/"));
        assert!(!matches(&apiserver, "kube-apiserver", "/other/"));
        assert!(!matches(&apiserver, "etcd", "/c/"));
        // The program name alone mentioning the folder is not enough.
        assert!(!matches(&argv(&["/c/bin/etcd"]), "etcd", "/c/"));
        // A shell whose arguments mention both is not the process.
        assert!(!matches(
            &argv(&["bash", "-c", "kube-apiserver /c/"]),
            "kube-apiserver",
            "/c/"
        ));
    }

    #[test]
    fn flags_are_read_from_the_arguments() {
        let p = Process {
            pid: 1,
            exe: PathBuf::from("/x"),
            argv: argv(&["metrics-server", "--metric-resolution=15s", "--v=4"]),
            env: Vec::new(),
            cwd: PathBuf::from("/"),
            log: None,
        };
        assert_eq!(p.flag("metric-resolution").as_deref(), Some("15s"));
        assert_eq!(p.flag("metric"), None);
    }

    #[test]
    fn this_test_process_is_alive_and_a_free_pid_is_not() {
        assert!(is_alive(std::process::id()));
        assert!(!is_alive(u32::MAX));
    }
}

//! The `--shard-*` flags: sharded high availability, off unless `--shard-by-lease` is set.
//!
//! They live here rather than in `flags.rs` so that the shared flag table only delegates.

use std::time::Duration;

use crate::flags::CliError;

/// Path of the service-account token mounted into pods.
pub const SA_TOKEN_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
const SA_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The `--shard-*` flag values as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardFlags {
    /// `--shard-by-lease`.
    pub enabled: bool,
    /// `--shard-group`: the label value that makes Leases one group.
    pub group: String,
    /// `--shard-namespace` (empty: `$POD_NAMESPACE`, the pod's namespace, `kube-system`).
    pub namespace: String,
    /// `--shard-identity` (empty: `$POD_NAME`, then the host name).
    pub identity: String,
    /// `--shard-peer-address` (empty: `$POD_IP` and the secure port).
    pub peer_address: String,
    /// `--shard-lease-duration` (ns).
    pub lease_duration: i64,
    /// `--shard-peer-allowed-users`.
    pub allowed_users: Vec<String>,
    /// `--shard-peer-token-file`.
    pub token_file: String,
    /// `--shard-peer-ca-file` (empty: peers' certificates are not verified).
    pub ca_file: String,
}

impl Default for ShardFlags {
    fn default() -> Self {
        Self {
            enabled: false,
            group: "metrics-server".to_owned(),
            namespace: String::new(),
            identity: String::new(),
            peer_address: String::new(),
            lease_duration: 15_000_000_000,
            allowed_users: vec!["system:serviceaccount:kube-system:metrics-server".to_owned()],
            token_file: SA_TOKEN_FILE.to_owned(),
            ca_file: String::new(),
        }
    }
}

/// Everything the shard runtime needs, resolved from flags and the environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardSettings {
    /// Group label value.
    pub group: String,
    /// Namespace of the Leases.
    pub namespace: String,
    /// This replica's member id (the Lease holder).
    pub identity: String,
    /// `host:port` peers reach this replica at.
    pub peer_address: String,
    /// Lease duration.
    pub lease_duration: Duration,
    /// Users allowed to read this replica's points.
    pub allowed_users: Vec<String>,
    /// Bearer token file presented to peers (absent file: no token).
    pub token_file: String,
    /// CA bundle for peers' serving certificates (empty: not verified).
    pub ca_file: String,
}

impl ShardFlags {
    /// Sets a boolean flag; false when the name is not one of ours.
    pub fn set_bool(&mut self, name: &str, b: bool) -> bool {
        if name == "shard-by-lease" {
            self.enabled = b;
            return true;
        }
        false
    }

    /// Sets a string flag; false when the name is not one of ours.
    pub fn set_str(&mut self, name: &str, v: &str) -> bool {
        let target = match name {
            "shard-group" => &mut self.group,
            "shard-namespace" => &mut self.namespace,
            "shard-identity" => &mut self.identity,
            "shard-peer-address" => &mut self.peer_address,
            "shard-peer-token-file" => &mut self.token_file,
            "shard-peer-ca-file" => &mut self.ca_file,
            _ => return false,
        };
        v.clone_into(target);
        true
    }

    /// Sets a list flag (pflag: the first use replaces the default); false when not ours.
    pub fn set_strings(&mut self, name: &str, items: Vec<String>, first: bool) -> bool {
        if name != "shard-peer-allowed-users" {
            return false;
        }
        if first {
            self.allowed_users = items;
        } else {
            self.allowed_users.extend(items);
        }
        true
    }

    /// Sets a duration flag; false when not ours.
    pub fn set_duration(&mut self, name: &str, d: i64) -> bool {
        if name == "shard-lease-duration" {
            self.lease_duration = d;
            return true;
        }
        false
    }

    /// Checks the values that do not depend on the environment.
    pub fn validate(&self) -> Result<(), CliError> {
        if !self.enabled {
            return Ok(());
        }
        if self.lease_duration < 3_000_000_000 {
            return Err(CliError::new(
                "--shard-lease-duration must be at least 3s".to_owned(),
            ));
        }
        if self.group.is_empty() || self.group.len() > 63 {
            return Err(CliError::new(
                "--shard-group must be a label value of 1 to 63 characters".to_owned(),
            ));
        }
        if self.allowed_users.iter().all(String::is_empty) {
            return Err(CliError::new(
                "--shard-peer-allowed-users must name at least one user".to_owned(),
            ));
        }
        Ok(())
    }

    /// Resolves defaults from the environment (`env` reads a variable, `file` reads a file);
    /// `None` when sharding is off.
    pub fn resolve(
        &self,
        secure_port: u16,
        env: impl Fn(&str) -> Option<String>,
        file: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<ShardSettings>, String> {
        if !self.enabled {
            return Ok(None);
        }
        let non_empty =
            |s: Option<String>| s.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let pick = |flag: &str, var: &str| {
            non_empty(Some(flag.to_owned())).or_else(|| non_empty(env(var)))
        };
        let namespace = pick(&self.namespace, "POD_NAMESPACE")
            .or_else(|| non_empty(file(SA_NAMESPACE_FILE)))
            .unwrap_or_else(|| "kube-system".to_owned());
        let identity = pick(&self.identity, "POD_NAME")
            .or_else(|| non_empty(file("/proc/sys/kernel/hostname")))
            .ok_or("--shard-identity is empty and neither $POD_NAME nor the host name is set")?;
        let peer_address = match pick(&self.peer_address, "") {
            Some(a) => a,
            None => {
                let ip = non_empty(env("POD_IP"))
                    .ok_or("--shard-peer-address is empty and $POD_IP is not set")?;
                let ip = if ip.contains(':') {
                    format!("[{ip}]")
                } else {
                    ip
                };
                format!("{ip}:{secure_port}")
            }
        };
        Ok(Some(ShardSettings {
            group: self.group.clone(),
            namespace,
            identity,
            peer_address,
            lease_duration: Duration::from_nanos(u64::try_from(self.lease_duration).unwrap_or(0)),
            allowed_users: self.allowed_users.clone(),
            token_file: self.token_file.clone(),
            ca_file: self.ca_file.clone(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on() -> ShardFlags {
        ShardFlags {
            enabled: true,
            ..ShardFlags::default()
        }
    }

    #[test]
    fn off_resolves_to_nothing_and_validates() {
        let f = ShardFlags::default();
        assert!(f.validate().is_ok());
        assert_eq!(f.resolve(443, |_| None, |_| None), Ok(None));
    }

    #[test]
    fn defaults_come_from_the_downward_api() {
        let env = |k: &str| match k {
            "POD_NAME" => Some("metrics-server-abc".to_owned()),
            "POD_NAMESPACE" => Some("monitoring".to_owned()),
            "POD_IP" => Some("fd00::5".to_owned()),
            _ => None,
        };
        let s = on().resolve(10250, env, |_| None).unwrap().unwrap();
        assert_eq!(s.identity, "metrics-server-abc");
        assert_eq!(s.namespace, "monitoring");
        assert_eq!(s.peer_address, "[fd00::5]:10250");
        assert_eq!(s.lease_duration, Duration::from_secs(15));
    }

    #[test]
    fn flags_win_and_missing_addresses_are_reported() {
        let mut f = on();
        assert!(f.set_str("shard-identity", "r1"));
        assert!(f.set_str("shard-peer-address", "127.0.0.1:9443"));
        assert!(!f.set_str("kubeconfig", "x"));
        let s = f
            .resolve(443, |_| Some("ignored".to_owned()), |_| None)
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.identity.as_str(), s.peer_address.as_str()),
            ("r1", "127.0.0.1:9443")
        );
        assert_eq!(s.namespace, "ignored");
        let err = on().resolve(443, |k| (k == "POD_NAME").then(|| "p".to_owned()), |_| None);
        assert!(err.unwrap_err().contains("$POD_IP"));
    }

    #[test]
    fn bad_values_are_refused() {
        let mut f = on();
        f.set_duration("shard-lease-duration", 1_000_000_000);
        assert!(f.validate().unwrap_err().message.contains("at least 3s"));
        let mut f = on();
        f.set_strings("shard-peer-allowed-users", vec![String::new()], true);
        assert!(f.validate().is_err());
    }
}

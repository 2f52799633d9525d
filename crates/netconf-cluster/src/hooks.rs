//! Runs Ganeti hook directories (`<dir>/<path>-{pre,post}.d/*`) the way Ganeti's hooks
//! runner does: sorted, only executables named `[a-zA-Z0-9_-]+`, with a reset environment
//! of `GANETI_*` variables.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::HookFailure;

pub const DEFAULT_HOOKS_DIR: &str = "/etc/ganeti/hooks";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Pre,
    Post,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pre => "pre",
            Phase::Post => "post",
        }
    }
}

/// What an operation tells its hooks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookEnv {
    /// e.g. `OP_NETWORK_ADD`.
    pub op_code: &'static str,
    /// e.g. `network-add`.
    pub path: &'static str,
    /// `NETWORK` or `INSTANCE`.
    pub object_type: &'static str,
    /// Variables without the `GANETI_` prefix, e.g. `NETWORK_NAME`.
    pub vars: Vec<(String, String)>,
}

/// Where hooks live, and the cluster facts every hook sees.
#[derive(Clone, Debug)]
pub struct HookRunner {
    pub dir: PathBuf,
    pub cluster: String,
    pub master: String,
}

impl HookRunner {
    /// `NETCONF_HOOKS_DIR` or `/etc/ganeti/hooks`.
    pub fn from_env(cluster: &str, master: &str) -> Self {
        let dir = std::env::var_os("NETCONF_HOOKS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_HOOKS_DIR));
        HookRunner {
            dir,
            cluster: cluster.into(),
            master: master.into(),
        }
    }

    /// The scripts that would run, in order.
    pub fn scripts(&self, path: &str, phase: Phase) -> Vec<PathBuf> {
        let d = self.dir.join(format!("{path}-{}.d", phase.as_str()));
        let Ok(rd) = fs::read_dir(&d) else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = rd
            .filter_map(Result::ok)
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            })
            .map(|e| e.path())
            .filter(|p| is_executable(p))
            .collect();
        out.sort();
        out
    }

    /// The environment a hook gets: reset, then Ganeti's base and the operation's variables
    /// (again as `GANETI_POST_*` in the post phase). Our own `NETCONF_*` and `SNF_*`
    /// settings pass through so that hooks find non-default configuration files.
    pub fn environment(&self, env: &HookEnv, phase: Phase) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = vec![
            ("PATH".into(), "/sbin:/bin:/usr/sbin:/usr/bin".into()),
            ("GANETI_HOOKS_VERSION".into(), "2".into()),
            ("GANETI_OP_CODE".into(), env.op_code.into()),
            ("GANETI_DATA_DIR".into(), "/var/lib/ganeti".into()),
            ("GANETI_HOOKS_PHASE".into(), phase.as_str().into()),
            ("GANETI_HOOKS_PATH".into(), env.path.into()),
            ("GANETI_OBJECT_TYPE".into(), env.object_type.into()),
            ("GANETI_CLUSTER".into(), self.cluster.clone()),
            ("GANETI_MASTER".into(), self.master.clone()),
        ];
        for (k, v) in &env.vars {
            out.push((format!("GANETI_{k}"), v.clone()));
        }
        if phase == Phase::Post {
            for (k, v) in &env.vars {
                out.push((format!("GANETI_POST_{k}"), v.clone()));
            }
        }
        for (k, v) in std::env::vars() {
            if k.starts_with("NETCONF_") || k.starts_with("SNF_") {
                out.push((k, v));
            }
        }
        out
    }

    /// Runs every script of the phase; returns the failures (node, script, output).
    pub fn run(&self, env: &HookEnv, phase: Phase) -> Vec<HookFailure> {
        let scripts = self.scripts(env.path, phase);
        if scripts.is_empty() {
            return Vec::new();
        }
        let vars = self.environment(env, phase);
        let mut failures = Vec::new();
        for script in scripts {
            let name = script
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let result = Command::new(&script)
                .env_clear()
                .envs(vars.iter().map(|(k, v)| (k, v)))
                .current_dir("/")
                .stdin(Stdio::null())
                .output();
            match result {
                Ok(o) if o.status.success() => {}
                Ok(o) => {
                    let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
                    text.push_str(&String::from_utf8_lossy(&o.stderr));
                    failures.push((self.master.clone(), name, text.trim().to_owned()));
                }
                Err(e) => failures.push((self.master.clone(), name, e.to_string())),
            }
        }
        failures
    }
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str) {
        let p = dir.join(name);
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn runs_sorted_valid_executables_with_reset_env() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("network-add-post.d");
        fs::create_dir(&d).unwrap();
        let log = tmp.path().join("log");
        let l = log.display();
        script(
            &d,
            "20-b",
            &format!("echo b $GANETI_NETWORK_NAME $GANETI_POST_NETWORK_NAME $HOME >> {l}"),
        );
        script(
            &d,
            "10-a",
            &format!("echo a $GANETI_HOOKS_PHASE $GANETI_OP_CODE >> {l}"),
        );
        script(&d, "bad.name", &format!("echo never >> {l}"));
        fs::write(d.join("notexec"), "#!/bin/sh\necho never\n").unwrap();
        let runner = HookRunner {
            dir: tmp.path().into(),
            cluster: "c".into(),
            master: "m".into(),
        };
        let env = HookEnv {
            op_code: "OP_NETWORK_ADD",
            path: "network-add",
            object_type: "NETWORK",
            vars: vec![("NETWORK_NAME".into(), "net1".into())],
        };
        assert!(runner.run(&env, Phase::Post).is_empty());
        assert!(
            runner.run(&env, Phase::Pre).is_empty(),
            "no pre dir: nothing runs"
        );
        assert_eq!(
            fs::read_to_string(&log).unwrap(),
            "a post OP_NETWORK_ADD\nb net1 net1\n"
        );
        script(&d, "30-fail", "echo broken; exit 3");
        let f = runner.run(&env, Phase::Post);
        assert_eq!(
            f,
            vec![("m".to_owned(), "30-fail".to_owned(), "broken".to_owned())]
        );
    }
}

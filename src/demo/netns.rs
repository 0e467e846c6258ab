//! Network namespaces for the demo and the tests, driven through
//! iproute2's `ip` command (it is what an operator would type, and it is
//! the one tool every Debian host has for this).

use std::process::{Command, Stdio};

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run `ip` (install iproute2): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

/// A namespace that is deleted when dropped.
pub struct Netns {
    pub name: String,
    keep: bool,
}

impl Netns {
    /// Creates `name`. A leftover namespace of that name with no process
    /// in it (from a run that was killed) is removed first.
    pub fn create(name: &str) -> Result<Netns, String> {
        if exists(name) {
            let pids = ip(&["netns", "pids", name]).unwrap_or_default();
            if !pids.trim().is_empty() {
                return Err(format!(
                    "network namespace {name} exists and processes run in it ({}); stop them or pick another name",
                    pids.split_whitespace().collect::<Vec<_>>().join(", ")
                ));
            }
            ip(&["netns", "del", name])?;
        }
        ip(&["netns", "add", name])?;
        let ns = Netns { name: name.to_string(), keep: false };
        ns.exec_ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Runs `ip ARGS` inside the namespace.
    pub fn exec_ip(&self, args: &[&str]) -> Result<String, String> {
        let mut a = vec!["netns", "exec", &self.name, "ip"];
        a.extend_from_slice(args);
        ip(&a)
    }

    /// A `Command` that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// True once interface `ifname` exists in the namespace.
    pub fn has_link(&self, ifname: &str) -> bool {
        self.exec_ip(&["link", "show", ifname]).is_ok()
    }

    /// Leave the namespace in place when dropped.
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.keep {
            let _ = ip(&["netns", "del", &self.name]);
        }
    }
}

pub fn exists(name: &str) -> bool {
    ip(&["netns", "list"]).map(|l| l.lines().any(|x| x.split_whitespace().next() == Some(name))).unwrap_or(false)
}

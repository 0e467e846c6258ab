//! A throwaway `redis-server` for tests and benches: its own loopback port,
//! no persistence, a temp dir, killed on drop.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    /// With [`RedisServer::start_tls`]: the TLS port (the plain port stays
    /// open for the admin connection).
    pub tls_port: Option<u16>,
    dir: PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    l.local_addr().expect("local addr").port()
}

impl RedisServer {
    /// Starts a server on a free port; panics with a hint when redis-server
    /// is not installed.
    pub fn start() -> RedisServer {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("baton-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut s = RedisServer { port, tls_port: None, dir, child: None };
        s.spawn();
        s
    }

    /// Also listens with TLS on a second port, with this certificate chain.
    pub fn start_tls(cert_pem: &str, key_pem: &str, ca_pem: &str) -> RedisServer {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("baton-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        for (name, pem) in [("cert.pem", cert_pem), ("key.pem", key_pem), ("ca.pem", ca_pem)] {
            std::fs::write(dir.join(name), pem).expect("write pem");
        }
        let mut s = RedisServer { port, tls_port: Some(free_port()), dir, child: None };
        s.spawn();
        s
    }

    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls_port.expect("started with TLS"))
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .args(["--enable-debug-command", "local", "--loglevel", "warning"])
            .args(self.tls_args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run redis-server ({e}): it is needed for the repository tests; ci/setup installs it (apt-get install redis-server)")
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = self.admin() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "redis-server on port {} did not come up", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn tls_args(&self) -> Vec<String> {
        let Some(tp) = self.tls_port else { return Vec::new() };
        let f = |n: &str| self.dir.join(n).display().to_string();
        vec![
            "--tls-port".into(),
            tp.to_string(),
            "--tls-cert-file".into(),
            f("cert.pem"),
            "--tls-key-file".into(),
            f("key.pem"),
            "--tls-ca-cert-file".into(),
            f("ca.pem"),
            "--tls-auth-clients".into(),
            "no".into(),
        ]
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A connection as the `default` user (all rights).
    pub fn admin(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(2))
    }

    /// `ACL SETUSER name rules...`
    pub fn acl_setuser(&self, name: &str, rules: &[&str]) {
        let mut c = self.admin().expect("admin connection");
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER").arg(name);
        for r in rules {
            cmd.arg(*r);
        }
        let _: () = cmd.query(&mut c).expect("ACL SETUSER");
    }

    /// The two hosts of the tests: `hosta` may touch every record of
    /// frontend `web`; `hostb` only its live connections (`c`).
    pub fn add_hosts(&self) {
        let cmds = ["+getdel", "+set", "+del", "+ping", "+hello", "+auth"];
        let mut a = vec!["reset", "on", ">pw-a", "~baton:web:*"];
        a.extend(cmds);
        self.acl_setuser("hosta", &a);
        let mut b = vec!["reset", "on", ">pw-b", "~baton:web:c:*"];
        b.extend(cmds);
        self.acl_setuser("hostb", &b);
    }

    /// Kills the server (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Make sure the port is closed before going on.
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts it again on the same port (ACL users must be added again).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of `n` primaries (no replicas) on loopback, made with
/// `redis-cli --cluster create`. Ports below 55535 so that each node's
/// cluster bus port (port + 10000) exists too.
pub struct RedisCluster {
    pub nodes: Vec<RedisNode>,
}

pub struct RedisNode {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn free_cluster_port(taken: &[u16]) -> u16 {
    let seed = (std::process::id() as u64).wrapping_mul(2654435761) ^ Instant::now().elapsed().as_nanos() as u64;
    for i in 0..2000u64 {
        let p = 20000 + ((seed.wrapping_add(i * 7919)) % 30000) as u16;
        if taken.contains(&p) || taken.contains(&(p + 10000)) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", p)).is_ok() && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
    panic!("no free port pair for a cluster node");
}

impl RedisCluster {
    pub fn start(n: usize) -> RedisCluster {
        let mut nodes: Vec<RedisNode> = Vec::new();
        for _ in 0..n {
            let taken: Vec<u16> = nodes.iter().map(|x| x.port).collect();
            let port = free_cluster_port(&taken);
            let dir = std::env::temp_dir().join(format!("baton-redis-cluster-{}-{port}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("temp dir");
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&dir)
                .args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", "5000", "--loglevel", "warning"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run redis-server ({e}); ci/setup installs it"));
            nodes.push(RedisNode { port, dir, child: Some(child) });
        }
        let c = RedisCluster { nodes };
        for node in &c.nodes {
            let deadline = Instant::now() + Duration::from_secs(10);
            while node.admin().and_then(|mut a| redis::cmd("PING").query::<String>(&mut a)).is_err() {
                assert!(Instant::now() < deadline, "cluster node {} did not come up", node.port);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let addrs: Vec<String> = c.nodes.iter().map(|x| format!("127.0.0.1:{}", x.port)).collect();
        let out = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli (ci/setup installs redis-server, which brings it)");
        assert!(out.status.success(), "redis-cli --cluster create: {}", String::from_utf8_lossy(&out.stdout));
        let deadline = Instant::now() + Duration::from_secs(20);
        for node in &c.nodes {
            loop {
                let info: String = node
                    .admin()
                    .and_then(|mut a| redis::cmd("CLUSTER").arg("INFO").query(&mut a))
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(Instant::now() < deadline, "cluster never reached state ok");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        c
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| format!("redis://127.0.0.1:{}", n.port)).collect()
    }

    /// `ACL SETUSER` on every node (ACLs are per node).
    pub fn acl_setuser(&self, name: &str, rules: &[&str]) {
        for n in &self.nodes {
            let mut c = n.admin().expect("admin connection");
            let mut cmd = redis::cmd("ACL");
            cmd.arg("SETUSER").arg(name);
            for r in rules {
                cmd.arg(*r);
            }
            let _: () = cmd.query(&mut c).expect("ACL SETUSER");
        }
    }
}

impl RedisNode {
    pub fn admin(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(format!("redis://127.0.0.1:{}", self.port))?
            .get_connection_with_timeout(Duration::from_secs(2))
    }
}

impl Drop for RedisNode {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

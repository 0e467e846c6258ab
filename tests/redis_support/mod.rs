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

//! The `baton` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// baton: a kernel-bypass TLS-terminating load balancer on DPDK.
///
/// Clients speak TLS 1.3 to baton's virtual address; baton terminates TLS on
/// DPDK poll-mode workers with its own TCP and TLS stacks and proxies the
/// plaintext to a backend pool.
#[derive(Parser)]
#[command(name = "baton", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the load balancer with a TOML config file (needs root for DPDK).
    Run {
        /// Path of the TOML config (see README.md, "Configuration").
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a config file (and that its certificate and key load) and
    /// print what baton would do; exits non-zero naming the bad key.
    CheckConfig {
        /// Path of the TOML config.
        file: PathBuf,
    },
    /// Start a self-contained demo: a network namespace, baton on a net_tap
    /// port in it, a throwaway certificate and an HTTP backend. Prints the
    /// curl command to try, serves until Ctrl-C, then cleans up.
    Demo {
        /// Number of workers.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Threads that run handshake crypto off the workers (0 = inline).
        #[arg(long, default_value_t = 1)]
        slow_path_threads: usize,
        /// Connections one worker holds at most (SYN cookies from 3/4 of it).
        #[arg(long, default_value_t = 65536)]
        max_connections: usize,
        /// Name of the network namespace to create.
        #[arg(long, default_value = "baton-demo")]
        netns: String,
        /// Directory for the generated certificate, config and log.
        #[arg(long, default_value = "/tmp/baton-demo")]
        dir: PathBuf,
        /// Stop by itself after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Drain: move this host's connections away without a reset. With
    /// `--worker N`, worker N's go to the other workers; without, every
    /// connection of the host goes into the fleet repository for whichever
    /// host gets its next packet (needs [repository] and [fleet]).
    Drain {
        /// The admin endpoint (`admin.listen` of the config).
        #[arg(long, default_value = "127.0.0.1:9180")]
        admin: String,
        /// Drain one worker instead of the whole host.
        #[arg(long)]
        worker: Option<usize>,
        /// End the drain instead.
        #[arg(long)]
        undo: bool,
    },
    /// Print a fresh fleet key (64 hex digits) for `fleet.key_file`.
    FleetKey,
    /// Run the small built-in HTTP backend (used by the demo and tests):
    /// GET / , GET /bytes/N , POST /sha256 , GET /close.
    Backend {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => baton::config::Config::load(&config)
            .map_err(|e| e.to_string())
            .and_then(|cfg| baton::worker::runtime::run(cfg)),
        Command::CheckConfig { file } => check_config(&file),
        Command::Demo { workers, slow_path_threads, max_connections, netns, dir, seconds } => baton::demo::demo(baton::demo::DemoOptions {
            netns,
            workers,
            slow_path_threads,
            max_connections,
            dir,
            duration: seconds.map(std::time::Duration::from_secs),
        }),
        Command::Drain { admin, worker, undo } => drain(&admin, worker, undo),
        Command::FleetKey => {
            let mut k = zeroize::Zeroizing::new([0u8; 32]);
            baton::entropy::Entropy::fill(&mut baton::entropy::OsEntropy::new(), &mut k[..]);
            let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
            println!("{hex}");
            Ok(())
        }
        Command::Backend { listen } => baton::demo::backend::serve(&listen).map_err(|e| format!("backend on {listen}: {e}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Not eprintln!: with stderr closed it would panic.
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "baton: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sends a drain command to the admin endpoint and prints its answer.
fn drain(admin: &str, worker: Option<usize>, undo: bool) -> Result<(), String> {
    use std::io::{Read, Write};
    let verb = if undo { "undrain" } else { "drain" };
    let path = match worker {
        Some(w) => format!("/{verb}?worker={w}"),
        None => format!("/{verb}"),
    };
    let addr: std::net::SocketAddr = admin.parse().map_err(|e| format!("--admin {admin}: {e}"))?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(2)).map_err(|e| format!("admin endpoint {admin}: {e}"))?;
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    write!(s, "POST {path} HTTP/1.1\r\nHost: {admin}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").map_err(|e| format!("admin endpoint {admin}: {e}"))?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).map_err(|e| format!("admin endpoint {admin}: {e}"))?;
    let status = resp.lines().next().unwrap_or("").to_string();
    let body = resp.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    print!("{body}");
    if status.contains(" 200 ") {
        Ok(())
    } else {
        Err(format!("{verb} refused: {status}"))
    }
}

fn check_config(file: &std::path::Path) -> Result<(), String> {
    let cfg = baton::config::Config::load(file).map_err(|e| e.to_string())?;
    baton::worker::runtime::load_tls(&cfg)?;
    // Everything `run` reads before touching DPDK, so "ok" means ok.
    if let Some(f) = &cfg.fleet {
        f.load_keys().map_err(|e| e.to_string())?;
    }
    if let Some(r) = &cfg.repository {
        r.password().map_err(|e| e.to_string())?;
    }
    use std::io::Write;
    // Write errors (a closed pipe, `| head`) are not baton's to report.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}: ok", file.display());
    let _ = writeln!(out, "  listen   {}:{} (prefix /{})", cfg.listen.address, cfg.listen.port, cfg.listen.prefix_len);
    let _ = writeln!(out, "  port     {} (vdevs: {})", cfg.dpdk.port, if cfg.dpdk.vdevs.is_empty() { "none".into() } else { cfg.dpdk.vdevs.join(" ") });
    let _ = writeln!(
        out,
        "  workers  {} (slow-path threads {}){}",
        cfg.workers.count,
        cfg.workers.slow_path_threads,
        if cfg.workers.cores.is_empty() { String::new() } else { format!(", pinned to cores {:?}", cfg.workers.cores) }
    );
    if cfg.workers.cores.contains(&0) {
        // The EAL's main thread runs on lcore 0 (`-l 0`); a busy-polling
        // worker there shares its core.
        let _ = writeln!(out, "  warning: workers.cores includes core 0, where DPDK's main thread runs; a polling worker there shares that core");
    }
    let _ = writeln!(out, "  backends {}", cfg.backend.servers.join(", "));
    let _ = writeln!(out, "  tls      cert {} key {} alpn [{}]", cfg.tls.cert.display(), cfg.tls.key.display(), cfg.tls.alpn.join(", "));
    let _ = writeln!(
        out,
        "  tickets  {} per handshake, lifetime {} s, 0-RTT {}",
        cfg.tls.tickets_per_handshake,
        cfg.tls.ticket_lifetime_s,
        if cfg.tls.max_early_data > 0 {
            format!("up to {} bytes, ticket age within {} ms", cfg.tls.max_early_data, cfg.tls.early_data_age_window_ms)
        } else {
            "off".into()
        }
    );
    let _ = writeln!(
        out,
        "  session  {} connection slots x {} KiB + {} x {} KiB, {} ticket slots ({} MiB of DPDK memory), key rotation every {} s, handshake checkpoints {}",
        cfg.session.table_slots,
        cfg.session.max_record_kib,
        cfg.session.small_slots,
        cfg.session.small_record_kib,
        cfg.session.ticket_slots,
        cfg.dpdk_memory_needed_mb(),
        cfg.session.key_rotation_s,
        if cfg.session.checkpoint_handshakes { "on" } else { "off" }
    );
    let _ = writeln!(out, "  backend  proxy protocol {}, connect timeout {} ms", cfg.backend.proxy_protocol, cfg.backend.connect_timeout_ms);
    let _ = writeln!(out, "  admin    {}", cfg.admin.listen.as_deref().unwrap_or("off"));
    match (&cfg.repository, &cfg.fleet) {
        (Some(r), Some(f)) => {
            let keys = f.load_keys().map_err(|e| e.to_string())?;
            let _ = writeln!(
                out,
                "  fleet    repository {} user {:?} frontend {:?} (budget {} ms), host {} of {}, key id {:08x}{}, connections wait {} s",
                r.target(),
                r.username,
                r.frontend,
                r.timeout_ms,
                f.host_index,
                f.hosts,
                keys[0].0,
                if keys.len() > 1 { " + previous" } else { "" },
                f.conn_ttl_s
            );
        }
        _ => {
            let _ = writeln!(out, "  fleet    off (no [repository]/[fleet])");
        }
    }
    Ok(())
}

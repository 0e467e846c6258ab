//! Per-worker event counters (drops on the frame path are counted by
//! `net::stack::DropCounters`; these are connection-level events).

macro_rules! worker_stats {
    ($($name:ident : $help:literal),* $(,)?) => {
        /// Connection-level counters of one worker.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct WorkerStats { $(pub $name: u64,)* }

        impl WorkerStats {
            /// `(metric name, help, value)` for every counter.
            pub fn iter(&self) -> impl Iterator<Item = (&'static str, &'static str, u64)> {
                [$((stringify!($name), $help, self.$name),)*].into_iter()
            }
            pub fn merge(&mut self, o: &WorkerStats) {
                $(self.$name += o.$name;)*
            }
        }
    };
}

worker_stats! {
    conns_accepted: "client connections accepted (SYN answered)",
    conns_closed: "proxied connections removed from the flow table",
    conns_refused_full: "SYNs answered while the worker holds max_connections (with a cookie, no state)",
    syn_cookies_sent: "SYNs answered with a SYN cookie (under pressure: 3/4 of max_connections)",
    syn_cookies_accepted: "connections rebuilt from a valid SYN-cookie ACK",
    handshakes_completed: "TLS handshakes completed (full and resumed)",
    handshakes_resumed: "TLS handshakes that resumed a session taken from the session table",
    tickets_too_old: "tickets taken but past their lifetime by their issue time (RFC 8446 §4.6.1): full handshake",
    tickets_age_skewed: "resumed tickets whose client-reported age was outside tls.early_data_age_window_ms (§8.3): early data, if offered, rejected",
    tls_failures: "connections failed by a TLS error (an alert was sent)",
    crypto_jobs: "handshake crypto jobs run",
    backend_connects: "backend connections attempted",
    backend_connect_failures: "backend connections refused or timed out",
    backend_resets: "established backend connections reset by the backend",
    source_ports_exhausted: "backend connects refused for lack of a source port",
    client_resets: "client connections reset by the client",
    handshake_timeouts: "connections reset because the TLS handshake did not finish in time",
    idle_timeouts: "connections reset after the idle timeout",
    tcp_segments_rejected: "TCP segments a connection did not accept (out of window, PAWS, ...)",
    bytes_client_to_backend: "plaintext bytes forwarded from clients to backends",
    bytes_backend_to_client: "plaintext bytes forwarded from backends to clients",
    conns_exported: "connections exported for handoff",
    conns_imported: "connections imported from a handoff",
    handshakes_checkpointed: "handshakes parked in the session table between flights",
    handshakes_abandoned: "parked handshakes whose client never sent the next flight",
    conns_yielded: "connections moved to another worker that asked for them",
    yields_requested: "times this worker asked another to yield a connection",
    yields_refused: "yield requests that could not be served at once (crypto job out)",
    yields_moved_on: "yield requests for connections no longer here",
    frames_forwarded: "frames forwarded to the worker that owns their flow",
    handoff_frames_dropped: "frames dropped on the handoff path (hop limit, full ring, held too long)",
    handoff_put_failures: "connection records the session table refused",
    handoff_notify_failures: "adopt messages lost to a full ring (the record waits in the table)",
    adopt_failures: "connection records that could not be opened or imported",
    fleet_session_fetches: "tickets not on this host asked of the fleet repository",
    fleet_sessions_found: "sessions the fleet repository handed over (taken there)",
    fleet_fetches_not_sent: "session fetches not sent (repository queue full): full handshake",
    fleet_tickets_put: "tickets sent to the fleet repository",
    fleet_tickets_not_put: "tickets the repository queue refused (not sent to the client)",
    fleet_conns_exported: "connections the fleet repository confirmed stored (host drain)",
    fleet_exports_failed: "connection exports the repository refused; kept here",
    fleet_exports_lost: "connection exports whose outcome is unknown (repository timeout): dropped, never duplicated",
    fleet_lookups: "unknown flows looked up in the fleet repository",
    fleet_lookups_limited: "unknown flows not looked up (lookup rate limit)",
    fleet_conns_imported: "connections taken from the fleet repository and continued here",
    fleet_alias_hits: "unknown backend flows whose alias in the repository named a connection",
    fleet_aliases_restored: "backend-flow aliases put back after the connection take they led to imported nothing",
    fleet_records_unreadable: "repository records that did not open (forged, expired, retired key) or import",
}

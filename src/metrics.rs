//! A tiny metrics registry: per-worker [`Counters`] (plain `u64`s, owned by
//! the worker, no atomics on the fast path) and [`render_prometheus`], which
//! turns a snapshot of every worker's counters into Prometheus text
//! exposition format (version 0.0.4).
//!
//! Counter fields are declared once in `counters!` below, with their metric
//! name and help text; add a line there to add a metric.

use crate::net::stack::{DropCounters, DropReason, StackStats};
use std::fmt::Write as _;

macro_rules! counters {
    ($( $field:ident => $metric:literal, $help:literal; )*) => {
        /// One worker's counters. Drops are by reason.
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct Counters {
            $( #[doc = $help] pub $field: u64, )*
            pub drops: DropCounters,
        }

        impl Counters {
            /// `(metric name, help, value)` for every plain field.
            pub fn fields(&self) -> [(&'static str, &'static str, u64); counters!(@count $($field)*)] {
                [$( ($metric, $help, self.$field), )*]
            }

            /// Add `other` into `self` (for totals across workers).
            pub fn merge(&mut self, other: &Counters) {
                $( self.$field = self.$field.wrapping_add(other.$field); )*
                self.drops.merge(&other.drops);
            }
        }
    };
    (@count) => { 0 };
    (@count $head:ident $($tail:ident)*) => { 1 + counters!(@count $($tail)*) };
}

counters! {
    rx_frames => "baton_rx_frames_total", "Frames received from the NIC.";
    rx_bytes => "baton_rx_bytes_total", "Bytes received from the NIC.";
    tx_frames => "baton_tx_frames_total", "Frames handed to the NIC.";
    tx_bytes => "baton_tx_bytes_total", "Bytes handed to the NIC.";
    tcp_segments_in => "baton_tcp_segments_in_total", "TCP segments passed up by the stack.";
    tcp_segments_out => "baton_tcp_segments_out_total", "TCP segments sent (including ones released after ARP).";
    arp_requests_sent => "baton_arp_requests_sent_total", "ARP requests sent.";
    arp_replies_sent => "baton_arp_replies_sent_total", "ARP replies sent for our address.";
    icmp_echo_replies => "baton_icmp_echo_replies_total", "ICMP echo replies sent.";
}

impl Counters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Copy a stack's own counters (the stack keeps running totals).
    pub fn set_from_stack(&mut self, stats: &StackStats, drops: &DropCounters) {
        self.tcp_segments_in = stats.rx_tcp;
        self.tcp_segments_out = stats.tx_tcp;
        self.arp_requests_sent = stats.arp_requests_sent;
        self.arp_replies_sent = stats.arp_replies_sent;
        self.icmp_echo_replies = stats.icmp_echo_replies;
        self.drops = drops.clone();
    }
}

/// Name of the per-reason drop counter.
pub const DROPS_METRIC: &str = "baton_drops_total";

/// Escape a label value: backslash, double quote and line feed.
fn escape_label(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Render every worker's counters, one series per worker (label `worker`)
/// and, for drops, per reason (label `reason`, every reason listed, zeros
/// included, so series exist before the first drop).
pub fn render_prometheus(workers: &[(&str, &Counters)]) -> String {
    let mut s = String::new();
    let mut label = String::new();
    let n_fields = Counters::default().fields().len();
    for i in 0..n_fields {
        let (name, help, _) = Counters::default().fields()[i];
        let _ = writeln!(s, "# HELP {name} {help}");
        let _ = writeln!(s, "# TYPE {name} counter");
        for (w, c) in workers {
            label.clear();
            escape_label(w, &mut label);
            let v = c.fields()[i].2;
            let _ = writeln!(s, "{name}{{worker=\"{label}\"}} {v}");
        }
    }
    let _ = writeln!(s, "# HELP {DROPS_METRIC} Frames dropped, by reason.");
    let _ = writeln!(s, "# TYPE {DROPS_METRIC} counter");
    for (w, c) in workers {
        label.clear();
        escape_label(w, &mut label);
        for &r in DropReason::ALL {
            let _ = writeln!(s, "{DROPS_METRIC}{{worker=\"{label}\",reason=\"{}\"}} {}", r.as_str(), c.drops.get(r));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_exposition_lines() {
        let mut a = Counters::new();
        a.rx_frames = 10;
        a.drops.add(DropReason::TcpBadChecksum, 3);
        let mut b = Counters::new();
        b.rx_frames = 7;
        let text = render_prometheus(&[("0", &a), ("1", &b)]);
        assert!(text.contains("# HELP baton_rx_frames_total Frames received from the NIC.\n# TYPE baton_rx_frames_total counter\nbaton_rx_frames_total{worker=\"0\"} 10\nbaton_rx_frames_total{worker=\"1\"} 7\n"));
        assert!(text.contains("\nbaton_drops_total{worker=\"0\",reason=\"tcp_bad_checksum\"} 3\n"));
        assert!(text.contains("\nbaton_drops_total{worker=\"1\",reason=\"tcp_bad_checksum\"} 0\n"));
        assert_eq!(text.matches("# TYPE baton_drops_total counter").count(), 1);
        // Every sample line: name{labels} integer; HELP/TYPE precede samples.
        let mut typed = std::collections::HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut it = rest.split(' ');
                typed.insert(it.next().unwrap().to_string());
                assert_eq!(it.next(), Some("counter"));
                continue;
            }
            if line.starts_with("# HELP ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            value.parse::<u64>().unwrap();
            let name = &series[..series.find('{').unwrap()];
            assert!(typed.contains(name), "{name} sampled before its TYPE");
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(series.ends_with('}'));
        }
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, 2 * (a.fields().len() + DropReason::COUNT));
    }

    #[test]
    fn label_values_are_escaped() {
        let c = Counters::new();
        let text = render_prometheus(&[("a\"b\\c\nd", &c)]);
        assert!(text.contains("{worker=\"a\\\"b\\\\c\\nd\"}"));
    }

    #[test]
    fn merge_adds_fields_and_drops() {
        let mut a = Counters::new();
        a.tx_bytes = 5;
        a.drops.inc(DropReason::TooShort);
        let mut b = Counters::new();
        b.tx_bytes = 6;
        b.drops.inc(DropReason::TooShort);
        a.merge(&b);
        assert_eq!(a.tx_bytes, 11);
        assert_eq!(a.drops.get(DropReason::TooShort), 2);
    }
}

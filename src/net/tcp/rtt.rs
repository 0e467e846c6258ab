//! Retransmission timer estimator, RFC 6298.

use crate::time::Duration;

/// Clock granularity G of RFC 6298 §2 (our clock is µs; the timestamp
/// clock is 1 ms, so 1 ms is the honest figure).
const GRANULARITY_US: u64 = 1000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RttEstimator {
    /// Smoothed RTT in µs, `None` before the first measurement.
    pub srtt: Option<u64>,
    /// RTT variation in µs.
    pub rttvar: u64,
    /// Current RTO, backoff included.
    pub rto: u64,
    pub min: u64,
    pub max: u64,
}

impl RttEstimator {
    pub fn new(initial: Duration, min: Duration, max: Duration) -> Self {
        // §2.1: RTO starts at its initial value until a measurement exists.
        RttEstimator { srtt: None, rttvar: 0, rto: initial.micros().clamp(min.micros(), max.micros().max(min.micros())), min: min.micros(), max: max.micros() }
    }

    /// A new RTT measurement R (§2.2, §2.3, with α = 1/8, β = 1/4, K = 4).
    /// Callers follow Karn's rule (§3): no samples from retransmitted
    /// segments unless timestamps disambiguate them.
    pub fn sample(&mut self, r: Duration) {
        let r = r.micros();
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(r);
                self.rttvar = (3 * self.rttvar + diff) / 4;
                self.srtt = Some((7 * srtt + r) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        let rto = srtt + (4 * self.rttvar).max(GRANULARITY_US);
        // §2.4 lower bound, §2.5 upper bound.
        self.rto = rto.clamp(self.min, self.max.max(self.min));
    }

    /// §5.5: back the timer off after it expires.
    pub fn backoff(&mut self) {
        self.rto = (self.rto.saturating_mul(2)).min(self.max.max(self.min));
    }

    pub fn rto(&self) -> Duration {
        Duration::from_micros(self.rto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_then_smoothing_then_backoff_and_clamps() {
        let mut e = RttEstimator::new(Duration::from_secs(1), Duration::from_millis(200), Duration::from_secs(60));
        assert_eq!(e.rto(), Duration::from_secs(1));
        e.sample(Duration::from_millis(100));
        // srtt 100 ms, rttvar 50 ms → 100 + 200 = 300 ms.
        assert_eq!(e.rto(), Duration::from_millis(300));
        e.sample(Duration::from_millis(100));
        // rttvar = 3/4·50 = 37.5 ms, srtt 100 → 250 ms.
        assert_eq!(e.rto(), Duration::from_micros(250_000));
        e.backoff();
        assert_eq!(e.rto(), Duration::from_millis(500));
        for _ in 0..20 {
            e.backoff();
        }
        assert_eq!(e.rto(), Duration::from_secs(60));
        let mut f = RttEstimator::new(Duration::from_secs(1), Duration::from_millis(200), Duration::from_secs(60));
        f.sample(Duration::from_micros(10));
        assert_eq!(f.rto(), Duration::from_millis(200), "clamped to rto_min");
    }
}

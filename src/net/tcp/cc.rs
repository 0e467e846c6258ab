//! NewReno congestion control: slow start and congestion avoidance
//! (RFC 5681 §3.1), fast retransmit / fast recovery (RFC 5681 §3.2) with
//! the NewReno partial-ACK modification (RFC 6582 §3.2).

use super::seq;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewReno {
    pub cwnd: u32,
    pub ssthresh: u32,
    pub dupacks: u32,
    pub in_recovery: bool,
    /// RFC 6582 "recover": snd_max when recovery (or an RTO) began.
    pub recover: u32,
    /// Bytes acknowledged in congestion avoidance since cwnd last grew.
    pub ca_acked: u32,
}

/// What the sender must do after an ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CcAction {
    None,
    /// Retransmit the first unacknowledged segment now.
    Retransmit,
}

impl NewReno {
    /// RFC 5681 §3.1 initial window, from SMSS.
    pub fn new(smss: u32, iss: u32) -> Self {
        let iw = if smss > 2190 {
            2 * smss
        } else if smss > 1095 {
            3 * smss
        } else {
            4 * smss
        };
        NewReno { cwnd: iw, ssthresh: u32::MAX / 2, dupacks: 0, in_recovery: false, recover: iss, ca_acked: 0 }
    }

    /// An ACK that advances snd_una by `acked` bytes to `ack`; `flight` is
    /// what remains outstanding after it.
    pub fn on_ack(&mut self, ack: u32, acked: u32, flight: u32, smss: u32) -> CcAction {
        self.dupacks = 0;
        if self.in_recovery {
            if seq::ge(ack, self.recover) {
                // RFC 6582 §3.2 step 3, full acknowledgment: deflate.
                self.in_recovery = false;
                self.cwnd = self.ssthresh.min(flight.max(smss) + smss);
                return CcAction::None;
            }
            // Step 4, partial acknowledgment: retransmit the next hole,
            // deflate by the amount acked, add back one SMSS.
            self.cwnd = self.cwnd.saturating_sub(acked);
            if acked >= smss {
                self.cwnd += smss;
            }
            self.cwnd = self.cwnd.max(smss);
            return CcAction::Retransmit;
        }
        if self.cwnd < self.ssthresh {
            // Slow start, RFC 5681 (3.2): at most SMSS per ACK.
            self.cwnd = self.cwnd.saturating_add(acked.min(smss));
        } else {
            // Congestion avoidance, (3.3) by byte counting: one SMSS per
            // cwnd of data acknowledged.
            self.ca_acked = self.ca_acked.saturating_add(acked);
            if self.ca_acked >= self.cwnd {
                self.ca_acked -= self.cwnd;
                self.cwnd = self.cwnd.saturating_add(smss);
            }
        }
        CcAction::None
    }

    /// A duplicate ACK (RFC 5681 §2 definition) at `ack` == snd_una.
    pub fn on_dupack(&mut self, ack: u32, snd_max: u32, flight: u32, smss: u32) -> CcAction {
        if self.in_recovery {
            // RFC 6582 §3.2 step 3 (RFC 5681 step 4): inflate.
            self.cwnd = self.cwnd.saturating_add(smss);
            return CcAction::None;
        }
        self.dupacks += 1;
        // RFC 6582 §3.2 step 2: only if the ACK covers more than recover.
        if self.dupacks == 3 && seq::gt(ack, self.recover) {
            self.ssthresh = (flight / 2).max(2 * smss);
            self.recover = snd_max;
            self.in_recovery = true;
            self.cwnd = self.ssthresh + 3 * smss;
            return CcAction::Retransmit;
        }
        CcAction::None
    }

    /// The retransmission timer expired (RFC 5681 (4), RFC 6582 §3.2 step 1
    /// resets recover).
    pub fn on_rto(&mut self, flight: u32, snd_max: u32, smss: u32) {
        self.ssthresh = (flight / 2).max(2 * smss);
        self.cwnd = smss;
        self.dupacks = 0;
        self.in_recovery = false;
        self.recover = snd_max;
        self.ca_acked = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_fast_recovery_partial_and_full_ack() {
        let smss = 1000;
        let mut c = NewReno::new(smss, 0);
        assert_eq!(c.cwnd, 4000);
        c.on_ack(1000, 1000, 3000, smss);
        assert_eq!(c.cwnd, 5000);
        // flight 10000, three dupacks → ssthresh 5000, cwnd 8000.
        assert_eq!(c.on_dupack(1000, 11000, 10000, smss), CcAction::None);
        assert_eq!(c.on_dupack(1000, 11000, 10000, smss), CcAction::None);
        assert_eq!(c.on_dupack(1000, 11000, 10000, smss), CcAction::Retransmit);
        assert_eq!((c.ssthresh, c.cwnd, c.recover), (5000, 8000, 11000));
        c.on_dupack(1000, 11000, 10000, smss);
        assert_eq!(c.cwnd, 9000);
        // Partial ACK of 2000 bytes: 9000 − 2000 + 1000.
        assert_eq!(c.on_ack(3000, 2000, 8000, smss), CcAction::Retransmit);
        assert_eq!(c.cwnd, 8000);
        // Full ACK: min(ssthresh, flight + smss) = min(5000, 1000 + 1000).
        assert_eq!(c.on_ack(11000, 8000, 0, smss), CcAction::None);
        assert_eq!(c.cwnd, 2000);
        assert!(!c.in_recovery);
        c.on_rto(8000, 20000, smss);
        assert_eq!((c.cwnd, c.ssthresh), (1000, 4000));
        // Dupacks below recover do not start another recovery.
        for _ in 0..3 {
            assert_eq!(c.on_dupack(15000, 20000, 5000, smss), CcAction::None);
        }
    }
}

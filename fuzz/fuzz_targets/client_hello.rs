//! Fuzz the ClientHello parser and the TLS server's record layer and
//! handshake entry: any bytes as (1) a ClientHello body, (2) a handshake
//! message in one record, (3) a raw client byte stream. Nothing may panic;
//! every failure must leave a failed connection; the state must round-trip
//! through encode/decode.
#![no_main]

use std::sync::{Arc, OnceLock};

use baton::codec::{Reader, Writer};
use baton::entropy::Entropy;
use baton::tls::messages::ClientHello;
use baton::tls::{ServerConfig, SigningKey, TlsServer};
use libfuzzer_sys::fuzz_target;

/// Deterministic entropy so crashes reproduce (an LCG; not for crypto).
struct Lcg(u64);

impl Entropy for Lcg {
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            *b = (self.0 >> 56) as u8;
        }
    }
}

fn cfg() -> Arc<ServerConfig> {
    static CFG: OnceLock<Arc<ServerConfig>> = OnceLock::new();
    CFG.get_or_init(|| {
        let key = SigningKey::from_pem(include_bytes!("../../src/tls/tests/p256.sec1.pem")).expect("test key");
        // The certificate bytes are opaque to the server.
        let cfg = ServerConfig::new(vec![vec![0x30, 0x00]], key, vec![b"h2".to_vec()]).expect("config");
        Arc::new(cfg)
    })
    .clone()
}

fn drive(wire: &[u8]) {
    let mut srv = TlsServer::new(cfg());
    let mut rng = Lcg(1);
    let mut off = 0;
    loop {
        let n = srv.read_tls(&wire[off..]);
        off += n;
        let mut res = srv.process(&mut rng);
        while res.is_ok() {
            let Some(job) = srv.take_job() else { break };
            // Hand off with the job pending, then finish it.
            let mut w = Writer::new();
            srv.encode(&mut w);
            let b = w.finish();
            srv = TlsServer::decode(&mut Reader::new(&b), cfg()).expect("round trip");
            let _ = srv.take_job();
            res = srv.complete_job(job.run(&mut rng)).and_then(|_| srv.process(&mut rng));
        }
        if res.is_err() {
            assert!(srv.is_failed());
            break;
        }
        if n == 0 || off >= wire.len() {
            break;
        }
    }
    let mut w = Writer::new();
    srv.encode(&mut w);
    let b = w.finish();
    TlsServer::decode(&mut Reader::new(&b), cfg()).expect("round trip");
}

fuzz_target!(|data: &[u8]| {
    let _ = ClientHello::parse(data);

    // As a ClientHello handshake message in one plaintext record.
    if data.len() <= 16384 - 4 {
        let mut rec = vec![22, 3, 1];
        rec.extend_from_slice(&((data.len() + 4) as u16).to_be_bytes());
        rec.push(1);
        rec.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        rec.extend_from_slice(data);
        drive(&rec);
    }

    // As a raw byte stream from the client.
    drive(data);
});

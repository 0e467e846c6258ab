//! Record path throughput: baton's RecordProtector (framing included) vs the
//! bare AEADs it could be, all in one run, plus `openssl speed` as the
//! outside reference (DESIGN.md, "Performance stance").
//!
//! `cargo bench --bench record` — a few seconds. Each figure is payload
//! bytes per second of one core, in GB/s (10^9).

use baton::tls::aead::RecordProtector;
use baton::tls::key_schedule::traffic_key_iv;
use baton::tls::suites::CipherSuite;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
use std::hint::black_box;
use std::process::Command;
use std::time::{Duration, Instant};

const RUN: Duration = Duration::from_millis(200);

/// Runs `f` in batches until RUN has passed; returns payload GB/s.
fn measure(bytes_per_op: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..50 {
        f(); // warm up
    }
    let start = Instant::now();
    let mut ops = 0u64;
    while start.elapsed() < RUN {
        for _ in 0..64 {
            f();
        }
        ops += 64;
    }
    (ops as f64 * bytes_per_op as f64) / start.elapsed().as_secs_f64() / 1e9
}

struct Figures {
    seal: f64,
    open: f64,
    both: f64,
}

impl Figures {
    /// Seal and open measured separately; `both` is one seal plus one open
    /// of the same record.
    fn from(seal: f64, open: f64) -> Self {
        Figures { seal, open, both: 1.0 / (1.0 / seal + 1.0 / open) }
    }
}

const BATCH: usize = 32;

/// Open throughput measured directly: each round seals BATCH records
/// (untimed) with `seal_batch`, then times `open_batch` over them.
fn measure_open(size: usize, mut seal_batch: impl FnMut(), mut open_batch: impl FnMut()) -> f64 {
    seal_batch();
    open_batch(); // warm up
    let start = Instant::now();
    let mut timed = Duration::ZERO;
    let mut ops = 0u64;
    while start.elapsed() < RUN {
        seal_batch();
        let t0 = Instant::now();
        open_batch();
        timed += t0.elapsed();
        ops += BATCH as u64;
    }
    (ops as f64 * size as f64) / timed.as_secs_f64() / 1e9
}

/// RecordProtector: seal_record (copies plaintext into the output, framing
/// included), seal_in_place (plaintext already in the send buffer), and
/// open_record.
fn baton(suite: CipherSuite, size: usize) -> (Figures, f64) {
    let secret = vec![0x5a; suite.hash().output_len()];
    let pt = vec![0x61u8; size];
    let mut out = Vec::with_capacity(size + 64);
    let mut tx = RecordProtector::new(suite, &secret);
    let seal = measure(size, || {
        out.clear();
        tx.seal_record(23, black_box(&pt), &mut out).unwrap();
        black_box(&out);
    });
    let mut tx = RecordProtector::new(suite, &secret);
    let mut buf = vec![0u8; 5 + size];
    buf.reserve(64);
    let in_place = measure(size, || {
        buf.truncate(5 + size);
        tx.seal_in_place(23, &mut buf, 0).unwrap();
        black_box(&buf);
    });
    let tx = std::cell::RefCell::new(RecordProtector::new(suite, &secret));
    let mut rx = RecordProtector::new(suite, &secret);
    let recs = std::cell::RefCell::new((0..BATCH).map(|_| Vec::with_capacity(size + 64)).collect::<Vec<Vec<u8>>>());
    let open = measure_open(
        size,
        || {
            for r in recs.borrow_mut().iter_mut() {
                r.clear();
                tx.borrow_mut().seal_record(23, &pt, r).unwrap();
            }
        },
        || {
            for r in recs.borrow_mut().iter_mut() {
                let (t, p) = rx.open_record(r).unwrap();
                black_box((t, p.len()));
            }
        },
    );
    (Figures::from(seal, open), in_place)
}

fn ring_bare(suite: CipherSuite, size: usize) -> Figures {
    let (key, iv) = traffic_key_iv(suite, &vec![0x5a; suite.hash().output_len()]);
    let alg = match suite {
        CipherSuite::Aes128GcmSha256 => &ring::aead::AES_128_GCM,
        CipherSuite::Aes256GcmSha384 => &ring::aead::AES_256_GCM,
        CipherSuite::Chacha20Poly1305Sha256 => &ring::aead::CHACHA20_POLY1305,
    };
    let k = LessSafeKey::new(UnboundKey::new(alg, key.as_bytes()).unwrap());
    let aad = [23u8, 3, 3, 0, 0];
    let n = size + 1; // content || type, tag after
    let nonce = |seq: u64| {
        let mut x = iv;
        for (b, s) in x[4..].iter_mut().zip(seq.to_be_bytes()) {
            *b ^= s;
        }
        Nonce::assume_unique_for_key(x)
    };
    let mut buf = vec![0x61u8; n + 16];
    let mut seq = 0u64;
    let seal = measure(size, || {
        let tag = k.seal_in_place_separate_tag(nonce(seq), Aad::from(aad), &mut buf[..n]).unwrap();
        black_box(tag.as_ref());
        seq += 1;
    });
    let bufs = std::cell::RefCell::new(vec![vec![0x61u8; n + 16]; BATCH]);
    let seq = std::cell::Cell::new(0u64);
    let open = measure_open(
        size,
        || {
            for (i, b) in bufs.borrow_mut().iter_mut().enumerate() {
                let tag = k.seal_in_place_separate_tag(nonce(seq.get() + i as u64), Aad::from(aad), &mut b[..n]).unwrap();
                b[n..].copy_from_slice(tag.as_ref());
            }
        },
        || {
            for (i, b) in bufs.borrow_mut().iter_mut().enumerate() {
                let p = k.open_in_place(nonce(seq.get() + i as u64), Aad::from(aad), &mut b[..]).unwrap();
                black_box(p.len());
            }
            seq.set(seq.get() + BATCH as u64);
        },
    );
    Figures::from(seal, open)
}

fn rustcrypto_aes128(size: usize) -> Figures {
    use aes_gcm::aead::{AeadInPlace, KeyInit};
    let (key, iv) = traffic_key_iv(CipherSuite::Aes128GcmSha256, &[0x5a; 32]);
    let c = aes_gcm::Aes128Gcm::new_from_slice(key.as_bytes()).unwrap();
    let aad = [23u8, 3, 3, 0, 0];
    let mut buf = vec![0x61u8; size + 1];
    let nonce = aes_gcm::Nonce::from(iv);
    let seal = measure(size, || {
        let tag = c.encrypt_in_place_detached(&nonce, &aad, &mut buf).unwrap();
        black_box(tag);
    });
    let bufs = std::cell::RefCell::new(vec![(vec![0x61u8; size + 1], aes_gcm::Tag::default()); BATCH]);
    let open = measure_open(
        size,
        || {
            for (b, t) in bufs.borrow_mut().iter_mut() {
                *t = c.encrypt_in_place_detached(&nonce, &aad, b).unwrap();
            }
        },
        || {
            for (b, t) in bufs.borrow_mut().iter_mut() {
                c.decrypt_in_place_detached(&nonce, &aad, b, t).unwrap();
                black_box(&b);
            }
        },
    );
    Figures::from(seal, open)
}

/// `openssl speed -evp aes-128-gcm -bytes 16384 -seconds 2 [-decrypt]`,
/// parsed from its last line ("AES-128-GCM  <N>k", N in 1000s of bytes/s).
fn openssl_speed(decrypt: bool) -> Result<f64, String> {
    let mut cmd = Command::new("openssl");
    cmd.args(["speed", "-evp", "aes-128-gcm", "-bytes", "16384", "-seconds", "2"]);
    if decrypt {
        cmd.arg("-decrypt");
    }
    let out = cmd.output().map_err(|e| format!("cannot run openssl: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| !l.trim().is_empty()).ok_or("no output")?;
    let last = line.split_whitespace().last().ok_or("empty line")?;
    let kb: f64 = last.trim_end_matches('k').parse().map_err(|_| format!("cannot parse {line:?}"))?;
    if !out.status.success() {
        return Err(format!("openssl exited with {}", out.status));
    }
    Ok(kb * 1000.0 / 1e9)
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    println!("record bench: payload GB/s per core; seal = seal_record (copy + framing + AEAD), open = open_record, both = one seal + one open");
    let mut baton16 = None;
    let mut ring16 = None;
    for size in [16384usize, 1400] {
        for suite in [CipherSuite::Aes128GcmSha256, CipherSuite::Chacha20Poly1305Sha256] {
            let (b, in_place) = baton(suite, size);
            let r = ring_bare(suite, size);
            println!(
                "{size:>6} B {suite:<22?} baton seal {:5.2} (in place {:5.2}) open {:5.2} both {:5.2} | ring bare seal {:5.2} open {:5.2} both {:5.2} | baton/ring both {:5.1}%",
                b.seal, in_place, b.open, b.both, r.seal, r.open, r.both, 100.0 * b.both / r.both
            );
            if size == 16384 && suite == CipherSuite::Aes128GcmSha256 {
                baton16 = Some((b.seal, b.open, b.both));
                ring16 = Some((r.seal, r.open, r.both));
            }
        }
        let rc = rustcrypto_aes128(size);
        println!(
            "{size:>6} B Aes128Gcm (aes-gcm crate)      seal {:6.2}  open {:6.2}  both {:6.2}",
            rc.seal, rc.open, rc.both
        );
        if size == 16384 {
            let (bs, bo, bb) = baton16.unwrap_or_default();
            let (rs, ro, rb) = ring16.unwrap_or_default();
            let enc = openssl_speed(false);
            let dec = openssl_speed(true);
            match (&enc, &dec) {
                (Ok(e), Ok(d)) => {
                    println!("{size:>6} B openssl speed aes-128-gcm      encrypt {e:6.2}  decrypt {d:6.2}");
                    println!(
                        "ratios at 16 KiB AES-128-GCM: baton/ring-bare seal {:.1}% open {:.1}% both {:.1}%; baton/openssl seal {:.2}x open {:.2}x",
                        100.0 * bs / rs,
                        100.0 * bo / ro,
                        100.0 * bb / rb,
                        bs / e,
                        bo / d
                    );
                    let mut table = [("ring", rs), ("aes-gcm crate", rc.seal), ("openssl", *e)];
                    table.sort_by(|a, b| b.1.total_cmp(&a.1));
                    println!(
                        "fastest AES-128-GCM seal at 16 KiB: {} ({:.2} GB/s), then {} ({:.2}), then {} ({:.2})",
                        table[0].0, table[0].1, table[1].0, table[1].1, table[2].0, table[2].1
                    );
                }
                _ => println!("openssl speed unavailable: {enc:?} {dec:?}"),
            }
        }
    }
}

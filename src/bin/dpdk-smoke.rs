//! DPDK smoke test, one mode per process (the EAL initialises once):
//!
//! - `dpdk-smoke null`: net_null port, TX of 1000 mbufs and chains, RX bursts,
//!   FrameIo over a DpdkQueue, leak check.
//! - `dpdk-smoke tap <iface>`: net_tap port (run it inside a network
//!   namespace): MAC, MTU set on both sides (D4), frames counted on the
//!   kernel side, kernel UDP frames received whole, chains both ways (D3).
//! - `dpdk-smoke ring`: net_ring loopback: frames of 60..9014 bytes (chains
//!   included) sent through the FrameIo come back byte for byte.
//! - `dpdk-smoke pcap <in.pcap> <out.pcap> <frames>`: net_pcap port: reads
//!   the frames of `in.pcap` (frame i has 60 + 97*i bytes, the last 3000,
//!   byte j = (7*i + j) mod 256), checks them, echoes them to `out.pcap`.
//!
//! Exit code 0 means every check passed.

use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use baton::dpdk::{
    eal_args, port_by_name, Eal, EalOptions, Mbuf, Mempool, Memzone, Port, PortConf, QueueId,
    DEFAULT_DATA_ROOM,
};
use baton::worker::dpdk_io::DpdkQueue;
use baton::worker::io::FrameIo;

type R = Result<(), String>;

macro_rules! check {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(format!($($fmt)*));
        }
    };
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args: Vec<String> = std::env::args().collect();
    let res = match args.get(1).map(String::as_str) {
        Some("null") => null_mode(),
        Some("tap") => match args.get(2) {
            Some(iface) => tap_mode(iface),
            None => Err("usage: dpdk-smoke tap <iface>".into()),
        },
        Some("ring") => ring_mode(),
        Some("pcap") => match (args.get(2), args.get(3), args.get(4).and_then(|n| n.parse().ok())) {
            (Some(i), Some(o), Some(n)) => pcap_mode(i, o, n),
            _ => Err("usage: dpdk-smoke pcap <in.pcap> <out.pcap> <frames>".into()),
        },
        _ => Err("usage: dpdk-smoke null | tap <iface> | pcap <in> <out> <n>".into()),
    };
    match res {
        Ok(()) => {
            println!("PASS");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("FAIL: {e}");
            ExitCode::FAILURE
        }
    }
}

fn start_eal(vdev: String) -> Result<Eal, String> {
    let opts = EalOptions {
        cores: vec![0],
        vdevs: vec![vdev],
        file_prefix: format!("baton-smoke-{}", std::process::id()),
        memory_mb: 256,
        no_pci: true,
        log_level: Some("notice".into()),
        ..EalOptions::default()
    };
    let args = eal_args(&opts);
    println!("EAL args: {}", args.join(" "));
    let eal = Eal::init(&args).map_err(|e| format!("EAL init: {e}"))?;
    check!(
        matches!(Eal::init(&args), Err(baton::dpdk::DpdkError::AlreadyInitialised)),
        "a second Eal::init must fail"
    );
    Ok(eal)
}

fn test_frame(len: usize, seed: u8) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental ethertype
    for (j, b) in f.iter_mut().enumerate().skip(14) {
        *b = seed.wrapping_add(j as u8);
    }
    f
}

fn null_mode() -> R {
    let eal = start_eal("net_null0".into())?;
    let pool = Mempool::new(&eal, "smoke_null", 4095, 32, DEFAULT_DATA_ROOM, None)
        .map_err(|e| e.to_string())?;
    let id = port_by_name(&eal, "net_null0").ok_or("net_null0 did not probe")?;
    let conf = PortConf { rx_desc: 512, tx_desc: 512, ..PortConf::default() };
    let mut port = Port::configure(id, 1, 1, &pool, conf).map_err(|e| e.to_string())?;
    check!(
        Port::configure(id, 1, 1, &pool, conf).is_err(),
        "configuring a port twice must fail"
    );
    println!("port {:?}: {:?}, mac {:02x?}", id, port.info(), port.mac());
    port.start().map_err(|e| e.to_string())?;
    let q0 = QueueId(0);

    // 1000 single-segment mbufs.
    let mut tx = Vec::new();
    check!(Mbuf::alloc_bulk(&pool, &mut tx, 1000), "alloc_bulk 1000");
    check!(pool.in_use_count() == 1000, "in use after alloc: {}", pool.in_use_count());
    for (i, m) in tx.iter_mut().enumerate() {
        check!(m.append_from(&test_frame(64, i as u8)), "append");
        check!(m.pkt_len() == 64 && m.nb_segs() == 1, "lengths");
    }
    let mut sent = 0;
    for _ in 0..1000 {
        if tx.is_empty() {
            break;
        }
        sent += port.tx_burst(q0, &mut tx);
    }
    check!(sent == 1000 && tx.is_empty(), "sent {sent} of 1000, {} left", tx.len());

    // A three-segment chain (D3).
    let mut head = Mbuf::alloc(&pool).ok_or("alloc")?;
    check!(head.append(100).is_some(), "append 100");
    for k in 0..2u8 {
        let mut seg = Mbuf::alloc(&pool).ok_or("alloc")?;
        seg.append(50).ok_or("append 50")?.fill(k);
        head.chain(seg).map_err(|_| "chain failed")?;
    }
    check!(head.nb_segs() == 3 && head.pkt_len() == 200, "chain lengths {} {}", head.nb_segs(), head.pkt_len());
    let lens: Vec<usize> = head.segments().map(<[u8]>::len).collect();
    check!(lens == [100, 50, 50], "segment lengths {lens:?}");
    let mut lin = Vec::new();
    head.copy_to(&mut lin);
    check!(lin.len() == 200 && lin[150..].iter().all(|&b| b == 1), "linearised chain");
    let mut one = vec![head];
    check!(port.tx_burst(q0, &mut one) == 1 && one.is_empty(), "chain tx");

    // RX, bounded.
    let mut rx = Vec::new();
    let mut got = 0;
    for _ in 0..100 {
        got += port.rx_burst(q0, &mut rx, 32);
        rx.clear();
    }
    println!("null rx: {got} frames in 100 bursts");
    check!(got > 0, "net_null rx gave nothing");
    check!(pool.in_use_count() == 0, "leak after raw bursts: {}", pool.in_use_count());

    // FrameIo over the queue handle.
    let handle = port.take_queue(q0).ok_or("take_queue")?;
    check!(port.take_queue(q0).is_none(), "queue taken twice");
    check!(port.stop().is_err(), "stop must refuse while a queue handle is out");
    check!(port.rx_burst(q0, &mut rx, 32) == 0, "Port::rx_burst on a claimed queue");
    let mut dq = DpdkQueue::new(handle, pool.clone(), 32);
    for i in 0..1000 {
        check!(dq.tx_frame(&test_frame(60, i as u8)), "tx_frame {i}");
    }
    for i in 0..10 {
        check!(dq.tx_frame(&test_frame(5000, i)), "tx_frame big {i}");
    }
    check!(!dq.tx_frame(&[]), "empty frame accepted");
    dq.flush();
    let c = dq.counters();
    check!(c.tx_frames == 1010 && c.tx_dropped == 0 && c.tx_chained == 10 && c.tx_too_big == 1, "counters {c:?}");
    let mut seen = 0;
    for _ in 0..10 {
        dq.rx_burst(&mut |f| {
            if !f.is_empty() {
                seen += 1
            }
        });
    }
    check!(seen > 0 && dq.counters().rx_frames == seen, "FrameIo rx {seen}");
    drop(dq);
    check!(pool.in_use_count() == 0, "leak after FrameIo: {}", pool.in_use_count());
    let st = port.stats().map_err(|e| e.to_string())?;
    println!("stats {st:?}");
    check!(st.tx_packets >= 2011, "port tx counter {}", st.tx_packets);
    port.stop().map_err(|e| e.to_string())?;
    drop(port);
    check!(pool.in_use_count() == 0, "leak after close: {}", pool.in_use_count());

    // Threads: an unregistered std thread may alloc/free mbufs (no lcore
    // id); a registered one gets an lcore id, released on drop.
    let (e2, p2) = (eal.clone(), pool.clone());
    let t = std::thread::spawn(move || -> R {
        check!(baton::dpdk::LcoreId::current().is_none(), "fresh thread has an lcore id");
        drop(Mbuf::alloc(&p2).ok_or("alloc on unregistered thread")?);
        let reg = e2.register_thread().map_err(|e| e.to_string())?;
        check!(baton::dpdk::LcoreId::current() == Some(reg.lcore()), "registered lcore id");
        drop(Mbuf::alloc(&p2).ok_or("alloc on registered thread")?);
        drop(reg);
        check!(baton::dpdk::LcoreId::current().is_none(), "lcore id after unregister");
        Ok(())
    });
    t.join().map_err(|_| "thread panicked")??;
    check!(pool.in_use_count() == 0, "leak after threads: {}", pool.in_use_count());

    // A memzone: reserved, sized, unique by name, freed on drop.
    let mz = Memzone::reserve(&eal, "smoke_mz", 1 << 20, None).map_err(|e| e.to_string())?;
    check!(mz.len() >= 1 << 20 && !mz.as_ptr().is_null(), "memzone {mz:?}");
    check!(Memzone::reserve(&eal, "smoke_mz", 4096, None).is_err(), "duplicate memzone name");
    drop(mz);
    let again = Memzone::reserve(&eal, "smoke_mz", 4096, None).map_err(|e| format!("after free: {e}"))?;
    drop(again);
    Ok(())
}

fn sysfs(iface: &str, what: &str) -> String {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/{what}"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

fn sys_u64(iface: &str, what: &str) -> u64 {
    sysfs(iface, what).parse().unwrap_or(0)
}

fn run(cmd: &[&str]) -> R {
    let st = Command::new(cmd[0]).args(&cmd[1..]).status().map_err(|e| format!("{cmd:?}: {e}"))?;
    check!(st.success(), "{cmd:?} failed: {st}");
    Ok(())
}

/// RFC 1071 checksum over `b` (0 when the embedded checksum is right).
fn csum(b: &[u8]) -> u16 {
    let mut s: u32 = 0;
    for c in b.chunks(2) {
        s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn tap_mode(iface: &str) -> R {
    // net_tap in DPDK 22.11 caps frames at 1522 bytes, so the MTU set here is
    // below the kernel's default 1500 (the two sides disagree until DPDK
    // sets it, case D4), and the pool's segments are made smaller than a
    // frame so that frames travel as chains both ways (case D3).
    const MTU: u16 = 1400;
    const SEG_ROOM: u16 = 1024;
    let eal = start_eal(format!("net_tap0,iface={iface}"))?;
    let pool = Mempool::new(&eal, "smoke_tap", 8191, 32, SEG_ROOM + baton::dpdk::HEADROOM, None)
        .map_err(|e| e.to_string())?;
    let id = port_by_name(&eal, "net_tap0").ok_or("net_tap0 did not probe")?;
    let kmtu0 = sysfs(iface, "mtu");
    let conf = PortConf { mtu: Some(MTU), rss: true, rx_desc: 256, tx_desc: 256 };
    check!(
        Port::configure(id, 2, 2, &pool, PortConf { mtu: Some(9000), ..conf }).is_err(),
        "an MTU beyond the device's limit must be refused"
    );
    let mut port = Port::configure(id, 2, 2, &pool, conf).map_err(|e| e.to_string())?;
    println!("kernel MTU before configure: {kmtu0}");
    println!("port {:?}: {:?}", id, port.info());
    port.start().map_err(|e| e.to_string())?;
    let mac = port.mac();
    let mtu = port.mtu().map_err(|e| e.to_string())?;
    let kmtu = sysfs(iface, "mtu");
    println!("dpdk mac {mac:02x?} mtu {mtu}; kernel {iface} mac {} mtu {kmtu}", sysfs(iface, "address"));
    check!(mac != [0; 6], "zero MAC");
    check!(mtu == MTU, "device MTU {mtu}, set {MTU}");
    check!(kmtu == MTU.to_string(), "kernel side MTU {kmtu}, set {MTU} (D4)");

    let mut dq = DpdkQueue::new(port.take_queue(QueueId(0)).ok_or("take_queue")?, pool.clone(), 32);

    // DPDK -> kernel: a small frame and a full-MTU frame (a chain).
    let (p0, b0) = (sys_u64(iface, "statistics/rx_packets"), sys_u64(iface, "statistics/rx_bytes"));
    let big = MTU as usize + 14;
    check!(dq.tx_frame(&test_frame(60, 1)), "tx small");
    check!(dq.tx_frame(&test_frame(big, 2)), "tx big");
    dq.flush();
    check!(dq.counters().tx_chained == 1 && dq.tx_dropped() == 0, "tx counters {:?}", dq.counters());
    let t = Instant::now();
    let (mut p1, mut b1) = (p0, b0);
    while t.elapsed() < Duration::from_secs(3) {
        p1 = sys_u64(iface, "statistics/rx_packets");
        b1 = sys_u64(iface, "statistics/rx_bytes");
        if p1 >= p0 + 2 && b1 >= b0 + 60 + big as u64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("kernel rx: {} packets, {} bytes", p1 - p0, b1 - b0);
    check!(p1 >= p0 + 2 && b1 >= b0 + 60 + big as u64, "kernel did not count both frames whole");

    // kernel -> DPDK: pings of nearly the MTU need RX chains (D3).
    let m = mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
    run(&["ip", "addr", "add", "198.18.0.1/24", "dev", iface])?;
    run(&["ip", "neigh", "replace", "198.18.0.2", "lladdr", &m, "dev", iface, "nud", "permanent"])?;
    // Kernel-sent UDP datagrams that fill the MTU (std sockets, no tools).
    let payload = MTU as usize - 28;
    let sock = std::net::UdpSocket::bind("198.18.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let data: Vec<u8> = (0..payload).map(|j| (j * 13) as u8).collect();
    for _ in 0..4 {
        sock.send_to(&data, "198.18.0.2:9").map_err(|e| format!("send_to: {e}"))?;
    }
    let want_len = 14 + 20 + 8 + payload;
    let mut good = 0;
    let mut other = 0;
    let t = Instant::now();
    // The kernel may pick either RX queue; poll queue 0 through the FrameIo
    // and queue 1 through a second handle.
    let mut dq1 = DpdkQueue::new(port.take_queue(QueueId(1)).ok_or("take_queue 1")?, pool.clone(), 32);
    while t.elapsed() < Duration::from_secs(4) && good < 2 {
        let mut on_frame = |f: &[u8]| {
            let ok = f.len() == want_len
                && f[12..14] == [0x08, 0x00]
                && f[23] == 17
                && csum(&f[14..34]) == 0
                && f[42..] == data[..];
            if ok {
                good += 1
            } else {
                other += 1
            }
        };
        let n = dq.rx_burst(&mut on_frame) + dq1.rx_burst(&mut on_frame);
        if n == 0 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let chained = dq.counters().rx_chained + dq1.counters().rx_chained;
    println!("kernel->dpdk: {good} whole UDP frames of {want_len} bytes ({chained} chained), {other} other frames");
    check!(good >= 2, "fewer than 2 whole UDP frames arrived");
    check!(chained >= 2, "big frames did not arrive as chains");

    drop(dq);
    drop(dq1);
    let st = port.stats().map_err(|e| e.to_string())?;
    println!("stats {st:?}");
    port.stop().map_err(|e| e.to_string())?;
    drop(port);
    check!(pool.in_use_count() == 0, "leak after close: {}", pool.in_use_count());
    Ok(())
}

/// net_ring loops TX queue k back to RX queue k in-process, passing the
/// mbufs themselves: every frame (chains included) must come back whole.
fn ring_mode() -> R {
    let eal = start_eal("net_ring0".into())?;
    let pool = Mempool::new(&eal, "smoke_ring", 4095, 32, DEFAULT_DATA_ROOM, None)
        .map_err(|e| e.to_string())?;
    let id = port_by_name(&eal, "net_ring0").ok_or("net_ring0 did not probe")?;
    let conf = PortConf { rx_desc: 512, tx_desc: 512, ..PortConf::default() };
    let mut port = Port::configure(id, 1, 1, &pool, conf).map_err(|e| e.to_string())?;
    println!("port {:?}: {:?}", id, port.info());
    port.start().map_err(|e| e.to_string())?;
    let mut dq = DpdkQueue::new(port.take_queue(QueueId(0)).ok_or("take_queue")?, pool.clone(), 32);
    let sizes = [60usize, 1514, 2048, 2049, 5000, 9014, 60];
    let sent: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, &l)| test_frame(l, i as u8)).collect();
    for f in &sent {
        check!(dq.tx_frame(f), "tx_frame {}", f.len());
    }
    dq.flush();
    check!(dq.tx_dropped() == 0, "ring refused frames: {:?}", dq.counters());
    let mut got: Vec<Vec<u8>> = Vec::new();
    for _ in 0..100 {
        dq.rx_burst(&mut |f| got.push(f.to_vec()));
        if got.len() == sent.len() {
            break;
        }
    }
    let c = dq.counters();
    println!("ring: sent {} got {} counters {c:?}", sent.len(), got.len());
    check!(got == sent, "frames came back different (lengths {:?})", got.iter().map(Vec::len).collect::<Vec<_>>());
    // 2049, 5000 and 9014 exceed one 2048-byte segment.
    check!(c.rx_chained == 3 && c.tx_chained == 3, "chains: {c:?}");
    drop(dq);
    check!(pool.in_use_count() == 0, "leak: {}", pool.in_use_count());
    port.stop().map_err(|e| e.to_string())?;
    Ok(())
}

fn pcap_frame(i: usize, n: usize) -> Vec<u8> {
    let len = if i + 1 == n { 3000 } else { 60 + 97 * i };
    (0..len).map(|j| (7 * i + j) as u8).collect()
}

fn pcap_mode(inp: &str, out: &str, n: usize) -> R {
    let eal = start_eal(format!("net_pcap0,rx_pcap={inp},tx_pcap={out}"))?;
    let pool = Mempool::new(&eal, "smoke_pcap", 2047, 32, DEFAULT_DATA_ROOM, None)
        .map_err(|e| e.to_string())?;
    let id = port_by_name(&eal, "net_pcap0").ok_or("net_pcap0 did not probe")?;
    let conf = PortConf { rx_desc: 256, tx_desc: 256, ..PortConf::default() };
    let mut port = Port::configure(id, 1, 1, &pool, conf).map_err(|e| e.to_string())?;
    println!("port {:?}: {:?}", id, port.info());
    port.start().map_err(|e| e.to_string())?;
    let mut dq = DpdkQueue::new(port.take_queue(QueueId(0)).ok_or("take_queue")?, pool.clone(), 32);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let t = Instant::now();
    while frames.len() < n && t.elapsed() < Duration::from_secs(3) {
        dq.rx_burst(&mut |f| frames.push(f.to_vec()));
    }
    check!(frames.len() == n, "read {} of {n} frames", frames.len());
    for (i, f) in frames.iter().enumerate() {
        check!(*f == pcap_frame(i, n), "frame {i} differs (len {})", f.len());
    }
    check!(dq.counters().rx_chained >= 1, "the 3000-byte frame should arrive as a chain");
    for f in &frames {
        check!(dq.tx_frame(f), "tx_frame");
    }
    dq.flush();
    check!(dq.counters().tx_frames == n as u64, "tx {:?}", dq.counters());
    println!("pcap: {n} frames in, {} out, counters {:?}", n, dq.counters());
    drop(dq);
    port.stop().map_err(|e| e.to_string())?;
    drop(port);
    check!(pool.in_use_count() == 0, "leak after close: {}", pool.in_use_count());
    Ok(())
}

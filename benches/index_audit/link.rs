//! Shaped links for the benchmark: the whole run happens inside a network namespace this
//! benchmark creates (servers, audits, peers, all on its loopback), whose loopback is shaped
//! per link with `tc`. With `netem` in the kernel: `netem delay <one way> rate <rate>`. Without
//! it (this project's machine: its kernel has `tbf` and `htb` but no `netem`), the rate is
//! shaped by the kernel with `tbf` and the delay is added by a proxy here in front of each
//! server, which holds every chunk for the round-trip time on its way back.

use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A link between the auditor and every node.
#[derive(Clone, Copy)]
pub struct Link {
    pub name: &'static str,
    pub rate_mbit: u64,
    pub rtt: Duration,
}

pub const LINKS: [Link; 2] = [
    Link {
        name: "same region",
        rate_mbit: 1000,
        rtt: Duration::from_millis(1),
    },
    Link {
        name: "cross region",
        rate_mbit: 100,
        rtt: Duration::from_millis(20),
    },
];

const NETNS_ENV: &str = "CERAMIC_AUDIT_BENCH_NETNS";

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs this benchmark again inside a new network namespace and exits with its status, unless
/// it runs there already (returns the namespace's name) or links are off (returns `None`).
pub fn enter_namespace(links: bool) -> Option<String> {
    if let Ok(ns) = std::env::var(NETNS_ENV) {
        return Some(ns);
    }
    if !links {
        return None;
    }
    let ns = format!("ca-bench-{}", std::process::id());
    let setup = run(&["ip", "netns", "add", &ns])
        .and_then(|_| run(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"]));
    if let Err(e) = setup {
        let _ = run(&["ip", "netns", "del", &ns]);
        eprintln!(
            "cannot create the network namespace for shaped links ({e}); run as root, or set \
             CERAMIC_AUDIT_BENCH_LINKS=0 to measure loopback only"
        );
        std::process::exit(2);
    }
    let exe = std::env::current_exe().expect("own executable");
    let status = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(NETNS_ENV, &ns)
        .status();
    let _ = run(&["ip", "netns", "del", &ns]);
    std::process::exit(status.map_or(1, |s| s.code().unwrap_or(1)));
}

/// Whether this kernel has `netem` (probed by adding and removing it on loopback).
pub fn netem_available() -> bool {
    let ok = run(&[
        "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms",
    ])
    .is_ok();
    if ok {
        let _ = run(&["tc", "qdisc", "del", "dev", "lo", "root"]);
    }
    ok
}

/// Shapes loopback for `link`; returns the delay the proxies must add (zero with netem).
pub fn shape(link: &Link, netem: bool) -> Result<Duration, String> {
    let _ = run(&["tc", "qdisc", "del", "dev", "lo", "root"]);
    if netem {
        // Delay on loopback counts on both ways of a round trip.
        let one_way = format!("{}us", link.rtt.as_micros() / 2);
        let rate = format!("{}mbit", link.rate_mbit);
        run(&[
            "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", &one_way, "rate", &rate,
        ])?;
        return Ok(Duration::ZERO);
    }
    // Through a proxy every byte crosses loopback twice (client–proxy, proxy–server), so the
    // bucket is twice the link's rate. Burst: at least one 64 KiB loopback packet; the queue
    // holds a few bandwidth-delay products so TCP on loopback is not driven into drops.
    let rate = format!("{}mbit", 2 * link.rate_mbit);
    let bdp = (link.rate_mbit * 1_000_000 / 8) as u128 * link.rtt.as_micros() / 1_000_000;
    let limit = format!("{}", (4 * bdp).max(4 << 20));
    run(&[
        "tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", &rate, "burst", "256kb", "limit",
        &limit,
    ])?;
    Ok(link.rtt)
}

pub fn unshape() {
    let _ = run(&["tc", "qdisc", "del", "dev", "lo", "root"]);
}

/// A proxy on a free loopback port in front of `target`, holding every chunk from the server
/// for `delay` before passing it on (requests pass at once: one round trip costs `delay`).
pub async fn delay_proxy(target: u16, delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy port");
    let port = listener.local_addr().expect("proxy address").port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pipe(cr, sw, Duration::ZERO));
            tokio::spawn(pipe(sr, cw, delay));
        }
    });
    port
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due.into()).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// The round-trip time measured through a connection (median of 21 `SELECT 1`), in ms.
pub async fn measured_rtt_ms(dsn: &str) -> f64 {
    let (client, conn) = tokio_postgres::connect(dsn, tokio_postgres::NoTls)
        .await
        .expect("connect through the link");
    tokio::spawn(conn);
    let mut times = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        client.simple_query("SELECT 1").await.expect("SELECT 1");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

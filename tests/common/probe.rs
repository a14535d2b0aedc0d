//! Probes of a running daemon that never hang: admin-port requests with a
//! deadline (a daemon out of descriptors may not answer at all), and what
//! `/proc` says of its memory, descriptors and CPU.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::Daemon;

/// A GET on the admin port with a deadline: `Some((status, body))`, or
/// `None` when the daemon did not answer in time.
pub async fn get(d: &Daemon, path: &str) -> Option<(u16, String)> {
    let (admin, path) = (d.admin, path.to_owned());
    let limit = Duration::from_secs(5);
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect_timeout(&admin, limit).ok()?;
        s.set_read_timeout(Some(limit)).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        let status = out.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, out.split("\r\n\r\n").nth(1)?.to_owned()))
    })
    .await
    .unwrap()
}

/// `/healthz`'s status, if the daemon answers in time.
pub async fn healthz(d: &Daemon) -> Option<u16> {
    get(d, "/healthz").await.map(|(status, _)| status)
}

/// A metric's value from `/metrics`, if the daemon answers and exports it.
pub async fn metric(d: &Daemon, series: &str) -> Option<f64> {
    let (_, body) = get(d, "/metrics").await?;
    body.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Σ of every sample of `family` (a counter's name ends in `_total`)
/// whose labels include `label` (e.g. `resource="api"`), if the daemon
/// answers in time.
pub async fn metric_sum(d: &Daemon, family: &str, label: &str) -> Option<f64> {
    let (_, body) = get(d, "/metrics").await?;
    let prefix = format!("{family}{{");
    Some(
        body.lines()
            .filter(|l| l.starts_with(&prefix))
            .filter(|l| {
                l.split('}')
                    .next()
                    .is_some_and(|labels| labels.contains(label))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

/// The process's resident memory, in kB.
pub fn rss_kb(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
}

/// File descriptors the process has open.
pub fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// CPU time the process has used (user + system).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces) start at state.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|v| v.parse().unwrap())
        .collect();
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Duration::from_secs_f64((fields[0] + fields[1]) as f64 / ticks)
}

/// The share of a core the process uses over `window`.
pub async fn cpu_over(pid: u32, window: Duration) -> f64 {
    let before = cpu_time(pid);
    let started = Instant::now();
    // A measurement window, not a wait for some event.
    tokio::time::sleep(window).await;
    let used = cpu_time(pid) - before;
    used.as_secs_f64() / started.elapsed().as_secs_f64()
}

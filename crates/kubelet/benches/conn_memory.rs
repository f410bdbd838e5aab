//! Memory and CPU of scraping a fleet of simulated kubelets, client side only.
//!
//! ```text
//! parent (this binary)                         child (this binary, CONN_MEMORY_FLEET=1)
//!   counting allocator, Scraper + Store   ──TLS──▶  KubeletFleet: one listener per node on
//!   ticks: scrape_tick → into_batch → apply          127.77.x.y:<port>, real /metrics/resource bodies
//!   reads its own heap, VmRSS, VmHWM, CPU            answers "stats" lines on stdin with its counters
//! ```
//!
//! The fleet runs in a child process so that the parent's heap, RSS and CPU are the scraping
//! client's alone. The client is built as the binary builds it (HTTPS with `--kubelet-insecure-tls`,
//! a bearer token, 10 s request timeout, idle timeout max(90 s, interval + 30 s), 256 requests in
//! flight, upstream's jitter) and each node's decoded scrape goes into a `Store` as it arrives, as in
//! the server.
//!
//! ```sh
//! cargo bench -p metrics-server-kubelet --bench conn_memory -- --nodes 1000 --pods 30 --ticks 4
//! #   --h2         offer h2 by ALPN like client-go (HttpVersion::Negotiate); default HTTP/1.1
//! #   --close      no keep-alive: a new connection (TLS handshake) per node per tick
//! #   --batch      store the tick as one batch once every node answered (TickResult::into_batch,
//! #                Store::apply) instead of node by node as they arrive (Store::begin, TickBuilder)
//! #   --interval S seconds between tick starts (default 15, kwokctl's --metric-resolution)
//! #   --port P     the fleet's port on every node address (default 20250)
//! #   --leak-at-exit   exit right after the ticks, dropping nothing: under `heaptrack`, the leak
//! #                    report then lists what the client holds, by allocation site
//! ```
//!
//! Not part of `make test` or `make bench`; results are in BENCHMARKS.md §1.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::alloc::System;
use std::error::Error;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use metrics_server_core::Store;
use metrics_server_kubelet::{
    AddressConfig, HttpVersion, KubeletClient, KubeletClientConfig, NodeTarget, Scraper,
    ScraperConfig, ServerVerification, TlsSettings, TokenSource, Transport,
};
use metrics_server_test_support::{FleetNode, KubeletFleet, TestPki};
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use tokio::time::Instant;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

type Res<T> = Result<T, Box<dyn Error>>;

/// Set in the child's environment: run the fleet instead of the client.
const FLEET_ROLE: &str = "CONN_MEMORY_FLEET";
const MIB: f64 = 1024.0 * 1024.0;
/// Linux's USER_HZ: /proc/*/stat counts CPU time in 1/100 s.
const CLOCK_TICKS_PER_S: f64 = 100.0;

#[derive(Debug, Clone)]
struct Options {
    nodes: usize,
    pods: usize,
    ticks: usize,
    interval: Duration,
    port: u16,
    http_version: HttpVersion,
    keep_alive: bool,
    batch: bool,
    leak_at_exit: bool,
}

fn parse_options() -> Res<Options> {
    let mut o = Options {
        nodes: 1000,
        pods: 30,
        ticks: 4,
        interval: Duration::from_secs(15),
        port: 20250,
        http_version: HttpVersion::default(),
        keep_alive: true,
        batch: false,
        leak_at_exit: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--nodes" => o.nodes = value()?.parse()?,
            "--pods" => o.pods = value()?.parse()?,
            "--ticks" => o.ticks = value()?.parse()?,
            "--interval" => o.interval = Duration::from_secs(value()?.parse()?),
            "--port" => o.port = value()?.parse()?,
            "--h2" => o.http_version = HttpVersion::Negotiate,
            "--close" => o.keep_alive = false,
            "--batch" => o.batch = true,
            "--leak-at-exit" => o.leak_at_exit = true,
            // cargo bench passes --bench; nothing else is expected.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if o.nodes == 0 || o.nodes > 250 * 250 {
        return Err("--nodes must be 1..=62500".into());
    }
    Ok(o)
}

fn node_ip(i: usize) -> IpAddr {
    // 127.77.<hi>.<lo>, lo in 1..=250: loopback only.
    let hi = u8::try_from(i / 250).unwrap_or(u8::MAX);
    let lo = u8::try_from(i % 250 + 1).unwrap_or(u8::MAX);
    IpAddr::V4(Ipv4Addr::new(127, 77, hi, lo))
}

fn main() {
    let run = parse_options().and_then(|o| {
        if std::env::var_os(FLEET_ROLE).is_some() {
            fleet_main(&o)
        } else {
            client_main(&o)
        }
    });
    if let Err(e) = run {
        eprintln!("conn_memory: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------- child: the fleet

fn fleet_main(o: &Options) -> Res<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let pki = TestPki::new()?;
        // The client runs with --kubelet-insecure-tls: the names in the certificate are not checked.
        let tls = pki.server_cert(&["127.77.0.1"])?.server_config(None)?;
        let nodes = (0..o.nodes)
            .map(|i| FleetNode {
                ip: node_ip(i),
                pods: (0..o.pods)
                    .map(|p| (format!("ns-{}", i % 100), format!("pod-{i}-{p}")))
                    .collect(),
                containers: vec!["app".to_owned(), "sidecar".to_owned()],
            })
            .collect();
        let fleet = KubeletFleet::start(nodes, o.port, tls).await?;
        println!("ready");
        std::io::stdout().flush()?;
        // One line of counters per line on stdin; EOF stops the fleet.
        loop {
            let line = tokio::task::spawn_blocking(|| {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line).map(|n| (n, line))
            })
            .await??;
            if line.0 == 0 {
                return Ok(());
            }
            println!(
                "{} {} {} {}",
                fleet.requests(),
                fleet.h2_requests(),
                fleet.connections(),
                fleet.resumed_connections()
            );
            std::io::stdout().flush()?;
        }
    })
}

/// The fleet child, seen from the parent.
struct FleetProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// The fleet's counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct FleetStats {
    requests: u64,
    h2_requests: u64,
    connections: u64,
    resumed: u64,
    cpu_s: f64,
}

impl FleetProcess {
    fn spawn() -> Res<Self> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(std::env::args().skip(1))
            .env(FLEET_ROLE, "1")
            // Under heaptrack, profile the client only.
            .env_remove("LD_PRELOAD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().ok_or("no child stdout")?);
        let mut fleet = Self {
            child,
            stdin,
            stdout,
        };
        if fleet.read_line()? != "ready" {
            return Err("the fleet did not start (see its error above)".into());
        }
        Ok(fleet)
    }

    fn read_line(&mut self) -> Res<String> {
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(line.trim().to_owned())
    }

    fn stats(&mut self) -> Res<FleetStats> {
        let stdin = self.stdin.as_mut().ok_or("fleet stopped")?;
        stdin.write_all(b"stats\n")?;
        stdin.flush()?;
        let line = self.read_line()?;
        let n: Vec<u64> = line.split(' ').map(str::parse).collect::<Result<_, _>>()?;
        let [requests, h2_requests, connections, resumed] = n[..] else {
            return Err(format!("bad fleet stats line {line:?}").into());
        };
        Ok(FleetStats {
            requests,
            h2_requests,
            connections,
            resumed,
            cpu_s: cpu_seconds(&format!("/proc/{}/stat", self.child.id()))?,
        })
    }

    fn stop(mut self) -> Res<()> {
        drop(self.stdin.take());
        self.child.wait()?;
        Ok(())
    }
}

// ---------------------------------------------------------------- parent: the client

/// Live heap bytes of this process (counting allocator). stats_alloc already books a realloc's
/// growth or shrink in `bytes_allocated`/`bytes_deallocated`; `bytes_reallocated` repeats it.
fn heap() -> i64 {
    let s = GLOBAL.stats();
    s.bytes_allocated as i64 - s.bytes_deallocated as i64
}

/// Samples the live heap every 2 ms on its own thread while armed (parked otherwise), keeping
/// the maximum.
struct HeapSampler {
    shared: Arc<SamplerState>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct SamplerState {
    peak: AtomicI64,
    armed: AtomicBool,
    stop: AtomicBool,
}

impl HeapSampler {
    fn start() -> Self {
        let shared = Arc::new(SamplerState::default());
        let state = Arc::clone(&shared);
        let thread = std::thread::spawn(move || {
            while !state.stop.load(Ordering::Relaxed) {
                if state.armed.load(Ordering::Relaxed) {
                    state.peak.fetch_max(heap(), Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(2));
                } else {
                    // No wake-ups between ticks: they would count as the client's CPU.
                    std::thread::park();
                }
            }
        });
        Self {
            shared,
            thread: Some(thread),
        }
    }

    fn arm(&self) {
        self.shared.peak.store(heap(), Ordering::Relaxed);
        self.shared.armed.store(true, Ordering::Relaxed);
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
    }

    /// Stops sampling and returns the largest live heap seen since [`Self::arm`].
    fn disarm(&self) -> i64 {
        self.shared.armed.store(false, Ordering::Relaxed);
        self.shared.peak.load(Ordering::Relaxed).max(heap())
    }
}

impl Drop for HeapSampler {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            let _ = thread.join();
        }
    }
}

/// `VmRSS` and `VmHWM` of this process, in bytes.
fn rss() -> Res<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> Res<u64> {
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or(format!("{name} missing"))?;
        Ok(kib * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets `VmHWM` to the current RSS, so the next reading is the peak since now.
fn reset_peak() -> Res<()> {
    std::fs::write("/proc/self/clear_refs", "5")?;
    Ok(())
}

/// utime + stime of a process from its `stat` file, in seconds.
fn cpu_seconds(stat_path: &str) -> Res<f64> {
    let stat = std::fs::read_to_string(stat_path)?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let rest = stat.rsplit_once(')').ok_or("bad stat")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11).ok_or("bad stat")?.parse::<f64>()?
        + f.get(12).ok_or("bad stat")?.parse::<f64>()?;
    Ok(ticks / CLOCK_TICKS_PER_S)
}

/// Sockets open in this process (the client's connections, no listeners).
fn open_sockets() -> Res<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let target = std::fs::read_link(entry?.path()).unwrap_or_default();
        if target.to_string_lossy().starts_with("socket:") {
            n += 1;
        }
    }
    Ok(n)
}

fn scraper(o: &Options) -> Res<Scraper> {
    let mut config = KubeletClientConfig::new(Transport::Https(TlsSettings {
        verification: ServerVerification::Insecure,
        client_cert: None,
    }));
    config.token = TokenSource::Static("conn-memory-bench-token".to_owned());
    config.user_agent = "metrics-server/conn-memory-bench".to_owned();
    config.pool_idle_timeout = config
        .pool_idle_timeout
        .max(o.interval + Duration::from_secs(30));
    config.http_version = o.http_version;
    config.keep_alive = o.keep_alive;
    let client = KubeletClient::new(&config)?;
    let scraper_config = ScraperConfig {
        address: AddressConfig {
            preferred_address_types: vec!["InternalIP".to_owned()],
            port: o.port,
            use_node_status_port: false,
        },
        ..ScraperConfig::default()
    };
    Ok(Scraper::new(client, scraper_config, None))
}

fn targets(o: &Options) -> Vec<NodeTarget> {
    (0..o.nodes)
        .map(|i| NodeTarget {
            name: format!("node-{i}"),
            addresses: vec![("InternalIP".to_owned(), node_ip(i).to_string())],
            status_port: 0,
            metrics_path_annotation: None,
            ready: true,
        })
        .collect()
}

/// What one tick cycle (tick start to next tick start) cost.
#[derive(Debug, Clone, Copy, Default)]
struct TickRow {
    wall_s: f64,
    ok: usize,
    /// Live heap once every node answered (decoded results not stored yet), its maximum over
    /// the tick (sampled every 2 ms), and after the results were stored.
    heap_with_results: i64,
    heap_peak: i64,
    heap_after_apply: i64,
    rss: u64,
    peak_rss: u64,
    sockets: usize,
    cpu_s: f64,
    fleet: FleetStats,
    fleet_cpu_s: f64,
}

fn client_main(o: &Options) -> Res<()> {
    let mut fleet = FleetProcess::spawn()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(run_client(o, &mut fleet));
    drop(rt);
    fleet.stop()?;
    result
}

async fn run_client(o: &Options, fleet: &mut FleetProcess) -> Res<()> {
    let targets = targets(o);
    let heap_base = heap();
    let (rss_base, _) = rss()?;
    let scraper = scraper(o)?;
    let mut store = Store::new(o.interval);
    println!(
        "conn_memory: {} nodes x {} pods x 2 containers, {} ticks every {:?}, {:?}, keep-alive {}",
        o.nodes, o.pods, o.ticks, o.interval, o.http_version, o.keep_alive
    );
    println!(
        "base: heap {:.1} MiB, RSS {:.1} MiB",
        heap_base as f64 / MIB,
        rss_base as f64 / MIB
    );
    println!(
        "tick  wall_s  ok    heap_held_MiB  heap_peak_MiB  heap_stored_MiB  rss_MiB  peak_MiB  sockets  cpu_s  fleet_cpu_s  fleet_conns  requests  h2_reqs  resumed"
    );
    let mut rows = Vec::new();
    let sampler = HeapSampler::start();
    let mut next = Instant::now();
    for tick in 0..o.ticks {
        let row = one_tick(o, &scraper, &mut store, &targets, fleet, next, &sampler).await?;
        next += o.interval;
        tokio::time::sleep_until(next).await;
        let mut row = row;
        let cpu_end = cpu_seconds("/proc/self/stat")?;
        let fleet_end = fleet.stats()?;
        row.cpu_s = cpu_end - row.cpu_s;
        row.fleet_cpu_s = fleet_end.cpu_s - row.fleet_cpu_s;
        print_row(tick, &row);
        rows.push(row);
    }
    if o.leak_at_exit {
        // Everything the client holds is still allocated: heaptrack reports it as leaked.
        std::process::exit(0);
    }
    let summary = finish(scraper, store).await?;
    print_summary(o, &rows, &summary, heap_base, rss_base);
    Ok(())
}

async fn one_tick(
    o: &Options,
    scraper: &Scraper,
    store: &mut Store,
    targets: &[NodeTarget],
    fleet: &mut FleetProcess,
    start: Instant,
    sampler: &HeapSampler,
) -> Res<TickRow> {
    let cpu0 = cpu_seconds("/proc/self/stat")?;
    let fleet0 = fleet.stats()?;
    reset_peak()?;
    sampler.arm();
    let deadline = start + o.interval;
    let (ok, heap_with_results) = if o.batch {
        // The server's path before TickBuilder: every decoded scrape waits for the whole tick.
        let result = scraper.scrape_tick(targets, deadline).await;
        let held = (result.succeeded(), heap());
        store.apply(result.into_batch());
        held
    } else {
        // The server's path: each node is stored as it arrives.
        let mut tick = store.begin();
        let result = scraper
            .scrape_tick_with(targets, deadline, |index, outcome| {
                if let Ok(scrape) = &mut outcome.result {
                    let order = u32::try_from(index).unwrap_or(u32::MAX);
                    tick.add_node_scrape(order, &outcome.node, std::mem::take(scrape));
                }
            })
            .await;
        let held = (result.succeeded(), heap());
        tick.finish();
        held
    };
    let wall_s = start.elapsed().as_secs_f64();
    let heap_peak = sampler.disarm();
    let heap_after_apply = heap();
    let (rss, peak_rss) = rss()?;
    Ok(TickRow {
        wall_s,
        ok,
        heap_with_results,
        heap_peak,
        heap_after_apply,
        rss,
        peak_rss,
        sockets: open_sockets()?,
        // Start values; the caller turns them into deltas at the end of the cycle.
        cpu_s: cpu0,
        fleet: fleet.stats()?,
        fleet_cpu_s: fleet0.cpu_s,
    })
}

fn print_row(tick: usize, r: &TickRow) {
    println!(
        "{tick:>4}  {:>6.2}  {:>4}  {:>13.1}  {:>13.1}  {:>15.1}  {:>7.1}  {:>8.1}  {:>7}  {:>5.2}  {:>11.2}  {:>11}  {:>8}  {:>7}  {:>7}",
        r.wall_s,
        r.ok,
        r.heap_with_results as f64 / MIB,
        r.heap_peak as f64 / MIB,
        r.heap_after_apply as f64 / MIB,
        r.rss as f64 / MIB,
        r.peak_rss as f64 / MIB,
        r.sockets,
        r.cpu_s,
        r.fleet_cpu_s,
        r.fleet.connections,
        r.fleet.requests,
        r.fleet.h2_requests,
        r.fleet.resumed,
    );
}

/// Heap and sockets once the ticks are over, then after the store and the scraper are dropped.
#[derive(Debug, Default)]
struct Summary {
    heap_kept: i64,
    sockets_kept: usize,
    rss_kept: u64,
    heap_without_store: i64,
    heap_without_scraper: i64,
    sockets_after: usize,
    rss_after: u64,
}

async fn finish(scraper: Scraper, store: Store) -> Res<Summary> {
    let mut s = Summary {
        heap_kept: heap(),
        sockets_kept: open_sockets()?,
        rss_kept: rss()?.0,
        ..Summary::default()
    };
    drop(store);
    s.heap_without_store = heap();
    drop(scraper);
    // Pooled connections close from their own tasks once the pool is gone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    s.heap_without_scraper = heap();
    s.sockets_after = open_sockets()?;
    s.rss_after = rss()?.0;
    Ok(s)
}

fn print_summary(o: &Options, rows: &[TickRow], s: &Summary, heap_base: i64, rss_base: u64) {
    let steady: Vec<&TickRow> = rows.iter().skip(1).collect();
    let mean = |f: &dyn Fn(&TickRow) -> f64| {
        if steady.is_empty() {
            0.0
        } else {
            steady.iter().map(|r| f(r)).sum::<f64>() / steady.len() as f64
        }
    };
    let client_freed = s.heap_without_store - s.heap_without_scraper;
    let closed = s.sockets_kept.saturating_sub(s.sockets_after);
    println!(
        "after the ticks: heap {:.1} MiB over base ({:.1} MiB store+snapshot, {:.1} MiB scraper+client), RSS {:.1} MiB ({:.1} over base), {} sockets",
        (s.heap_kept - heap_base) as f64 / MIB,
        (s.heap_kept - s.heap_without_store) as f64 / MIB,
        client_freed as f64 / MIB,
        s.rss_kept as f64 / MIB,
        (s.rss_kept - rss_base.min(s.rss_kept)) as f64 / MIB,
        s.sockets_kept,
    );
    println!(
        "scraper+client freed per node: {:.1} KiB; {} sockets closed; RSS after drop {:.1} MiB",
        client_freed as f64 / o.nodes as f64 / 1024.0,
        closed,
        s.rss_after as f64 / MIB,
    );
    println!(
        "steady ticks (2..): CPU {:.2} s per tick (fleet {:.2} s), wall {:.2} s, above stored: results held {:.1} MiB, tick peak {:.1} MiB",
        mean(&|r| r.cpu_s),
        mean(&|r| r.fleet_cpu_s),
        mean(&|r| r.wall_s),
        mean(&|r| (r.heap_with_results - r.heap_after_apply) as f64 / MIB),
        mean(&|r| (r.heap_peak - r.heap_after_apply) as f64 / MIB),
    );
}

//! Per-recipient throughput: personalise (templates) + build the MIME message (lettre) +
//! `formatted()` to bytes, single-threaded, on the bundled example newsletter and list.
//!
//! ```text
//! cargo bench --bench personalise            # 200,000 messages per phase (5,000 with RSA)
//! BENCH_MESSAGES=50000 BENCH_RSA_MESSAGES=2000 cargo bench --bench personalise
//! ```
//!
//! Targets (Issue 2 item 6, Issue 4 item 2), on one core: ≥ 20,000 messages/s without DKIM,
//! ≥ 10,000/s signed with an Ed25519 key, ≥ 1,000/s signed with an RSA-2048 key. The two DKIM
//! phases run the full path with keys made by `bulletin::dkim::keygen` in a temporary
//! directory and a `[dkim]` section added to the bundled settings.
//! Besides the full path it times `personalise` alone and build + format alone (on
//! pre-rendered content), so a regression shows where the time went, and the full path once
//! more with every member made distinct (a unique first name and city), the worst case for
//! the cache of per-recipient wrapped paragraphs. Rates are per CPU-second of this thread as
//! well as per wall-clock second: the machine may be shared.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bulletin::config::Config;
use bulletin::diagnostic::Diagnostics;
use bulletin::dkim::{Algorithm, keygen};
use bulletin::list::Lists;
use bulletin::message::Letterhead;
use bulletin::newsletter::Newsletter;
use bulletin::render::{Compiled, Rendered};
use bulletin::unsubscribe::Unsubscribe;

const NEWSLETTER: &str = "newsletters/2026-12-first-hundred-days.md";
const LIST: &str = "lists/members.csv";

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let count: usize = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200_000);

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::env::set_current_dir(root).expect("cd to the package root");
    let config = Config::load(Some(Path::new("bulletin.toml"))).expect("bulletin.toml");
    let newsletter = Newsletter::load(Path::new(NEWSLETTER)).expect("newsletter");
    let lists = Lists::load(&[PathBuf::from(LIST)], &config.suppress_files()).expect("list");
    let unsubscribe = Unsubscribe::from_config(&config).expect("[unsubscribe]").map(Arc::new);
    let mut diags = Diagnostics::default();
    let compiled = Compiled::compile(
        &newsletter,
        &config,
        Some(&lists.fields),
        unsubscribe.clone(),
        &mut diags,
    )
    .unwrap_or_else(|| {
        let found: Vec<String> = diags.items.iter().map(ToString::to_string).collect();
        panic!("the example does not compile:\n{}", found.join("\n"))
    });
    let letterhead = Letterhead::new(&newsletter, &config, unsubscribe.clone()).expect("letterhead");

    // Only members the example can actually be sent to (a bare field may be empty for some).
    let members: Vec<_> = lists
        .recipients
        .iter()
        .filter(|r| compiled.personalise(r).is_ok())
        .collect();
    assert!(!members.is_empty(), "no member renders");
    let rendered: Vec<Rendered> = members
        .iter()
        .map(|r| compiled.personalise(r).expect("renders"))
        .collect();
    println!(
        "bulletin personalise bench: {NEWSLETTER} × {} members of {LIST}, {count} messages per phase, 1 thread",
        members.len()
    );

    // Warm-up: caches, allocator, lazy statics.
    for r in members.iter().take(200) {
        let c = compiled.personalise(r).unwrap();
        black_box(letterhead.build(r, &c, letterhead.message_id()).unwrap().formatted());
    }

    let mut bytes = 0usize;
    let full = time(count, |i| {
        let r = members[i % members.len()];
        let content = compiled.personalise(r).expect("renders");
        let message = letterhead.build(r, &content, letterhead.message_id()).expect("builds");
        let out = message.formatted();
        bytes += out.len();
        black_box(out);
    });
    let per_cpu_second = report("personalise + build + format", count, &full);
    println!("  average message size: {:.0} bytes", bytes as f64 / count as f64);

    let personalise = time(count, |i| {
        let r = members[i % members.len()];
        black_box(compiled.personalise(r).expect("renders"));
    });
    report("personalise only", count, &personalise);

    let build = time(count, |i| {
        let k = i % members.len();
        let message = letterhead
            .build(members[k], &rendered[k], letterhead.message_id())
            .expect("builds");
        black_box(message.formatted());
    });
    report("build + format only", count, &build);

    // Worst case for the `wrap` filter's cache: every member's wrapped paragraphs differ
    // (a distinct first name and city each), and there are more of them than the cache holds.
    let distinct: Vec<_> = (0..20_000)
        .map(|i| {
            let mut r = members[i % members.len()].clone();
            for (name, value) in r.columns.names.iter().zip(r.values.iter_mut()) {
                if matches!(&**name, "first_name" | "city") {
                    *value = format!("{}{i}", value.trim()).into();
                }
            }
            r
        })
        .collect();
    let worst = time(count, |i| {
        let r = &distinct[i % distinct.len()];
        let content = compiled.personalise(r).expect("renders");
        let message = letterhead.build(r, &content, letterhead.message_id()).expect("builds");
        black_box(message.formatted());
    });
    let worst_per_cpu_second = report("full, all members distinct", count, &worst);

    // DKIM: the full path signed with each kind of key.
    let rsa_count: usize = std::env::var("BENCH_RSA_MESSAGES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5_000);
    let keys = tempfile::tempdir().expect("temporary directory");
    let settings = std::fs::read_to_string("bulletin.toml").expect("bulletin.toml");
    let mut signed_rates = Vec::new();
    for (algorithm, n) in [(Algorithm::Ed25519, count), (Algorithm::Rsa, rsa_count)] {
        let selector = format!("bench-{algorithm:?}").to_lowercase();
        let generated = keygen(keys.path(), &selector, "example.org", algorithm).expect("keygen");
        let text = format!(
            "{settings}\n[dkim]\ndomain = \"example.org\"\nselector = \"{selector}\"\nprivate_key = {:?}\n",
            generated.path.display().to_string()
        );
        let mut dkim_config = Config::parse(&text, Path::new("bulletin.toml")).expect("settings with [dkim]");
        dkim_config.root = root.to_owned();
        let signer = Letterhead::new(&newsletter, &dkim_config, unsubscribe.clone()).expect("letterhead with DKIM");
        let first = members[0];
        let sample = signer
            .build(first, &compiled.personalise(first).unwrap(), signer.message_id())
            .unwrap()
            .formatted();
        let algo = match algorithm {
            Algorithm::Ed25519 => "a=ed25519-sha256",
            Algorithm::Rsa => "a=rsa-sha256",
        };
        assert!(
            String::from_utf8_lossy(&sample).contains(algo),
            "the message is not signed with {algo}"
        );
        for r in members.iter().take(20) {
            let c = compiled.personalise(r).unwrap();
            black_box(signer.build(r, &c, signer.message_id()).unwrap().formatted());
        }
        let took = time(n, |i| {
            let r = members[i % members.len()];
            let content = compiled.personalise(r).expect("renders");
            let message = signer.build(r, &content, signer.message_id()).expect("builds");
            black_box(message.formatted());
        });
        let label = match algorithm {
            Algorithm::Ed25519 => "full, DKIM Ed25519",
            Algorithm::Rsa => "full, DKIM RSA-2048",
        };
        signed_rates.push(report(label, n, &took));
    }

    let verdict = |rate: f64, target: f64| if rate >= target { "met" } else { "MISSED" };
    println!(
        "target ≥ 20000 messages/s on one core, no DKIM: {} ({per_cpu_second:.0} per CPU-second; {worst_per_cpu_second:.0} when all members are distinct)",
        verdict(per_cpu_second.min(worst_per_cpu_second), 20_000.0)
    );
    println!(
        "target ≥ 10000 messages/s on one core, DKIM Ed25519: {} ({:.0} per CPU-second)",
        verdict(signed_rates[0], 10_000.0),
        signed_rates[0]
    );
    println!(
        "target ≥ 1000 messages/s on one core, DKIM RSA-2048: {} ({:.0} per CPU-second)",
        verdict(signed_rates[1], 1_000.0),
        signed_rates[1]
    );
}

/// Wall-clock time, and CPU time of this thread when Linux tells us (the machine is shared:
/// CPU time is what "on one core" means, wall time is what a user waits).
struct Took {
    wall: Duration,
    cpu: Option<Duration>,
}

fn time(count: usize, mut f: impl FnMut(usize)) -> Took {
    let (start, cpu_start) = (Instant::now(), thread_cpu());
    for i in 0..count {
        f(i);
    }
    let wall = start.elapsed();
    let cpu = thread_cpu()
        .zip(cpu_start)
        .map(|(end, start)| end.saturating_sub(start));
    Took { wall, cpu }
}

/// This thread's user + system time from `/proc/thread-self/stat` (clock ticks of 10 ms).
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces:
    // state is field 3, utime 14 and stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn report(what: &str, count: usize, took: &Took) -> f64 {
    let wall = took.wall.as_secs_f64();
    let cpu = took.cpu.map_or(wall, |c| c.as_secs_f64());
    println!(
        "{what:<30} {:>8.0} messages/s  {:>7.2} µs/message  ({count} in {wall:.2} s wall, {cpu:.2} s CPU: {:.0} messages per CPU-second)",
        count as f64 / wall,
        wall * 1e6 / count as f64,
        count as f64 / cpu,
    );
    count as f64 / cpu
}

//! The result table: rows, the figures of repeated runs, and the targets computed from this run.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::systems::figure;

/// One line of the result table.
#[derive(Debug, Default, Clone)]
pub struct Row {
    pub scenario: String,
    pub measure: String,
    pub sse: String,
    pub seed: String,
    pub nchan: String,
    pub target: String,
    pub verdict: String,
}

pub const NOT_RUN: &str = "not run";
pub const NOT_MEASURED: &str = "—";

/// What a run produced: the table's rows, notes, and the figures the targets are checked on.
#[derive(Debug, Default)]
pub struct Report {
    pub rows: Vec<Row>,
    pub notes: Vec<String>,
    pub summary: Summary,
}

/// The values one figure took over the runs of a scenario.
#[derive(Debug, Clone, Default)]
pub struct Runs(Vec<f64>);

impl Runs {
    /// The finite values among `values`.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Self {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        Self(v)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The median (the mean of the middle two for an even count); NaN without values.
    pub fn median(&self) -> f64 {
        let n = self.0.len();
        match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => self.0[n / 2],
            _ => (self.0[n / 2 - 1] + self.0[n / 2]) / 2.0,
        }
    }

    /// ` (min–max)` when there are several values, else nothing.
    fn spread(&self, show: &dyn Fn(f64) -> String) -> String {
        match (self.0.first(), self.0.last()) {
            (Some(lo), Some(hi)) if self.0.len() > 1 => format!(" ({}–{})", show(*lo), show(*hi)),
            _ => String::new(),
        }
    }

    /// `1.36 (1.30–1.45)`, or `1.36` for one run.
    pub fn show(&self) -> String {
        self.show_unit(&figure, "")
    }

    /// `26.1 KiB (25.9–26.4)`.
    pub fn show_unit(&self, show: &dyn Fn(f64) -> String, unit: &str) -> String {
        format!("{}{unit}{}", show(self.median()), self.spread(show))
    }
}

/// `1.36 / 2.19 (1.30–1.45 / 2.01–2.53)`: two figures' medians, then their spreads.
pub fn pair(a: &Runs, b: &Runs) -> String {
    let main = format!("{} / {}", figure(a.median()), figure(b.median()));
    match (a.spread(&figure), b.spread(&figure)) {
        (x, y) if x.is_empty() && y.is_empty() => main,
        (x, y) => format!(
            "{main} ({} / {})",
            x.trim_start().trim_start_matches('(').trim_end_matches(')'),
            y.trim_start().trim_start_matches('(').trim_end_matches(')')
        ),
    }
}

/// ` (1 run)` or ` (2 of 3 runs)` when a cell holds fewer runs than the run's usual count.
pub fn runs_note(ok: usize, tried: usize, usual: usize) -> String {
    match (ok, tried) {
        (ok, tried) if ok < tried => format!(" ({ok} of {tried} runs)"),
        (1, _) if usual > 1 => " (1 run)".into(),
        (ok, _) if ok < usual => format!(" ({ok} runs)"),
        _ => String::new(),
    }
}

pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn err_cell(e: &str) -> String {
    format!("error: {}", e.replace('|', "/"))
}

/// Medians of this run's figures, for the targets.
#[derive(Debug, Default)]
pub struct Summary {
    /// insert→all viewers (p50, p99) ms, by (system, viewers); system is "sse", "nchan" or "seed".
    pub fanout: BTreeMap<(&'static str, usize), (f64, f64)>,
    /// Scenario 1's runs without a missing line, by system and viewers.
    pub fanout_complete: BTreeMap<(&'static str, usize), bool>,
    /// VmRSS growth per idle stream, KiB: HTTP/1.1, and HTTP/2 with its (connections, streams each).
    pub memory_h1: Option<f64>,
    pub memory_h2: Option<(f64, usize, usize)>,
    /// The big replay: lines/s, whether every run was complete, lines.
    pub replay: Option<(f64, bool, usize)>,
    pub small_replay: Option<SmallReplay>,
    pub idle: Option<IdleFigures>,
    /// Append growth: first-ten and last-ten mean ms, requests, lines.
    pub growth: Option<(f64, f64, usize, u64)>,
    /// Live delivery during an open burst: p50, p99 ms during; p99 before; streams.
    pub burst: Option<(f64, f64, f64, usize)>,
    /// Replay lines/s with and without redaction patterns (after the first line), and how many.
    pub redact: Option<(f64, f64, usize)>,
}

#[derive(Debug, Clone, Copy)]
pub struct SmallReplay {
    pub lines: usize,
    pub sse_secs: f64,
    pub seed_secs: Option<f64>,
    pub sse_per_line: f64,
    pub seed_per_line: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
pub struct IdleFigures {
    pub viewers: usize,
    /// Commands/s without the drivers' heartbeats: no viewers, and `viewers` viewers.
    pub none: f64,
    pub with: f64,
    /// All commands/s with `viewers` viewers, and the seed's.
    pub with_all: f64,
    pub seed_all: Option<f64>,
    pub mongod_cpu: Option<f64>,
    pub seed_mongod_cpu: Option<f64>,
}

/// Every target of BENCHMARKS.md and issue 18, checked on this run's figures: (target, result).
pub fn targets(s: &Summary) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let unmeasured = || "not measured in this run".to_owned();
    let verdict = |ok: bool| if ok { "**met**" } else { "**MISSED**" };
    let fan = |system: &'static str, viewers: usize| s.fanout.get(&(system, viewers)).copied();
    let complete = |viewers: usize| s.fanout_complete.get(&("sse", viewers)).copied().unwrap_or(true);
    let ms = |x: f64| format!("{} ms", figure(x));

    // Latency with one viewer.
    let one = fan("sse", 1);
    let nchan_one = fan("nchan", 1).map(|(p50, _)| format!("; Nchan p50 {}", ms(p50))).unwrap_or_default();
    for (goal, limit) in [("p50 ≤ 2 ms with 1 viewer", 2.0), ("p50 ≤ 0.8 ms with 1 viewer (issue 18)", 0.8)]
    {
        let result = match one {
            Some((p50, p99)) => {
                format!("{}: {} (p99 {}){nchan_one}", verdict(p50 <= limit), ms(p50), ms(p99))
            }
            None => unmeasured(),
        };
        out.push((goal.into(), result));
    }

    // 1,000 viewers.
    let thousand = fan("sse", 1000);
    let nchan_thousand = fan("nchan", 1000);
    out.push((
        "p99 ≤ 50 ms to all of 1,000 viewers".into(),
        match thousand {
            Some((_, p99)) => {
                let nchan = nchan_thousand.map(|(_, n)| format!("; Nchan {}", ms(n))).unwrap_or_default();
                format!("{}: {}{nchan}", verdict(p99 <= 50.0 && complete(1000)), ms(p99))
            }
            None => unmeasured(),
        },
    ));
    for (viewers, goal) in [
        (1000, "p99 ≤ Nchan's p99 at 1,000 viewers, same run (issue 18)"),
        (10_000, "p99 ≤ Nchan's p99 at 10,000 viewers, same run (issue 18)"),
    ] {
        let result = match (fan("sse", viewers), fan("nchan", viewers)) {
            (Some((s50, s99)), Some((n50, n99))) => format!(
                "{}: {} vs {} ({:.2}×; p50 {} vs {})",
                verdict(s99 <= n99),
                ms(s99),
                ms(n99),
                s99 / n99,
                ms(s50),
                ms(n50)
            ),
            _ => unmeasured(),
        };
        if viewers == 10_000 {
            let within = match (fan("sse", viewers), fan("nchan", viewers)) {
                (Some((s50, s99)), Some((n50, n99))) => format!(
                    "{}: p99 {} vs {} ({:.2}×), p50 {} vs {} ({:.2}×)",
                    verdict(s99 <= 1.5 * n99 && complete(viewers)),
                    ms(s99),
                    ms(n99),
                    s99 / n99,
                    ms(s50),
                    ms(n50),
                    s50 / n50
                ),
                _ => unmeasured(),
            };
            out.push(("within 1.5× of Nchan at 10,000 viewers".into(), within));
        }
        out.push((goal.into(), result));
    }

    // Against the seed.
    let mut versus = Vec::new();
    let mut all_met = true;
    for viewers in [1, 100, 1000] {
        if let (Some((s50, _)), Some((p50, _))) = (fan("sse", viewers), fan("seed", viewers)) {
            let ratio = p50 / s50;
            all_met &= ratio >= 10.0;
            versus.push(format!("{ratio:.0}× at {} (p50 {} vs {})", thousands(viewers), ms(s50), ms(p50)));
        }
    }
    out.push((
        "≥ 10× lower latency than the seed".into(),
        if versus.is_empty() { unmeasured() } else { format!("{}: {}", verdict(all_met), versus.join(", ")) },
    ));
    let mut load = Vec::new();
    let mut load_met = true;
    if let Some(i) = &s.idle {
        if let Some(seed) = i.seed_all {
            let ratio = seed / i.with_all.max(1e-9);
            load_met &= ratio >= 10.0;
            let cpu = match (i.mongod_cpu, i.seed_mongod_cpu) {
                (Some(a), Some(b)) => format!("; MongoDB's CPU {a:.1} % vs {b:.1} %"),
                _ => String::new(),
            };
            load.push(format!(
                "idle with {} viewers {} vs {} commands/s ({ratio:.0}× fewer){cpu}",
                thousands(i.viewers),
                figure(i.with_all),
                figure(seed)
            ));
        }
    }
    if let Some(r) = &s.small_replay {
        if let Some(seed) = r.seed_per_line {
            let ratio = seed / r.sse_per_line.max(1e-9);
            load_met &= ratio >= 10.0;
            load.push(format!(
                "replay {:.3} vs {:.3} commands per line ({ratio:.0}× fewer)",
                r.sse_per_line, seed
            ));
        }
    }
    out.push((
        "≥ 10× lower MongoDB load than the seed".into(),
        if load.is_empty() { unmeasured() } else { format!("{}: {}", verdict(load_met), load.join("; ")) },
    ));
    out.push((
        "≥ 10× lower replay time than the seed".into(),
        match &s.small_replay {
            Some(SmallReplay { lines, sse_secs, seed_secs: Some(seed), .. }) => {
                let ratio = seed / sse_secs;
                format!(
                    "{}: {} lines in {:.3} s vs {:.1} s ({ratio:.0}×)",
                    verdict(ratio >= 10.0),
                    thousands(*lines),
                    sse_secs,
                    seed
                )
            }
            _ => unmeasured(),
        },
    ));

    // Replay, memory, idle cost.
    out.push((
        "≥ 100,000 lines/s replay".into(),
        match s.replay {
            Some((rate, complete, lines)) => format!(
                "{}: {} lines/s ({} lines{})",
                verdict(rate >= 100_000.0 && complete),
                figure(rate),
                thousands(lines),
                if complete { "" } else { ", INCOMPLETE" }
            ),
            None => unmeasured(),
        },
    ));
    let kib = |x: f64| format!("{x:.1} KiB");
    out.push((
        "≤ 20 KiB per idle stream (HTTP/1.1)".into(),
        s.memory_h1.map_or_else(unmeasured, |m| format!("{}: {}", verdict(m <= 20.0), kib(m))),
    ));
    out.push((
        "≤ 10 KiB per idle stream, HTTP/1.1 (issue 18)".into(),
        s.memory_h1.map_or_else(unmeasured, |m| format!("{}: {}", verdict(m <= 10.0), kib(m))),
    ));
    out.push((
        "≤ 10 KiB per idle stream, HTTP/2 (issue 18)".into(),
        s.memory_h2.map_or_else(unmeasured, |(m, c, k)| {
            format!(
                "{}: {} ({} connections × {} streams)",
                verdict(m <= 10.0),
                kib(m),
                thousands(c),
                thousands(k)
            )
        }),
    ));
    out.push((
        "MongoDB commands/s with 1,000 idle viewers independent of viewers".into(),
        match &s.idle {
            Some(i) => {
                let extra = i.with - i.none;
                format!(
                    "{}: {} /s without heartbeats with {} viewers, {} with none",
                    verdict(extra <= 0.5 + 0.1 * i.none),
                    figure(i.with),
                    thousands(i.viewers),
                    figure(i.none)
                )
            }
            None => unmeasured(),
        },
    ));

    // Issue 18's other goals, and issue 17's figure.
    out.push((
        "append: last 10 requests within 1.2× of the first 10 (issue 18)".into(),
        match s.growth {
            Some((first, last, requests, lines)) => {
                let ratio = last / first.max(1e-9);
                format!(
                    "{}: {} → {} ({ratio:.2}×; {requests} requests of 1,000 lines, log at {} lines)",
                    verdict(ratio <= 1.2),
                    ms(first),
                    ms(last),
                    thousands(lines as usize)
                )
            }
            None => unmeasured(),
        },
    ));
    out.push((
        format!("live delivery while {} streams open: p99 ≤ {} (issue 18)", "10,000", ms(BURST_P99_MS)),
        match s.burst {
            Some((p50, p99, before, streams)) => format!(
                "{}: p99 {} (p50 {}; before the burst p99 {}; {} streams opening)",
                verdict(p99 <= BURST_P99_MS),
                ms(p99),
                ms(p50),
                ms(before),
                thousands(streams)
            ),
            None => unmeasured(),
        },
    ));
    out.push((
        "redaction cost (issue 17; a figure, no target)".into(),
        match s.redact {
            Some((with, without, patterns)) => format!(
                "{} vs {} lines/s after the first line with {patterns} patterns vs none ({:.2}×)",
                figure(with),
                figure(without),
                with / without.max(1e-9)
            ),
            None => unmeasured(),
        },
    ));
    out
}

/// The p99 of live delivery during an open burst that counts as "never waits behind backlog
/// reads": well under one backlog `find` of the long log on the test server.
pub const BURST_P99_MS: f64 = 50.0;

pub fn render(title: &str, preamble: &[String], report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## {title}\n");
    for line in preamble {
        let _ = writeln!(out, "{line}\n");
    }
    let _ = writeln!(
        out,
        "| Scenario | Measure | sse-logs | seed (Sanic, polling) | Nchan | Target | Verdict |\n|---|---|---|---|---|---|---|"
    );
    for r in &report.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            r.scenario, r.measure, r.sse, r.seed, r.nchan, r.target, r.verdict
        );
    }
    let _ = writeln!(out, "\n### Targets (from this run's figures)\n\n| Target | Result |\n|---|---|");
    for (target, result) in targets(&report.summary) {
        let _ = writeln!(out, "| {target} | {result} |");
    }
    if !report.notes.is_empty() {
        let _ = writeln!(out, "\nNotes:\n");
        for n in &report.notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_spreads() {
        let r = Runs::of([3.0, 1.0, 2.0]);
        assert_eq!(r.median(), 2.0);
        assert_eq!(r.show(), "2.00 (1.00–3.00)");
        assert_eq!(Runs::of([1.0, 4.0]).median(), 2.5);
        assert_eq!(Runs::of([5.0]).show(), "5.00");
        assert!(Runs::of([f64::NAN]).median().is_nan());
        assert_eq!(
            pair(&Runs::of([1.0, 2.0, 3.0]), &Runs::of([10.0, 20.0, 30.0])),
            "2.00 / 20.0 (1.00–3.00 / 10.0–30.0)"
        );
        assert_eq!(pair(&Runs::of([1.0]), &Runs::of([10.0])), "1.00 / 10.0");
        assert_eq!(
            Runs::of([25.0, 26.0, 27.0]).show_unit(&|x| format!("{x:.1}"), " KiB"),
            "26.0 KiB (25.0–27.0)"
        );
    }

    #[test]
    fn runs_notes() {
        assert_eq!(runs_note(3, 3, 3), "");
        assert_eq!(runs_note(1, 1, 3), " (1 run)");
        assert_eq!(runs_note(2, 3, 3), " (2 of 3 runs)");
        assert_eq!(runs_note(1, 1, 1), "");
    }

    #[test]
    fn targets_cover_every_goal_even_when_nothing_ran() {
        let t = targets(&Summary::default());
        assert_eq!(t.len(), 17);
        assert!(t.iter().all(|(_, r)| r == "not measured in this run"));
    }

    #[test]
    fn targets_are_checked_on_the_figures() {
        let mut s = Summary::default();
        s.fanout.insert(("sse", 1), (1.0, 2.0));
        s.fanout.insert(("sse", 10_000), (90.0, 100.0));
        s.fanout.insert(("nchan", 10_000), (80.0, 90.0));
        s.growth = Some((30.0, 33.0, 100, 100_000));
        s.memory_h2 = Some((12.0, 100, 100));
        let t: BTreeMap<String, String> = targets(&s).into_iter().collect();
        assert!(t["p50 ≤ 2 ms with 1 viewer"].starts_with("**met**"));
        assert!(t["p50 ≤ 0.8 ms with 1 viewer (issue 18)"].starts_with("**MISSED**"));
        assert!(t["within 1.5× of Nchan at 10,000 viewers"].starts_with("**met**"));
        assert!(t["p99 ≤ Nchan's p99 at 10,000 viewers, same run (issue 18)"].starts_with("**MISSED**"));
        assert!(t["append: last 10 requests within 1.2× of the first 10 (issue 18)"].starts_with("**met**"));
        assert!(t["≤ 10 KiB per idle stream, HTTP/2 (issue 18)"].starts_with("**MISSED**"));
    }
}

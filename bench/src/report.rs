//! Figures of a run: every measurement as a [`Record`] (written raw to JSON), summarised
//! as the median and spread over repeats in terminal tables and an SVG chart.

use crate::procstat::ProcDelta;
use crate::workloads::{Latency, PhaseResult};
use serde::Serialize;
use std::fmt::Write as _;

/// One measurement: a workload on a system, in one repeat.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub system: String,
    pub workload: String,
    pub repeat: usize,
    pub streams: usize,
    pub queue_depth: usize,
    /// The headline figure, in `unit`.
    pub value: f64,
    pub unit: &'static str,
    pub phase: Option<PhaseResult>,
    /// What each process of the system did during the measurement.
    pub procs: Vec<ProcDelta>,
    /// Loopback bytes other than the bench's own NFS traffic, per file byte written.
    pub net_bytes_per_byte: Option<f64>,
    /// Bytes the system's processes sent to storage, per file byte written.
    pub disk_bytes_per_byte: Option<f64>,
    /// CPU seconds of the system's processes (the bench excluded) per GiB moved.
    pub cpu_secs_per_gib: Option<f64>,
    /// Anything else the workload measured (resync, steady run), by name.
    pub extra: Vec<(String, f64)>,
}

impl Record {
    /// A record of one figure with nothing else measured (one stream, one request in
    /// flight, first repeat).
    pub fn new(system: &str, workload: &str, value: f64, unit: &'static str) -> Record {
        Record {
            system: system.to_string(),
            workload: workload.to_string(),
            repeat: 0,
            streams: 1,
            queue_depth: 1,
            value,
            unit,
            phase: None,
            procs: vec![],
            net_bytes_per_byte: None,
            disk_bytes_per_byte: None,
            cpu_secs_per_gib: None,
            extra: vec![],
        }
    }
}

/// Every record of a run, in order.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub profile: String,
    pub records: Vec<Record>,
}

/// Median and range of a list of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Spread {
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[v.len() - 1],
            n: v.len(),
        })
    }

    /// "412" or "412 (398-430)" when there are several repeats.
    pub fn show(&self) -> String {
        if self.n > 1 {
            format!(
                "{} ({}-{})",
                fmt_num(self.median),
                fmt_num(self.min),
                fmt_num(self.max)
            )
        } else {
            fmt_num(self.median)
        }
    }
}

/// A number with as many digits as it deserves.
pub fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

impl Report {
    /// Systems and workloads in the order they first appear.
    fn axes(&self) -> (Vec<&str>, Vec<(&str, &'static str)>) {
        let mut systems: Vec<&str> = Vec::new();
        let mut workloads: Vec<(&str, &'static str)> = Vec::new();
        for r in &self.records {
            if !systems.contains(&r.system.as_str()) {
                systems.push(&r.system);
            }
            if !workloads.iter().any(|(w, _)| *w == r.workload) {
                workloads.push((&r.workload, r.unit));
            }
        }
        (systems, workloads)
    }

    fn of<'a>(&'a self, system: &'a str, workload: &'a str) -> impl Iterator<Item = &'a Record> {
        self.records
            .iter()
            .filter(move |r| r.system == system && r.workload == workload)
    }

    /// The spread of `f` over the repeats of (system, workload).
    pub fn spread(
        &self,
        system: &str,
        workload: &str,
        f: impl Fn(&Record) -> Option<f64>,
    ) -> Option<Spread> {
        let values: Vec<f64> = self.of(system, workload).filter_map(f).collect();
        Spread::of(&values)
    }

    /// One table: a row per workload, a column per system, `f` of each record.
    fn table(&self, title: &str, f: impl Fn(&Record) -> Option<f64>, unit_in_row: bool) -> String {
        let (systems, workloads) = self.axes();
        let mut rows: Vec<Vec<String>> = Vec::new();
        for (w, unit) in &workloads {
            let cells: Vec<String> = systems
                .iter()
                .map(|s| self.spread(s, w, &f).map_or("-".into(), |x| x.show()))
                .collect();
            if cells.iter().all(|c| c == "-") {
                continue;
            }
            let label = if unit_in_row {
                format!("{w} ({unit})")
            } else {
                (*w).to_string()
            };
            rows.push(std::iter::once(label).chain(cells).collect());
        }
        if rows.is_empty() {
            return String::new();
        }
        let header: Vec<String> = std::iter::once(title.to_string())
            .chain(systems.iter().map(|s| s.to_string()))
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|i| {
                rows.iter()
                    .map(|r| r[i].chars().count())
                    .chain(std::iter::once(header[i].chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in std::iter::once(&header).chain(rows.iter()) {
            for (i, cell) in row.iter().enumerate() {
                if i == 0 {
                    let _ = write!(out, "{cell:<w$}", w = widths[0]);
                } else {
                    let _ = write!(out, "  {cell:>w$}", w = widths[i]);
                }
            }
            out.push('\n');
        }
        out
    }

    /// The terminal report: figures, latencies, costs.
    pub fn tables(&self) -> String {
        let lat = |f: fn(&Latency) -> u32| {
            move |r: &Record| r.phase.as_ref().map(|p| f64::from(f(&p.latency)) / 1000.0)
        };
        type Column = Box<dyn Fn(&Record) -> Option<f64>>;
        let columns: [(&str, Column); 6] = [
            ("latency p50 (ms)", Box::new(lat(|l| l.p50_us))),
            ("latency p99 (ms)", Box::new(lat(|l| l.p99_us))),
            (
                "CPU s per GiB (servers+client)",
                Box::new(|r| r.cpu_secs_per_gib),
            ),
            (
                "network bytes per byte written",
                Box::new(|r| r.net_bytes_per_byte),
            ),
            (
                "disk bytes per byte written",
                Box::new(|r| r.disk_bytes_per_byte),
            ),
            (
                "bytes passed to write calls per byte written",
                Box::new(written_per_byte),
            ),
        ];
        let mut out = self.table("workload", |r| Some(r.value), true);
        for (title, f) in columns {
            out += "\n";
            out += &self.table(title, f, false);
        }
        out += "\n";
        out += &self.process_table();
        out
    }

    /// CPU seconds per GiB of each process for the byte workloads, and peak memory.
    fn process_table(&self) -> String {
        let mut out = String::from("per process: CPU s per GiB written or read; peak RSS MiB\n");
        let (systems, workloads) = self.axes();
        for s in &systems {
            let mut names: Vec<String> = Vec::new();
            for r in self.records.iter().filter(|r| r.system == *s) {
                for p in &r.procs {
                    if !names.contains(&p.name) {
                        names.push(p.name.clone());
                    }
                }
            }
            for (w, _) in &workloads {
                let recs: Vec<&Record> = self.of(s, w).collect();
                let Some(first) = recs.first() else { continue };
                let Some(phase) = &first.phase else { continue };
                if phase.bytes < (64 << 20) {
                    continue;
                }
                let mut line = format!("  {s} · {w}:");
                for n in &names {
                    let per_gib = self.spread(s, w, |r| {
                        let p = r.procs.iter().find(|p| &p.name == n)?;
                        let gib = r.phase.as_ref()?.bytes as f64 / (1u64 << 30) as f64;
                        Some(p.cpu_secs / gib)
                    });
                    if let Some(x) = per_gib {
                        let _ = write!(line, " {n} {}", fmt_num(x.median));
                    }
                }
                out += &line;
                out.push('\n');
            }
            let mut line = format!("  {s} · peak RSS:");
            for n in &names {
                let peak = self
                    .records
                    .iter()
                    .filter(|r| r.system == *s)
                    .flat_map(|r| r.procs.iter().filter(|p| &p.name == n))
                    .map(|p| p.peak_rss_bytes)
                    .max()
                    .unwrap_or(0);
                let _ = write!(line, " {n} {}", peak >> 20);
            }
            out += &line;
            out.push('\n');
        }
        out
    }

    /// A Markdown table of the headline figures (for the README).
    pub fn markdown(&self) -> String {
        let (systems, workloads) = self.axes();
        let mut out = String::from("| workload |");
        for s in &systems {
            let _ = write!(out, " {s} |");
        }
        out += "\n| --- |";
        for _ in &systems {
            out += " --- |";
        }
        out.push('\n');
        for (w, unit) in &workloads {
            let _ = write!(out, "| {w} ({unit}) |");
            for s in &systems {
                let cell = self
                    .spread(s, w, |r| Some(r.value))
                    .map_or("-".into(), |x| x.show());
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
        out
    }

    /// An SVG chart: one panel per workload, a bar per system (the median, with a line for
    /// the spread), each panel on its own scale.
    pub fn svg(&self) -> String {
        const COLORS: [&str; 8] = [
            "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f",
        ];
        let (systems, workloads) = self.axes();
        let (label_w, bar_w, bar_h, gap) = (170.0, 520.0, 16.0, 34.0);
        let panel_h = bar_h * systems.len() as f64 + gap;
        // Room for the longest label: "745994 (568121-849506)" beside a full-length bar.
        let width = label_w + bar_w + 190.0;
        let legend_h = 24.0;
        let height = legend_h + panel_h * workloads.len() as f64 + 10.0;
        let mut svg = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        let mut x = 10.0;
        for (i, s) in systems.iter().enumerate() {
            let _ = writeln!(
                svg,
                "<rect x=\"{x}\" y=\"6\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"16\">{}</text>",
                COLORS[i % COLORS.len()],
                x + 16.0,
                escape(s)
            );
            x += 30.0 + 7.0 * s.len() as f64;
        }
        for (wi, (w, unit)) in workloads.iter().enumerate() {
            let top = legend_h + panel_h * wi as f64;
            let _ = writeln!(
                svg,
                "<text x=\"10\" y=\"{}\" font-weight=\"bold\">{} ({})</text>",
                top + 14.0,
                escape(w),
                escape(unit)
            );
            let spreads: Vec<Option<Spread>> = systems
                .iter()
                .map(|s| self.spread(s, w, |r| Some(r.value)))
                .collect();
            let scale = spreads
                .iter()
                .flatten()
                .map(|s| s.max)
                .fold(0.0, f64::max)
                .max(1e-9);
            for (si, sp) in spreads.iter().enumerate() {
                let y = top + 20.0 + bar_h * si as f64;
                let Some(sp) = sp else { continue };
                let len = bar_w * sp.median / scale;
                let _ = writeln!(
                    svg,
                    "<rect x=\"{label_w}\" y=\"{y}\" width=\"{len:.1}\" height=\"{}\" fill=\"{}\"/>",
                    bar_h - 3.0,
                    COLORS[si % COLORS.len()]
                );
                if sp.n > 1 {
                    let (a, b) = (
                        label_w + bar_w * sp.min / scale,
                        label_w + bar_w * sp.max / scale,
                    );
                    let mid = y + (bar_h - 3.0) / 2.0;
                    let _ = writeln!(
                        svg,
                        "<line x1=\"{a:.1}\" y1=\"{mid:.1}\" x2=\"{b:.1}\" y2=\"{mid:.1}\" stroke=\"black\"/>"
                    );
                }
                let _ = writeln!(
                    svg,
                    "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
                    label_w + len.max(bar_w * sp.max / scale) + 6.0,
                    y + bar_h - 5.0,
                    sp.show()
                );
                let _ = writeln!(
                    svg,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\">{}</text>",
                    label_w - 6.0,
                    y + bar_h - 5.0,
                    escape(systems[si])
                );
            }
        }
        svg += "</svg>\n";
        svg
    }
}

/// Bytes the system's processes passed to write calls (files), per file byte written.
fn written_per_byte(r: &Record) -> Option<f64> {
    r.disk_bytes_per_byte?;
    let bytes = r.phase.as_ref()?.bytes as f64;
    let written: u64 = r
        .procs
        .iter()
        .filter(|p| p.name != "bench")
        .map(|p| p.written_bytes)
        .sum();
    (written > 0).then(|| written as f64 / bytes)
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn record(system: &str, workload: &str, value: f64) -> Record {
        Record::new(system, workload, value, "MiB/s")
    }

    #[test]
    fn median_and_spread_over_repeats() {
        let s = Spread::of(&[3.0, 1.0, 2.0, 10.0]).expect("values");
        assert_eq!((s.median, s.min, s.max, s.n), (2.5, 1.0, 10.0, 4));
        assert_eq!(Spread::of(&[]), None);
    }

    #[test]
    fn tables_and_chart_name_every_system_and_workload() {
        let mut r = Report::default();
        for v in [100.0, 120.0, 110.0] {
            r.records.push(record("a <x>", "seq write", v));
        }
        r.records.push(record("b", "seq read", 5.0));
        let t = r.tables();
        assert!(t.contains("110 (100-120)"), "{t}");
        assert!(t.contains("seq read (MiB/s)"), "{t}");
        let svg = r.svg();
        assert!(
            svg.starts_with("<svg") && svg.contains("a &lt;x&gt;"),
            "{svg}"
        );
        assert!(
            r.markdown()
                .contains("| seq write (MiB/s) | 110 (100-120) | - |")
        );
    }
}

//! The one table: rows gathered by the parts, printed to the terminal and written into
//! docs/benchmarks.md with the machine and the command that reproduces it. The notes of
//! docs/benchmarks.md (analysis, profiles) live below a marker and are kept on rewrite.

use std::fmt::Write as _;
use std::path::Path;

use super::util::BenchResult;

/// One figure. `ratio` is the figure over its ceiling measured in the same run (higher is
/// better), when the figure has a ceiling.
#[derive(Debug, Clone)]
pub struct Row {
    pub part: &'static str,
    pub what: String,
    pub value: String,
    pub ceiling: String,
    pub ratio: Option<f64>,
    pub goal: String,
    pub met: Option<bool>,
}

impl Row {
    pub fn new(part: &'static str, what: impl Into<String>, value: impl Into<String>) -> Row {
        Row {
            part,
            what: what.into(),
            value: value.into(),
            ceiling: String::new(),
            ratio: None,
            goal: String::new(),
            met: None,
        }
    }

    pub fn ceiling(mut self, ceiling: impl Into<String>, ratio: f64) -> Row {
        self.ceiling = ceiling.into();
        self.ratio = Some(ratio);
        self
    }

    pub fn goal(mut self, goal: impl Into<String>, met: bool) -> Row {
        self.goal = goal.into();
        self.met = Some(met);
        self
    }

    fn cells(&self) -> [String; 7] {
        [
            self.part.to_string(),
            self.what.clone(),
            self.value.clone(),
            self.ceiling.clone(),
            self.ratio.map(|r| format!("{r:.2}")).unwrap_or_default(),
            self.goal.clone(),
            match self.met {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => String::new(),
            },
        ]
    }
}

const HEADER: [&str; 7] = ["#", "measure", "figure", "ceiling", "ratio", "goal", "met"];

pub fn text_table(rows: &[Row]) -> String {
    let cells: Vec<[String; 7]> = rows.iter().map(Row::cells).collect();
    let mut width = HEADER.map(str::len);
    for r in &cells {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |r: &[String]| {
        let mut s = String::new();
        for (c, w) in r.iter().zip(width) {
            let _ = write!(s, "{c:<w$}  ");
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&HEADER.map(String::from));
    out.push_str(&line(&width.map(|w| "-".repeat(w))));
    for r in &cells {
        out.push_str(&line(r));
    }
    out
}

fn markdown_table(rows: &[Row]) -> String {
    let mut out = format!("| {} |\n", HEADER.join(" | "));
    out.push_str(&format!("|{}\n", "---|".repeat(HEADER.len())));
    for r in rows {
        out.push_str(&format!("| {} |\n", r.cells().join(" | ")));
    }
    out
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "- CPU: {cpu}, {cores} cores (`nproc`)\n- memory: {:.1} GiB\n",
        mem_kb as f64 / 1024.0 / 1024.0
    )
}

/// The hand-written analysis below this line survives a rewrite of the figures above it.
pub const NOTES_MARKER: &str =
    "<!-- notes: everything below is kept when the bench rewrites this file -->";

pub fn write_markdown(
    path: &Path,
    rows: &[Row],
    extra: &[String],
    command: &str,
) -> BenchResult<()> {
    let notes = std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.split_once(NOTES_MARKER).map(|(_, n)| n.to_string()))
        .unwrap_or_else(|| "\n".into());
    let date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let mut out = format!(
        "# Benchmarks\n\n\
         Every figure is measured against a ceiling measured on the same machine in the same\n\
         run (ratio = figure / ceiling for throughput, higher is better), because these machines\n\
         are noisy. Reproduce with:\n\n    {command}\n\n\
         (`BENCH_QUICK=1` shrinks every size for a smoke run; `BENCH_ONLY=sync,ingest,drop,latency,big,compact`\n\
         runs some parts; `BENCH_SYNC=0:8,0:32` runs only those sync configurations (latency ms:concurrency).\n\
         The pure parts have criterion benches: `cargo bench --bench pure`.)\n\n\
         ## Last run: {date}\n\n{}\n",
        machine()
    );
    out.push_str(&markdown_table(rows));
    if !extra.is_empty() {
        out.push('\n');
        for e in extra {
            out.push_str(&format!("- {e}\n"));
        }
    }
    out.push('\n');
    out.push_str(NOTES_MARKER);
    out.push_str(&notes);
    std::fs::write(path, out)?;
    Ok(())
}

//! Command-line options shared by the scenario binaries, and their Markdown output: one
//! section per scenario with the date, the machine, the command that reproduces it, and tables
//! of our figure, each peer's and the ratio.

use std::fmt::Write as _;

/// Options every scenario binary takes.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Smoke mode for CI: tiny sizes and durations; checks that the scenario runs end to end,
    /// its numbers mean nothing.
    pub quick: bool,
}

impl Options {
    /// `--quick` on the command line or `EDGECERT_BENCH_QUICK=1`.
    pub fn from_args() -> Options {
        let quick = std::env::args().any(|arg| arg == "--quick")
            || std::env::var("EDGECERT_BENCH_QUICK").is_ok_and(|value| value == "1");
        Options { quick }
    }

    /// `full` normally, `quick` in quick mode.
    pub fn pick<T>(&self, full: T, quick: T) -> T {
        if self.quick { quick } else { full }
    }
}

/// A Markdown table.
#[derive(Debug, Clone)]
pub struct Table {
    title: String,
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table titled `title` with these column headers.
    pub fn new(title: &str, headers: &[&str]) -> Table {
        Table {
            title: title.to_owned(),
            headers: headers.iter().map(|header| (*header).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (as many cells as headers).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        if !self.title.is_empty() {
            let _ = writeln!(out, "**{}**\n", self.title);
        }
        let _ = writeln!(out, "| {} |", self.headers.join(" | "));
        let _ = writeln!(
            out,
            "|{}|",
            self.headers
                .iter()
                .map(|_| "---")
                .collect::<Vec<_>>()
                .join("|")
        );
        for row in &self.rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out
    }
}

/// One scenario's results.
#[derive(Debug, Clone)]
pub struct Section {
    title: String,
    scenario: String,
    options: Options,
    tables: Vec<Table>,
    notes: Vec<String>,
}

impl Section {
    /// A section for `scenario` (the argument `bench.sh` takes, e.g. `handshakes`).
    pub fn new(title: &str, scenario: &str, options: Options) -> Section {
        Section {
            title: title.to_owned(),
            scenario: scenario.to_owned(),
            options,
            tables: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a table.
    pub fn table(&mut self, table: Table) {
        self.tables.push(table);
    }

    /// Adds a paragraph after the tables (method, caveats, what a missed target means).
    pub fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// The section as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## {}\n", self.title);
        if self.options.quick {
            let _ = writeln!(
                out,
                "_Quick mode: a smoke run with tiny sizes; the numbers mean nothing._\n"
            );
        }
        let _ = writeln!(
            out,
            "- Date: {}\n- Machine: {}\n- Command: `bash integration/scripts/bench.sh {}{}`\n",
            crate::machine::today(),
            crate::machine::describe(),
            if self.options.quick { "--quick " } else { "" },
            self.scenario
        );
        for table in &self.tables {
            let _ = writeln!(out, "{}", table.markdown());
        }
        for note in &self.notes {
            let _ = writeln!(out, "{note}\n");
        }
        out
    }

    /// Prints the section, and writes it to `$EDGECERT_BENCH_OUT/<scenario>.md` when that
    /// directory is set (bench.sh sets it).
    pub fn publish(&self) -> anyhow::Result<()> {
        let markdown = self.markdown();
        println!("{markdown}");
        if let Some(dir) = std::env::var_os("EDGECERT_BENCH_OUT") {
            let dir = std::path::PathBuf::from(dir);
            std::fs::create_dir_all(&dir)?;
            std::fs::write(dir.join(format!("{}.md", self.scenario)), markdown)?;
        }
        Ok(())
    }
}

/// `ours / peer` as `1.23x` (`-` when the peer's figure is zero).
pub fn ratio(ours: f64, peer: f64) -> String {
    if peer > 0.0 {
        format!("{:.2}x", ours / peer)
    } else {
        "-".to_owned()
    }
}

/// A rate or count with thousands separators and no decimals (`12,345`).
pub fn whole(value: f64) -> String {
    let rounded = value.round() as i64;
    let digits = rounded.unsigned_abs().to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if rounded < 0 { format!("-{out}") } else { out }
}

/// Milliseconds with one decimal.
pub fn millis(duration: std::time::Duration) -> String {
    format!("{:.1} ms", duration.as_secs_f64() * 1000.0)
}

/// The `q`-quantile (0..=1) of `samples` (sorted here), or zero when empty.
pub fn quantile(samples: &mut [std::time::Duration], q: f64) -> std::time::Duration {
    if samples.is_empty() {
        return std::time::Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((samples.len() as f64 - 1.0) * q).round() as usize;
    samples[rank.min(samples.len() - 1)]
}

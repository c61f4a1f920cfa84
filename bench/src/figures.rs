//! The figures each benchmark hands back, and the summary `all` prints:
//! every figure beside its target and beside the latest figure recorded in
//! `docs/benchmarks.md`, flagging any that got more than 10% worse.
//!
//! The record is the table under the `## Figures` heading of that file, one
//! row per figure: `| key | value | ... |`; only the first two cells are read.

use std::collections::HashMap;
use std::path::Path;

/// How much worse than the record a figure may get before it is flagged.
const REGRESSION: f64 = 0.10;

/// What a figure must reach.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// At least this much (higher is better).
    AtLeast(f64),
    /// At most this much (lower is better).
    AtMost(f64),
}

/// One measured figure.
#[derive(Debug, Clone)]
pub struct Figure {
    /// Stable name, as in the record: `benchmark.figure`.
    pub key: String,
    pub value: f64,
    pub unit: &'static str,
    pub target: Option<Target>,
    /// For figures without a target: whether a larger value is better.
    pub higher_is_better: bool,
}

impl Figure {
    /// A figure with a target.
    pub fn targeted(key: &str, value: f64, unit: &'static str, target: Target) -> Self {
        Self {
            key: key.to_owned(),
            value,
            unit,
            target: Some(target),
            higher_is_better: matches!(target, Target::AtLeast(_)),
        }
    }

    /// A figure that must reach at least `bound` (higher is better).
    pub fn at_least(key: &str, value: f64, unit: &'static str, bound: f64) -> Self {
        Self::targeted(key, value, unit, Target::AtLeast(bound))
    }

    /// A figure that must stay at or under `bound` (lower is better).
    pub fn at_most(key: &str, value: f64, unit: &'static str, bound: f64) -> Self {
        Self::targeted(key, value, unit, Target::AtMost(bound))
    }

    /// A figure shown for context, compared with the record only.
    pub fn plain(key: &str, value: f64, unit: &'static str, higher_is_better: bool) -> Self {
        Self {
            key: key.to_owned(),
            value,
            unit,
            target: None,
            higher_is_better,
        }
    }

    fn met(&self) -> Option<bool> {
        match self.target? {
            Target::AtLeast(t) => Some(self.value >= t),
            Target::AtMost(t) => Some(self.value <= t),
        }
    }

    /// The change against `recorded`, signed so that positive is better.
    fn gain(&self, recorded: f64) -> Option<f64> {
        if recorded == 0.0 || !recorded.is_finite() {
            return None;
        }
        let change = (self.value - recorded) / recorded.abs();
        Some(if self.higher_is_better {
            change
        } else {
            -change
        })
    }
}

/// The figures recorded in `path` (the `## Figures` table).
pub fn recorded(path: &Path) -> HashMap<String, f64> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!(
                "bench: cannot read the record {}: {e}; nothing to compare with (run from the repository's root, or pass --record)",
                path.display()
            );
            return HashMap::new();
        }
    };
    let mut out = HashMap::new();
    let mut inside = false;
    for line in text.lines() {
        if line.starts_with("## ") {
            inside = line.trim() == "## Figures";
            continue;
        }
        if !inside || !line.starts_with('|') {
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if let (Some(key), Some(value)) = (cells.get(1), cells.get(2))
            && let Ok(value) = value.replace(',', "").parse::<f64>()
        {
            out.insert((*key).to_owned(), value);
        }
    }
    out
}

fn show(value: f64) -> String {
    if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// Prints the summary table; returns how many figures got worse than the
/// record by more than 10%.
pub fn print_summary(figures: &[Figure], recorded: &HashMap<String, f64>) -> usize {
    println!(
        "{:<40}{:>12} {:<9}{:>14}{:>6}{:>12}{:>9}",
        "figure", "value", "unit", "target", "met", "recorded", "change"
    );
    let mut worse = 0;
    for f in figures {
        let target = match f.target {
            Some(Target::AtLeast(t)) => format!(">= {}", show(t)),
            Some(Target::AtMost(t)) => format!("<= {}", show(t)),
            None => "-".to_owned(),
        };
        let met = match f.met() {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        let old = recorded.get(&f.key).copied();
        let gain = old.and_then(|old| f.gain(old));
        let flag = if gain.is_some_and(|g| g < -REGRESSION) {
            worse += 1;
            "  WORSE"
        } else {
            ""
        };
        println!(
            "{:<40}{:>12} {:<9}{:>14}{:>6}{:>12}{:>9}{flag}",
            f.key,
            show(f.value),
            f.unit,
            target,
            met,
            old.map_or_else(|| "-".to_owned(), show),
            gain.map_or_else(|| "-".to_owned(), |g| format!("{:+.0}%", g * 100.0)),
        );
    }
    worse
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_is_read_from_the_figures_table_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.md");
        std::fs::write(
            &path,
            "# x\n| store.a | 9 |\n## Figures\n| key | value |\n|---|---|\n| store.a | 1,234.5 | writes/s |\n## Other\n| store.b | 3 |\n",
        )
        .unwrap();
        let r = recorded(&path);
        assert_eq!(r.get("store.a"), Some(&1234.5));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn worse_means_the_wrong_way_for_the_figure() {
        let fast = Figure::targeted("a", 80.0, "/s", Target::AtLeast(50.0));
        assert!(fast.gain(100.0).unwrap() < -REGRESSION);
        let slow = Figure::targeted("b", 12.0, "ms", Target::AtMost(10.0));
        assert!(slow.gain(10.0).unwrap() < -REGRESSION);
        assert!(slow.gain(14.0).unwrap() > 0.0);
        assert_eq!(slow.met(), Some(false));
    }
}

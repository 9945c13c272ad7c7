//! `xdsd history`: the past good sets of a state directory, newest first.

use super::{EXIT_TROUBLE, HistoryArgs, StatusFormat, print};
use crate::daemon::state::{HistoryEntry, StateDir};
use std::process::ExitCode;

/// Lists `--state-dir`'s history.
pub fn history(args: &HistoryArgs) -> ExitCode {
    let listed = StateDir::existing(&args.state_dir).and_then(|state| state.history());
    match listed {
        Ok(entries) => {
            print(&match args.format {
                StatusFormat::Table => table(&entries),
                StatusFormat::Json => {
                    let value = serde_json::to_value(&entries).unwrap_or_default();
                    serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
                }
            });
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xdsd: {e}");
            ExitCode::from(EXIT_TROUBLE)
        }
    }
}

/// One line per set: version, time (UTC), resources, what changed; the
/// newest is the last good set.
fn table(entries: &[HistoryEntry]) -> String {
    if entries.is_empty() {
        return "no sets kept yet (xdsd serve --state-dir DIR keeps the last --history N)\n".into();
    }
    let mut out = String::from("VERSION           SAVED (UTC)           RESOURCES  CHANGE\n");
    for (i, e) in entries.iter().enumerate() {
        let resources: usize = e.resources.values().sum();
        let newest = if i == 0 { "  (last good)" } else { "" };
        out.push_str(&format!(
            "{:<17} {:<21} {:>9}  {}{newest}\n",
            e.version,
            utc(e.saved_at),
            resources,
            e.change
        ));
    }
    out
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, from
/// Howard Hinnant's civil-from-days).
fn utc(seconds: f64) -> String {
    let total = seconds.max(0.0) as i64;
    let (days, rest) = (total.div_euclid(86_400), total.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc() {
        assert_eq!(utc(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400.5), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_796_532_598.7), "2026-12-06T04:49:58Z");
    }

    #[test]
    fn the_newest_set_is_marked_as_the_last_good_one() {
        let entry = |version: &str, change: &str| HistoryEntry {
            version: version.into(),
            saved_at: 0.0,
            resources: [("Cluster".to_string(), 2)].into_iter().collect(),
            change: change.into(),
        };
        let text = table(&[
            entry("b", "Cluster +0 -0 ~1"),
            entry("a", "loaded at start"),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("b ") && lines[1].ends_with("(last good)"));
        assert!(lines[2].contains("loaded at start") && !lines[2].contains("last good"));
    }
}

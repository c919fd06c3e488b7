//! The doctor's output: an aligned screen for people, or a JSON array of
//! `{check, status, message, fix}` for scripts and support tickets. Pure over the checks.

use std::io::Write;

use super::judge::{Check, Status};

pub fn write_text(checks: &[Check], version: &str, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "icsync {version}")?;
    let width = checks.iter().map(|c| c.check.len()).max().unwrap_or(0);
    for c in checks {
        writeln!(
            out,
            "{:<4}  {:<width$}  {}",
            c.status.as_str(),
            c.check,
            c.message
        )?;
        if let Some(fix) = &c.fix {
            writeln!(out, "{:<4}  {:<width$}  -> {fix}", "", "")?;
        }
    }
    let count = |s| checks.iter().filter(|c| c.status == s).count();
    let (fails, warns) = (count(Status::Fail), count(Status::Warn));
    let summary = match (fails, warns) {
        (0, 0) => "all good".to_string(),
        (0, w) => format!("no failures, {w} warning(s)"),
        (f, w) => format!("{f} failure(s), {w} warning(s)"),
    };
    writeln!(out, "{summary}")
}

pub fn write_json(checks: &[Check], out: &mut impl Write) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, checks)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks() -> Vec<Check> {
        vec![
            Check {
                check: "config",
                status: Status::Ok,
                message: "/c/icsync.toml is valid".into(),
                fix: None,
            },
            Check {
                check: "api_key",
                status: Status::Fail,
                message: "/k can be read by other users (mode 644)".into(),
                fix: Some("chmod 600 /k".into()),
            },
        ]
    }

    #[test]
    fn text_puts_the_fix_under_its_check_and_counts_failures() {
        let mut out = Vec::new();
        write_text(&checks(), "0.1.0 (commit abc)", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "icsync 0.1.0 (commit abc)\n\
             ok    config   /c/icsync.toml is valid\n\
             fail  api_key  /k can be read by other users (mode 644)\n\
             \x20              -> chmod 600 /k\n\
             1 failure(s), 0 warning(s)\n"
        );
    }

    #[test]
    fn json_is_an_array_of_check_status_message_fix() {
        let mut out = Vec::new();
        write_json(&checks(), &mut out).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"check": "config", "status": "ok", "message": "/c/icsync.toml is valid", "fix": null},
                {"check": "api_key", "status": "fail",
                 "message": "/k can be read by other users (mode 644)", "fix": "chmod 600 /k"}
            ])
        );
    }
}

//! The conflicts screen's existing-customer pane as text: what is marked, what is left out,
//! and what happens when it does not fit.

use ratatui::text::Line;
use uuid::Uuid;

use super::fixtures::{records, EXISTING};
use crate::store::{ExistingLookup, Record};
use crate::tui::screens::conflicts::existing_pane;
use crate::tui::Theme;

fn alan() -> Record {
    records().swap_remove(2)
}

fn text(lines: &[Line]) -> Vec<String> {
    lines.iter().map(|l| l.to_string()).collect()
}

#[test]
fn differing_fields_carry_the_marker_in_either_theme() {
    for theme in [Theme::PLAIN, Theme::COLOR] {
        let pane = existing_pane(&alan(), Uuid::from_u128(EXISTING), &theme, 100, 20);
        let lines = text(&pane.lines);
        let marked: Vec<_> = lines.iter().filter(|l| l.starts_with(" ≠ ")).collect();
        assert_eq!(marked.len(), 4, "{lines:#?}");
        assert!(lines.iter().any(|l| l.contains("LEGACY-77")));
        // Same address in another case: not marked.
        let email = lines.iter().find(|l| l.contains("email")).unwrap();
        assert!(email.starts_with("   "), "{email}");
        // Empty on both sides: left out.
        assert!(!lines.iter().any(|l| l.contains("source of funds")));
        assert!(pane.footer.unwrap().contains("kyc_status PENDING"));
    }
}

#[test]
fn a_pane_too_short_says_how_many_fields_it_left_out() {
    // Two borders, the header and three lines: two fields and the note.
    let pane = existing_pane(&alan(), Uuid::from_u128(EXISTING), &Theme::PLAIN, 80, 6);
    let lines = text(&pane.lines);
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(lines[3].contains("6 more fields"), "{lines:#?}");
}

#[test]
fn a_customer_gone_from_the_server_is_said_so() {
    let mut r = alan();
    if let Some(e) = r.existing.as_mut() {
        e.lookup = ExistingLookup::NotFound;
    }
    let pane = existing_pane(&r, Uuid::from_u128(EXISTING), &Theme::PLAIN, 80, 10);
    let lines = text(&pane.lines).join("\n");
    assert!(lines.contains("not found on the server"), "{lines}");
    r.existing = None;
    let pane = existing_pane(&r, Uuid::from_u128(EXISTING), &Theme::PLAIN, 80, 10);
    assert!(text(&pane.lines)
        .join("\n")
        .contains("not fetched yet (offline?)"));
}

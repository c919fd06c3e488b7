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
        let pane = existing_pane(&alan(), Uuid::from_u128(EXISTING), &theme, (100, 20), 0);
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
    let pane = existing_pane(
        &alan(),
        Uuid::from_u128(EXISTING),
        &Theme::PLAIN,
        (80, 6),
        0,
    );
    let lines = text(&pane.lines);
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(lines[3].contains("6 more fields: ] scrolls"), "{lines:#?}");
}

#[test]
fn a_scrolled_pane_shows_the_fields_below_and_says_what_is_above() {
    let pane = |offset| {
        text(
            &existing_pane(
                &alan(),
                Uuid::from_u128(EXISTING),
                &Theme::PLAIN,
                (80, 6),
                offset,
            )
            .lines,
        )
    };
    let tall = text(
        &existing_pane(
            &alan(),
            Uuid::from_u128(EXISTING),
            &Theme::PLAIN,
            (80, 20),
            0,
        )
        .lines,
    );
    // Two rows further down, the third field comes first, then the fourth.
    let next = pane(2);
    assert_eq!(next[1..3], tall[3..5], "{next:#?}");
    assert!(next[3].contains("4 more fields"), "{next:#?}");
    // Past the end: it stops with the last two fields on screen and the note pointing up.
    let end = pane(100);
    assert_eq!(end[1..3], tall[tall.len() - 2..], "{end:#?}");
    assert!(
        end.last().unwrap().contains("fields above: [ scrolls back"),
        "{end:#?}"
    );
    assert!(!end.iter().any(|l| l.contains("more fields")), "{end:#?}");
}

#[test]
fn a_customer_gone_from_the_server_is_said_so() {
    let mut r = alan();
    if let Some(e) = r.existing.as_mut() {
        e.lookup = ExistingLookup::NotFound;
    }
    let pane = existing_pane(&r, Uuid::from_u128(EXISTING), &Theme::PLAIN, (80, 10), 0);
    let lines = text(&pane.lines).join("\n");
    assert!(lines.contains("not found on the server"), "{lines}");
    r.existing = None;
    let pane = existing_pane(&r, Uuid::from_u128(EXISTING), &Theme::PLAIN, (80, 10), 0);
    assert!(text(&pane.lines)
        .join("\n")
        .contains("not fetched yet (offline?)"));
}

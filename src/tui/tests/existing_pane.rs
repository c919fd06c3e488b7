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
    // Two borders, the header, three lines (two fields and the note) and the two actions.
    let pane = existing_pane(
        &alan(),
        Uuid::from_u128(EXISTING),
        &Theme::PLAIN,
        (80, 8),
        0,
    );
    let lines = text(&pane.lines);
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert!(lines[3].contains("6 more fields: ] scrolls"), "{lines:#?}");
}

/// Whatever the pane shows of the customer, its last lines say what `U` and `L` do to it:
/// one sends the local fields over it (and asks first), the other sends nothing.
#[test]
fn the_pane_explains_update_and_link_in_a_line_each() {
    let explained = |r: &Record| {
        let lines =
            text(&existing_pane(r, Uuid::from_u128(EXISTING), &Theme::PLAIN, (80, 20), 0).lines);
        lines[lines.len() - 2..].to_vec()
    };
    let want = vec![
        " U send these fields over the existing customer (asks first)".to_string(),
        " L link to the existing customer as it is; send nothing".to_string(),
    ];
    let mut r = alan();
    assert_eq!(explained(&r), want);
    if let Some(e) = r.existing.as_mut() {
        e.lookup = ExistingLookup::NotFound;
    }
    assert_eq!(explained(&r), want);
    r.existing = None;
    assert_eq!(explained(&r), want);
    // Half of 80 columns: said briefly rather than wrapped.
    let narrow =
        text(&existing_pane(&r, Uuid::from_u128(EXISTING), &Theme::PLAIN, (40, 20), 0).lines);
    assert_eq!(
        narrow[narrow.len() - 2..],
        [
            " U send fields over existing (asks)",
            " L link to existing; send nothing"
        ]
    );
}

#[test]
fn a_scrolled_pane_shows_the_fields_below_and_says_what_is_above() {
    let pane = |offset| {
        text(
            &existing_pane(
                &alan(),
                Uuid::from_u128(EXISTING),
                &Theme::PLAIN,
                (80, 8),
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
    // Past the end: it stops with the last two fields on screen and the note pointing up
    // (above the two action lines).
    let end = pane(100);
    assert_eq!(end[1..3], tall[tall.len() - 4..tall.len() - 2], "{end:#?}");
    assert!(
        end[end.len() - 3].contains("fields above: [ scrolls back"),
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

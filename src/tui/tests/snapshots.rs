//! Every screen rendered headless at 80x24 and 120x40 and compared with a reviewed
//! snapshot (`src/tui/tests/snapshots/`). The plain theme is used; the buffer text is what
//! is compared, so colours do not matter here.

use chrono::Duration;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use super::fixtures::{loaded_app, settle, status, t0};
use crate::control::Event;
use crate::tui::app::{App, Incoming};
use crate::tui::{ui, Theme};

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| ui::draw(frame, app, &Theme::PLAIN))
        .unwrap();
    terminal.backend().to_string()
}

fn keys(app: &mut App, keys: &[KeyEvent]) {
    for k in keys {
        let fx = app.handle_key(*k);
        settle(app, fx);
    }
}

fn ch(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn code(c: KeyCode) -> KeyEvent {
    KeyEvent::new(c, KeyModifiers::NONE)
}

fn text(s: &str) -> Vec<KeyEvent> {
    s.chars().map(ch).collect()
}

/// Renders `scenario` at both sizes and compares each with its snapshot.
fn check(name: &str, scenario: impl Fn(&mut App)) {
    for (w, h) in SIZES {
        let mut app = loaded_app(h);
        scenario(&mut app);
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), render(&app, w, h));
    }
}

#[test]
fn dashboard() {
    check("dashboard", |app| {
        // A minute of throughput: the synced count grows a little more each second.
        let mut s = status();
        s.synced -= 60 * 31;
        for sec in -60..=0 {
            s.synced += (sec + 61) as u64 % 23 + 20;
            app.apply(Incoming::Event(Event::Status(s.clone())));
            app.apply(Incoming::Tick(t0() + Duration::seconds(sec)));
        }
    });
}

#[test]
fn dashboard_paused() {
    check("dashboard_paused", |app| {
        let mut s = status();
        s.paused = Some("the API refused the key (401 unauthorized): fix api_key".into());
        app.apply(Incoming::Event(Event::Status(s)));
    });
}

/// Offline with nothing queued: the banner names the host it cannot reach.
#[test]
fn an_unreachable_api_is_offline_by_its_host_even_with_an_empty_queue() {
    let mut app = loaded_app(24);
    let mut s = status();
    s.online = false;
    s.queued = 0;
    s.sending = 0;
    app.apply(Incoming::Event(Event::Status(s)));
    let screen = render(&app, 80, 24);
    assert!(screen.contains(" OFFLINE "), "{screen}");
    assert!(
        screen.contains("cannot reach api.instantcompliance.example; records wait"),
        "{screen}"
    );
}

#[test]
fn dashboard_banners_a_full_disk_and_a_damaged_store() {
    for (flag, banner) in [("disk", "DISK FULL"), ("damage", "STORE DAMAGED")] {
        let mut app = loaded_app(24);
        let mut s = status();
        s.disk_full = flag == "disk";
        s.damaged = flag == "damage";
        s.paused = Some(format!("{banner}: reason"));
        app.apply(Incoming::Event(Event::Status(s)));
        let screen = render(&app, 80, 24);
        assert!(screen.contains(banner), "{screen}");
        assert!(!screen.contains("PAUSED"), "{screen}");
    }
}

#[test]
fn dashboard_without_daemon() {
    check("dashboard_without_daemon", |app| {
        app.apply(Incoming::Disconnected {
            reason: "the daemon closed the connection".into(),
        });
    });
}

#[test]
fn queue() {
    check("queue", |app| keys(app, &[ch('2'), ch('j')]));
}

#[test]
fn queue_filtered() {
    // The title names the state shown, not only a count.
    check("queue_filtered", |app| keys(app, &[ch('2'), ch('f')]));
}

#[test]
fn queue_searching() {
    check("queue_searching", |app| {
        keys(app, &[ch('2'), ch('s'), ch('/')]);
        keys(app, &text("example.com"));
    });
}

#[test]
fn queue_searched() {
    check("queue_searched", |app| {
        keys(app, &[ch('2'), ch('/')]);
        keys(app, &text("hopper"));
        keys(app, &[code(KeyCode::Enter)]);
    });
}

#[test]
fn detail_synced() {
    check("detail_synced", |app| {
        keys(app, &[ch('2'), code(KeyCode::Enter)])
    });
}

#[test]
fn detail_backing_off() {
    check("detail_backing_off", |app| {
        keys(app, &[ch('2'), ch('j'), code(KeyCode::Enter)])
    });
}

#[test]
fn conflicts() {
    check("conflicts", |app| keys(app, &[ch('3'), ch(' ')]));
}

/// On a terminal too short for every field, `]` scrolls the comparison and `[` back; all
/// fitting (80x40 for this record), it does not move; another record starts at the top.
#[test]
fn conflicts_compare_scrolls_only_when_needed_and_resets_on_another_record() {
    let screen = |h: u16, extra: &[KeyEvent]| {
        let mut app = loaded_app(h);
        keys(&mut app, &[ch('3')]);
        // Draw once so the pane knows its room, as the terminal does before any key.
        render(&app, 80, h);
        keys(&mut app, extra);
        render(&app, 80, h)
    };
    let top = screen(18, &[]);
    let scrolled = screen(18, &[ch(']'), ch(']')]);
    assert_ne!(scrolled, top);
    assert!(scrolled.contains("↑ 2 above"), "{scrolled}");
    assert_eq!(screen(18, &[ch(']'), ch(']'), ch('['), ch('[')]), top);
    assert_eq!(screen(18, &[ch(']'), ch(']'), ch('j'), ch('k')]), top);
    assert_eq!(screen(40, &[ch(']'), ch(']')]), screen(40, &[]));
}

#[test]
fn conflicts_existing_not_fetched() {
    check("conflicts_existing_not_fetched", |app| {
        keys(app, &[ch('3'), ch('j')])
    });
}

#[test]
fn detail_conflict() {
    check("detail_conflict", |app| {
        keys(app, &[ch('3'), code(KeyCode::Enter)])
    });
}

/// A value too long for its pane wraps under itself, not back under its label.
#[test]
fn a_wrapped_detail_value_keeps_its_indent() {
    let mut app = loaded_app(24);
    keys(&mut app, &[ch('3'), code(KeyCode::Enter)]);
    let screen = render(&app, 80, 24);
    let lines: Vec<&str> = screen.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains(" error    customer_conflict:"))
        .unwrap_or_else(|| panic!("no error line:\n{screen}"));
    let next = lines[at + 1];
    // The right pane starts after the payload pane (36 columns) and its border.
    let pane: String = next.chars().skip(1 + 36 + 1).collect();
    assert!(pane.starts_with("          alan@example.com"), "{screen}");

    // A payload value too long for its pane wraps under the value, whole: never cut.
    let mut record = app.detail.record().cloned().unwrap();
    let mut body = record.payload.as_map().clone();
    body.insert(
        "email".into(),
        "alan.mathison.turing@bletchley-park.example.org".into(),
    );
    record.payload = crate::store::Payload::parse(&serde_json::Value::Object(body)).unwrap();
    app.detail.loaded(record.id, record);
    let screen = render(&app, 80, 24);
    let lines: Vec<&str> = screen.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("│ email           alan.mathison.tur│"))
        .unwrap_or_else(|| panic!("no email line:\n{screen}"));
    assert!(
        lines[at + 1].starts_with("\"│                 ing@bletchley-par│"),
        "{screen}"
    );
    assert!(
        lines[at + 2].contains("│                 k.example.org    │"),
        "{screen}"
    );
    assert!(!screen.contains('…'), "{screen}");
}

/// `r` on the dashboard lists the refused rows of dropped files: per file, each row's line
/// and reason, the report and the copy to fix, and how many rows are not listed.
#[test]
fn refused_rows() {
    check("refused_rows", |app| keys(app, &[ch('r')]));
    let mut app = loaded_app(24);
    keys(&mut app, &[ch('r')]);
    let screen = render(&app, 80, 24);
    for want in [
        "branch-leeds.csv: 3 rows refused",
        "line 7",
        "E-mail (email): is not a valid email address",
        "/home/ada/icsync-drop/rejected/branch-leeds.errors.txt",
        "… and 1 more refused row: see the report",
    ] {
        assert!(screen.contains(want), "{want}:\n{screen}");
    }
    // The next file: refused whole, with why.
    keys(&mut app, &[ch('j')]);
    let screen = render(&app, 80, 24);
    assert!(screen.contains("notes.xlsx: not read"), "{screen}");
    assert!(screen.contains("no sheet with a header row"), "{screen}");
    // Esc goes back to the dashboard.
    keys(&mut app, &[code(KeyCode::Esc)]);
    assert!(render(&app, 80, 24).contains("Needs a person"));
}

/// At 80 columns with the in-process badge, the other tabs shrink to their numbers rather
/// than the screen's name or the badge being cut.
#[test]
fn the_header_never_cuts_the_screen_name_or_the_badge() {
    for open in [vec![ch('r')], vec![ch('3'), code(KeyCode::Enter)]] {
        let mut app = loaded_app(24);
        app.mark_in_process("the engine runs in this process");
        keys(&mut app, &open);
        let screen = render(&app, 80, 24);
        let header = screen.lines().next().unwrap();
        assert!(header.contains(" online · in-process "), "{header}");
        assert!(
            header.contains("› Refused rows ") || header.contains("› Detail "),
            "{header}"
        );
        assert!(header.contains(" 1  2 "), "{header}");
    }
    // With room, every tab keeps its name.
    let mut app = loaded_app(24);
    keys(&mut app, &[ch('r')]);
    assert!(render(&app, 120, 24).contains(" 1 Dashboard  2 Queue "));
}

#[test]
fn the_dashboard_names_rows_refused_from_dropped_files() {
    let mut app = loaded_app(24);
    let screen = render(&app, 80, 24);
    assert!(
        screen.contains("3 rows refused from 2 dropped files (not queued): press r"),
        "{screen}"
    );
    assert!(!screen.contains("Nothing needs a person"), "{screen}");
    app.dashboard.drops.clear();
    let mut s = super::fixtures::status();
    s.conflict = 0;
    s.rejected = 0;
    app.apply(Incoming::Event(Event::Status(s)));
    assert!(render(&app, 80, 24).contains("Nothing needs a person."));
}

#[test]
fn conflicts_rejected() {
    check("conflicts_rejected", |app| keys(app, &[ch('3'), ch('f')]));
}

#[test]
fn conflicts_discard_confirm() {
    check("conflicts_discard_confirm", |app| {
        keys(app, &[ch('3'), ch('A'), ch('d')])
    });
}

#[test]
fn capture_with_errors() {
    check("capture_with_errors", |app| {
        keys(app, &[ch('c')]);
        keys(app, &text("Mary Jackson"));
        keys(app, &[code(KeyCode::Tab)]);
        keys(app, &text("mary@"));
        keys(
            app,
            &[code(KeyCode::Tab), code(KeyCode::Tab), code(KeyCode::Tab)],
        );
        keys(app, &text("07700 90O123"));
    });
}

#[test]
fn capture_edit() {
    check("capture_edit", |app| {
        keys(app, &[ch('2'), code(KeyCode::Enter), ch('e')]);
    });
}

#[test]
fn help_overlay() {
    check("help_overlay", |app| keys(app, &[ch('3'), ch('?')]));
}

#[test]
fn help_on_the_dashboard_lists_each_key_once() {
    let mut app = loaded_app(40);
    keys(&mut app, &[ch('1'), ch('?')]);
    let rendered = render(&app, 120, 40);
    // The footer (last line) keeps the screen's own short hints; the help lists each once.
    let lines: Vec<&str> = rendered.lines().collect();
    let screen = lines[..lines.len() - 1].join("\n");
    assert_eq!(screen.matches("capture").count(), 1, "{screen}");
    assert_eq!(screen.matches("next screen").count(), 0, "{screen}");
    assert_eq!(screen.matches("Tab/S-Tab").count(), 1, "{screen}");
}

#[test]
fn the_footer_never_ends_in_half_a_hint() {
    for width in [50, 64, 80] {
        for screen in ['1', '2', '3', '4'] {
            let mut app = loaded_app(24);
            keys(&mut app, &[ch(screen)]);
            let rendered = render(&app, width, 24);
            let footer = rendered
                .lines()
                .last()
                .unwrap()
                .trim_matches('"')
                .trim_end();
            let whats: Vec<String> = app.hints().iter().map(|h| h.what.to_string()).collect();
            assert!(
                whats.iter().any(|w| footer.ends_with(w.as_str())),
                "screen {screen} at {width} columns ends mid-hint: {footer:?}"
            );
        }
    }
}

#[test]
fn unlock_prompt() {
    check("unlock_prompt", |app| {
        let mut s = status();
        s.locked = true;
        app.apply(Incoming::Event(Event::Status(s)));
        keys(app, &[ch('u')]);
        keys(app, &text("hunter2 secret"));
    });
}

#[test]
fn queue_sorting() {
    check("queue_sorting", |app| {
        keys(app, &[ch('2')]);
        let fx = app.handle_key(ch('s'));
        for e in fx {
            if let crate::tui::app::Effect::Send(o) = e {
                app.apply(Incoming::Reply {
                    purpose: o.purpose,
                    reply: crate::control::Reply::Records {
                        records: Vec::new(),
                        resume_after: None,
                        next: None,
                        sorting: Some(crate::control::SortProgress {
                            done: 120_000,
                            total: 1_000_000,
                        }),
                    },
                });
            }
        }
    });
}

#[test]
fn queue_sorted_by_name() {
    check("queue_sorted_by_name", |app| {
        keys(app, &[ch('2'), ch('s'), code(KeyCode::PageDown)])
    });
}

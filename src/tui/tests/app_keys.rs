//! Key handling and state changes, one behaviour per test.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::json;

use super::fixtures::{answer, answer_with_cap, id, loaded_app, sent, settle, settle_with_cap, t0};
use crate::contract::parse_input;
use crate::control::{
    ControlError, ControlErrorCode, Event, ListSort, Queued, Reply, Request, ResolveAction,
    SortKey, SortProgress,
};
use crate::store::{Origin, RecordState};
use crate::tui::app::{App, Effect, Incoming, Overlay, Purpose, ScreenId};
use crate::tui::paging::AUTO_CONTINUE_MAX;
use crate::tui::screens::capture::{FieldId, FormStatus, Mode};
use crate::tui::screens::conflicts::action_brief;
use crate::tui::screens::queue::QueueView;

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn ch(c: char) -> KeyEvent {
    key(KeyCode::Char(c))
}

fn ctrl(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
}

fn press(app: &mut App, keys: &[KeyEvent]) -> Vec<Effect> {
    keys.iter().flat_map(|k| app.handle_key(*k)).collect()
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.handle_key(ch(c));
    }
}

fn requests(effects: &[Effect]) -> Vec<Request> {
    sent(effects).into_iter().map(|o| o.request).collect()
}

#[test]
fn start_asks_for_status_and_one_screenful_of_each_list() {
    let mut app = App::new(t0(), 24);
    let reqs = requests(&app.start());
    assert_eq!(reqs[0], Request::Status);
    assert_eq!(
        reqs[1],
        Request::List {
            state: None,
            after: None,
            limit: QueueView::rows_for(22),
            query: None,
            sort: ListSort::Queue,
            after_key: None,
        }
    );
    assert!(matches!(
        reqs[2],
        Request::List {
            state: Some(RecordState::Conflict),
            after: None,
            ..
        }
    ));
}

#[test]
fn tab_cycles_the_screens_and_number_keys_jump() {
    let mut app = loaded_app(24);
    let mut seen = vec![app.screen];
    for _ in 0..3 {
        app.handle_key(key(KeyCode::Tab));
        seen.push(app.screen);
    }
    use ScreenId::*;
    assert_eq!(seen, vec![Dashboard, Queue, Conflicts, Capture]);
    // In the form Tab moves between fields; Esc leaves it.
    app.handle_key(key(KeyCode::Tab));
    assert_eq!(app.screen, Capture);
    app.handle_key(key(KeyCode::Esc));
    assert_eq!(app.screen, Dashboard);
    app.handle_key(ch('3'));
    assert_eq!(app.screen, Conflicts);
    app.handle_key(key(KeyCode::BackTab));
    assert_eq!(app.screen, Queue);
}

#[test]
fn enter_opens_the_selected_record_and_esc_goes_back() {
    let mut app = loaded_app(24);
    press(&mut app, &[ch('2'), ch('j')]);
    let fx = app.handle_key(key(KeyCode::Enter));
    assert_eq!(app.screen, ScreenId::Detail);
    assert_eq!(
        requests(&fx),
        vec![Request::Show {
            id: id(2).to_string()
        }]
    );
    settle(&mut app, fx);
    assert_eq!(app.detail.record().map(|r| r.id), Some(id(2)));
    app.handle_key(key(KeyCode::Esc));
    assert_eq!(app.screen, ScreenId::Queue);
}

#[test]
fn moving_past_the_page_fetches_the_next_page_by_keyset_and_back_again() {
    let mut app = loaded_app(24);
    app.handle_key(ch('2'));
    let rows = app.queue.list.window.rows().len();
    assert_eq!(
        rows,
        QueueView::rows_for(22),
        "one screenful, not everything"
    );
    let last = app.queue.list.window.rows()[rows - 1].id;
    app.handle_key(ch('G'));
    let fx = app.handle_key(ch('j'));
    assert_eq!(
        requests(&fx),
        vec![Request::List {
            state: None,
            after: Some(last),
            limit: rows,
            query: None,
            sort: ListSort::Queue,
            after_key: None,
        }]
    );
    settle(&mut app, fx);
    assert_eq!(app.queue.list.window.page_number(), 2);
    assert_eq!(
        app.queue.list.selected().map(|r| r.id),
        Some(id(rows as u128 + 1))
    );

    let fx = app.handle_key(ch('k'));
    assert_eq!(
        requests(&fx),
        vec![Request::List {
            state: None,
            after: None,
            limit: rows,
            query: None,
            sort: ListSort::Queue,
            after_key: None,
        }]
    );
    settle(&mut app, fx);
    assert_eq!(app.queue.list.window.page_number(), 1);
    assert_eq!(app.queue.list.selected().map(|r| r.id), Some(last));
}

#[test]
fn changing_the_filter_reloads_and_drops_the_stale_page() {
    let mut app = loaded_app(24);
    app.handle_key(ch('2'));
    let first = sent(&app.handle_key(ch('f')));
    let second = sent(&app.handle_key(ch('f')));
    assert!(matches!(
        second[0].request,
        Request::List {
            state: Some(RecordState::Sending),
            ..
        }
    ));
    // The answer to the sending filter arrives, then the late answer to the queued one.
    for o in second.into_iter().chain(first) {
        let reply = answer(&o.request);
        app.apply(Incoming::Reply {
            purpose: o.purpose,
            reply,
        });
    }
    let states: Vec<_> = app.queue.list.view().iter().map(|r| r.state).collect();
    assert_eq!(states, vec![RecordState::Sending]);
}

#[test]
fn search_filters_the_page_and_its_keys_are_typed_not_acted_on() {
    let mut app = loaded_app(24);
    press(&mut app, &[ch('2'), ch('/')]);
    type_text(&mut app, "GRACE");
    assert_eq!(app.screen, ScreenId::Queue, "typed q-less text stays");
    let names: Vec<_> = app
        .queue
        .list
        .view()
        .iter()
        .map(|r| r.payload.full_name().to_string())
        .collect();
    assert_eq!(names, vec!["Grace Hopper"]);
    let fx = press(&mut app, &[ch('q'), ch('?')]);
    assert!(!fx.contains(&Effect::Quit));
    assert!(app.overlay.is_none());
    assert_eq!(app.queue.list.search, "GRACEq?");
    // Nothing was sent while typing; Esc clears without a request.
    assert!(requests(&app.handle_key(key(KeyCode::Esc))).is_empty());
    assert!(app.queue.list.search.is_empty());
    assert_eq!(
        app.queue.list.view().len(),
        app.queue.list.window.rows().len()
    );
}

#[test]
fn enter_searches_every_record_on_the_daemon_and_esc_clears_it() {
    let mut app = loaded_app(24);
    let rows = app.queue.list.window.limit();
    press(&mut app, &[ch('2'), ch('/')]);
    type_text(&mut app, " Turing ");
    let fx = app.handle_key(key(KeyCode::Enter));
    assert_eq!(
        requests(&fx),
        vec![Request::List {
            state: None,
            after: None,
            limit: rows,
            query: Some("Turing".into()),
            sort: ListSort::Queue,
            after_key: None,
        }]
    );
    settle(&mut app, fx);
    let names: Vec<_> = app
        .queue
        .list
        .view()
        .iter()
        .map(|r| r.payload.full_name().to_string())
        .collect();
    assert_eq!(names, vec!["Alan Turing"]);
    assert!(app.queue.list.indicators().contains("search \"Turing\""));
    // The query goes with every later page request too: a refresh, a filter change.
    let fx = app.handle_key(ch('f'));
    assert!(matches!(
        &requests(&fx)[..],
        [Request::List { query: Some(q), .. }] if q == "Turing"
    ));
    settle(&mut app, fx);
    // Esc clears it and reloads the unsearched list.
    press(&mut app, &[ch('/')]);
    let fx = app.handle_key(key(KeyCode::Esc));
    assert!(matches!(
        &requests(&fx)[..],
        [Request::List { query: None, .. }]
    ));
    assert!(!app.queue.list.indicators().contains("search"));
}

#[test]
fn search_matches_email_and_external_id_too() {
    let mut app = loaded_app(24);
    press(&mut app, &[ch('2'), ch('/')]);
    type_text(&mut app, "crm-1003");
    assert_eq!(app.queue.list.view().len(), 1);
    app.handle_key(key(KeyCode::Esc));
    press(&mut app, &[ch('/')]);
    type_text(&mut app, "ada@");
    assert_eq!(app.queue.list.view()[0].id, id(1));
}

#[test]
fn discarding_marked_records_asks_first_then_resolves_each() {
    let mut app = loaded_app(24);
    app.handle_key(ch('3'));
    let fx = press(&mut app, &[ch(' '), ch('j'), ch(' '), ch('d')]);
    assert!(
        requests(&fx).is_empty(),
        "nothing is sent before confirming"
    );
    assert!(matches!(app.overlay, Some(Overlay::Confirm(_))));
    let fx = app.handle_key(ch('y'));
    let expected: Vec<Request> = [id(3), id(7)]
        .iter()
        .map(|id| Request::Resolve {
            id: id.to_string(),
            action: ResolveAction::Discard,
        })
        .collect();
    assert_eq!(requests(&fx), expected);
    assert!(app.overlay.is_none());
    assert!(app.conflicts.marks().is_empty());
}

#[test]
fn declining_the_confirm_sends_nothing() {
    let mut app = loaded_app(24);
    app.handle_key(ch('3'));
    press(&mut app, &[ch('d')]);
    let fx = press(&mut app, &[ch('x'), ch('n')]);
    assert!(requests(&fx).is_empty());
    assert!(app.overlay.is_none());
}

#[test]
fn mark_all_applies_one_resolve_many_to_the_filter() {
    let mut app = loaded_app(24);
    app.handle_key(ch('3'));
    app.handle_key(ch('A'));
    assert!(app.conflicts.marking_all());
    let fx = app.handle_key(ch('L'));
    assert_eq!(
        requests(&fx),
        vec![Request::ResolveMany {
            state: RecordState::Conflict,
            error_type: None,
            action: ResolveAction::LinkExisting,
        }]
    );
    assert!(
        app.overlay.is_none(),
        "linking sends nothing, so it does not ask"
    );
}

#[test]
fn without_marks_an_action_applies_to_the_selected_record() {
    let mut app = loaded_app(24);
    app.handle_key(ch('3'));
    let fx = press(&mut app, &[ch('j'), ch('L')]);
    assert_eq!(
        requests(&fx),
        vec![Request::Resolve {
            id: id(7).to_string(),
            action: ResolveAction::LinkExisting,
        }]
    );
}

/// `U` sends the local fields over a customer someone else put on the server: like a
/// discard, it asks first, naming the record by its short id, and `n` sends nothing.
#[test]
fn updating_the_existing_customer_asks_first_on_both_screens() {
    let mut app = loaded_app(24);
    app.handle_key(ch('3'));
    let fx = app.handle_key(ch('U'));
    assert!(
        requests(&fx).is_empty(),
        "nothing is sent before confirming"
    );
    match &app.overlay {
        Some(Overlay::Confirm(c)) => {
            assert!(c.message.contains(&id(3).short()), "{}", c.message);
            assert!(c.message.contains("existing customer"), "{}", c.message);
        }
        other => panic!("expected a confirm, got {other:?}"),
    }
    assert!(requests(&app.handle_key(ch('n'))).is_empty());
    assert!(app.overlay.is_none());
    let fx = press(&mut app, &[ch('U'), ch('y')]);
    assert_eq!(
        requests(&fx),
        vec![Request::Resolve {
            id: id(3).to_string(),
            action: ResolveAction::UpdateExisting,
        }]
    );

    // Everything matching the filter: one resolve_many, after the question.
    let fx = press(&mut app, &[ch('A'), ch('U')]);
    assert!(requests(&fx).is_empty());
    assert!(matches!(app.overlay, Some(Overlay::Confirm(_))));
    assert_eq!(
        requests(&app.handle_key(ch('y'))),
        vec![Request::ResolveMany {
            state: RecordState::Conflict,
            error_type: None,
            action: ResolveAction::UpdateExisting,
        }]
    );

    // The detail screen's `U` asks too.
    let mut app = loaded_app(24);
    app.handle_key(ch('3'));
    let fx = app.handle_key(key(KeyCode::Enter));
    settle(&mut app, fx);
    assert_eq!(app.screen, ScreenId::Detail);
    assert!(requests(&app.handle_key(ch('U'))).is_empty());
    assert!(matches!(app.overlay, Some(Overlay::Confirm(_))));
}

/// The keys that used to adopt (`a`) and keep (`K`) do nothing now: a finger that
/// remembers them sends nothing by surprise.
#[test]
fn the_old_adopt_and_keep_keys_send_nothing() {
    let mut app = loaded_app(24);
    app.handle_key(ch('3'));
    let fx = press(&mut app, &[ch('a'), ch('K')]);
    assert!(requests(&fx).is_empty());
    assert!(app.overlay.is_none());
}

/// What the daemon says it did is told in words, not as the wire's action name.
#[test]
fn a_resolved_notice_says_what_happened_in_words() {
    let mut app = loaded_app(24);
    app.handle_key(ch('3'));
    let fx = app.handle_key(ch('L'));
    let out = sent(&fx).into_iter().next().expect("a resolve request");
    app.apply(Incoming::Reply {
        purpose: out.purpose,
        reply: Reply::Resolved { ids: vec![id(3)] },
    });
    let notice = app
        .notice
        .as_ref()
        .map(|n| n.text.clone())
        .unwrap_or_default();
    assert_eq!(
        notice,
        "1 record linked to the existing customer (nothing sent)"
    );
    assert!(!notice.contains("link_existing"));
}

#[test]
fn q_quits_at_once_without_form_input() {
    let mut app = loaded_app(24);
    assert!(app.handle_key(ch('q')).contains(&Effect::Quit));
}

#[test]
fn q_asks_first_when_the_form_holds_unsaved_input() {
    let mut app = loaded_app(24);
    app.handle_key(ch('c'));
    type_text(&mut app, "Mary q");
    assert_eq!(app.screen, ScreenId::Capture, "q is typed in the form");
    app.handle_key(key(KeyCode::Esc));
    assert_eq!(app.screen, ScreenId::Dashboard);
    let fx = app.handle_key(ch('q'));
    assert!(!fx.contains(&Effect::Quit));
    assert!(matches!(app.overlay, Some(Overlay::Confirm(_))));
    app.handle_key(ch('n'));
    assert_eq!(
        app.capture.values.body()["full_name"],
        "Mary q",
        "input kept"
    );
    app.handle_key(ch('c'));
    let fx = app.handle_key(ctrl('c'));
    assert!(!fx.contains(&Effect::Quit));
    assert!(app.handle_key(ch('y')).contains(&Effect::Quit));
}

#[test]
fn form_messages_are_the_contracts_own_as_you_type() {
    let mut app = loaded_app(24);
    app.handle_key(ch('c'));
    assert!(app.capture.field_errors(FieldId::Email).is_empty());
    type_text(&mut app, "Mary Jackson");
    app.handle_key(key(KeyCode::Tab));
    type_text(&mut app, "mary@");
    let expected = parse_input(&json!({"full_name": "Mary Jackson", "email": "mary@"}))
        .unwrap_err()
        .into_iter()
        .map(|e| e.message)
        .collect::<Vec<_>>();
    assert_eq!(app.capture.field_errors(FieldId::Email), expected);
    type_text(&mut app, "nasa.gov");
    assert!(app.capture.field_errors(FieldId::Email).is_empty());
    // Monthly volume: a number goes as a number; anything else gets the contract's message.
    for _ in 0..7 {
        app.handle_key(key(KeyCode::Tab));
    }
    assert_eq!(app.capture.focused(), Some(FieldId::Volume));
    type_text(&mut app, "12x");
    assert_eq!(
        app.capture.field_errors(FieldId::Volume),
        vec!["must be a whole number of currency units, 0 or more"]
    );
    app.handle_key(key(KeyCode::Backspace));
    assert_eq!(
        app.capture.values.body()["risk"]["expected_monthly_volume"],
        12
    );
}

#[test]
fn saving_an_invalid_form_sends_nothing_and_shows_every_error() {
    let mut app = loaded_app(24);
    app.handle_key(ch('c'));
    app.handle_key(key(KeyCode::Tab));
    type_text(&mut app, "x");
    let fx = app.handle_key(ctrl('s'));
    assert!(requests(&fx).is_empty());
    assert_eq!(app.capture.status, FormStatus::Invalid);
    assert_eq!(
        app.capture.field_errors(FieldId::FullName),
        vec!["is required"]
    );
    assert_eq!(app.capture.focused(), Some(FieldId::FullName));
}

#[test]
fn saved_is_shown_only_after_the_daemon_confirms() {
    let mut app = loaded_app(24);
    app.handle_key(ch('c'));
    type_text(&mut app, "Mary Jackson");
    let fx = app.handle_key(ctrl('s'));
    let out = sent(&fx);
    assert_eq!(
        out[0].request,
        Request::Submit {
            body: json!({"type": "INDIVIDUAL", "full_name": "Mary Jackson"}),
            origin: Origin::Capture,
        }
    );
    assert!(matches!(app.capture.status, FormStatus::Saving { .. }));
    assert!(
        app.capture.has_unsaved(),
        "not saved until the daemon says so"
    );
    // A second save while the first is out sends nothing.
    assert!(requests(&app.handle_key(ctrl('s'))).is_empty());
    app.apply(Incoming::Reply {
        purpose: out[0].purpose.clone(),
        reply: Reply::Queued(Queued {
            id: id(99),
            revision: 1,
            created: true,
            unchanged: false,
        }),
    });
    assert_eq!(
        app.capture.status,
        FormStatus::Saved {
            id: id(99),
            revision: 1
        }
    );
    assert!(!app.capture.has_unsaved());
    assert!(app
        .notice
        .as_ref()
        .is_some_and(|n| n.text.starts_with("saved")));
    assert!(!app.handle_key(ch('q')).contains(&Effect::Quit));
    assert_eq!(
        app.capture.values.body()["full_name"],
        "q",
        "typed into a fresh form"
    );
}

#[test]
fn a_refused_save_keeps_the_input_and_shows_the_daemons_field_errors() {
    let mut app = loaded_app(24);
    app.handle_key(ch('c'));
    type_text(&mut app, "Mary Jackson");
    let out = sent(&app.handle_key(ctrl('s')));
    let mut error = ControlError::new(ControlErrorCode::Invalid, "the body is not valid");
    error.invalid = vec![crate::contract::FieldError::new("email", "is taken")];
    app.apply(Incoming::Reply {
        purpose: out[0].purpose.clone(),
        reply: Reply::Error(error),
    });
    assert!(matches!(app.capture.status, FormStatus::Failed { .. }));
    assert_eq!(app.capture.field_errors(FieldId::Email), vec!["is taken"]);
    assert!(app.capture.has_unsaved());
}

#[test]
fn editing_sends_only_the_changed_members_and_null_for_cleared_ones() {
    let mut app = loaded_app(24);
    press(&mut app, &[ch('2')]);
    let fx = app.handle_key(key(KeyCode::Enter));
    settle(&mut app, fx);
    app.handle_key(ch('e'));
    assert_eq!(app.screen, ScreenId::Capture);
    assert!(matches!(app.capture.mode, Mode::Edit { .. }));
    // Focus starts on full name; go to phone (3 down) and clear it, then the occupation.
    press(&mut app, &[key(KeyCode::Down); 4]);
    assert_eq!(app.capture.focused(), Some(FieldId::Phone));
    app.handle_key(ctrl('u'));
    app.handle_key(key(KeyCode::Down));
    type_text(&mut app, "!");
    let fx = app.handle_key(ctrl('s'));
    assert_eq!(
        requests(&fx),
        vec![Request::Edit {
            id: id(1).to_string(),
            changes: json!({"phone": null, "risk": {"occupation": "Mathematician!"}}),
        }]
    );
}

#[test]
fn change_events_coalesce_into_one_reload_per_tick() {
    let mut app = loaded_app(24);
    app.handle_key(ch('2'));
    let changed = |n| {
        Incoming::Event(Event::RecordChanged {
            id: id(n),
            state: RecordState::Synced,
        })
    };
    for n in 0..50 {
        assert!(
            app.apply(changed(n)).is_empty(),
            "events alone send nothing"
        );
    }
    let fx = app.apply(Incoming::Tick(t0() + chrono::Duration::seconds(1)));
    let out = sent(&fx);
    let lists = out
        .iter()
        .filter(|o| matches!(o.purpose, Purpose::Page { .. }))
        .count();
    assert_eq!(lists, 1);
    assert!(out.iter().any(|o| o.request == Request::Status));
    // More changes while that reload is out: no second request until it returns.
    app.apply(changed(1));
    let fx2 = app.apply(Incoming::Tick(t0() + chrono::Duration::seconds(2)));
    assert!(sent(&fx2)
        .iter()
        .all(|o| !matches!(o.purpose, Purpose::Page { .. })));
    let page = out
        .into_iter()
        .find(|o| matches!(o.purpose, Purpose::Page { .. }))
        .unwrap();
    let follow = app.apply(Incoming::Reply {
        reply: answer(&page.request),
        purpose: page.purpose,
    });
    assert_eq!(sent(&follow).len(), 1, "the remembered reload goes out now");
}

#[test]
fn help_lists_every_hint_of_the_screen_and_the_global_keys() {
    let mut app = loaded_app(24);
    app.handle_key(ch('3'));
    app.handle_key(ch('?'));
    assert_eq!(app.overlay, Some(Overlay::Help));
    let hints = app.hints();
    for keys in ["Space", "A", "U", "L", "d", "t", "?", "q", "Tab/S-Tab"] {
        assert!(hints.iter().any(|h| h.keys == keys), "{keys} missing");
    }
    // Each conflict action is explained in one line, as the pane explains it.
    for action in ResolveAction::ALL {
        assert!(
            hints.iter().any(|h| h.detail == Some(action_brief(action))),
            "{} unexplained",
            action.as_str()
        );
    }
    app.handle_key(key(KeyCode::Esc));
    assert!(app.overlay.is_none());
}

#[test]
fn losing_the_daemon_is_shown() {
    let mut app = loaded_app(24);
    app.apply(Incoming::Disconnected {
        reason: "the daemon closed the connection".into(),
    });
    assert!(matches!(
        app.connection,
        crate::tui::app::Connection::Lost { .. }
    ));
}

#[test]
fn drop_files_are_fetched_with_the_status_only_while_the_dashboard_shows() {
    let mut app = loaded_app(24);
    assert_eq!(app.dashboard.drops, super::fixtures::drop_files());
    let changed = Incoming::Event(Event::RecordChanged {
        id: id(1),
        state: RecordState::Synced,
    });
    app.handle_key(ch('2'));
    app.apply(changed.clone());
    let reqs = requests(&app.apply(Incoming::Tick(t0() + chrono::Duration::seconds(1))));
    assert!(reqs.contains(&Request::Status));
    assert!(!reqs.contains(&Request::DropFiles), "hidden: not fetched");
    // Back on the dashboard the due refresh goes out, once, however many ticks pass.
    let reqs = requests(&app.handle_key(ch('1')));
    assert_eq!(reqs, vec![Request::DropFiles]);
    let reqs = requests(&app.apply(Incoming::Tick(t0() + chrono::Duration::seconds(2))));
    assert!(!reqs.contains(&Request::DropFiles));
    // A status refresh while one is out is remembered, not sent twice.
    app.apply(changed);
    let reqs = requests(&app.apply(Incoming::Tick(t0() + chrono::Duration::seconds(3))));
    assert!(!reqs.contains(&Request::DropFiles), "one in flight");
    let follow = app.apply(Incoming::Reply {
        purpose: Purpose::DropFiles,
        reply: answer(&Request::DropFiles),
    });
    assert_eq!(requests(&follow), vec![Request::DropFiles]);
}

fn locked_app() -> App {
    let mut app = loaded_app(24);
    let mut s = super::fixtures::status();
    s.locked = true;
    app.apply(Incoming::Event(Event::Status(s)));
    app
}

fn prompt(app: &App) -> &crate::tui::screens::unlock::UnlockPrompt {
    match &app.overlay {
        Some(Overlay::Unlock(p)) => p,
        other => panic!("no unlock prompt: {other:?}"),
    }
}

#[test]
fn u_opens_the_unlock_prompt_only_when_the_store_is_locked() {
    let mut app = loaded_app(24);
    app.handle_key(ch('u'));
    assert!(app.overlay.is_none());
    assert!(app.notice.as_ref().unwrap().text.contains("not locked"));

    let mut app = locked_app();
    let footer: Vec<_> = app.hints().into_iter().filter(|h| h.footer).collect();
    assert!(
        footer.iter().any(|h| h.keys == "u"),
        "locked: u in the footer"
    );
    app.handle_key(ch('u'));
    assert_eq!(prompt(&app).typed_chars(), 0);
    // Keys are text now: q does not quit, ? does not open the help.
    let fx = press(
        &mut app,
        &[ch('q'), ch('?'), ch('x'), key(KeyCode::Backspace)],
    );
    assert!(!fx.contains(&Effect::Quit));
    assert_eq!(prompt(&app).typed_chars(), 2);
    assert!(
        !format!("{:?}", app.overlay).contains("q?"),
        "Debug is redacted"
    );
    app.handle_key(key(KeyCode::Esc));
    assert!(app.overlay.is_none(), "Esc cancels");
    assert!(app.handle_key(ch('u')).contains(&Effect::Redraw));
    assert_eq!(prompt(&app).typed_chars(), 0, "a new prompt starts empty");
}

#[test]
fn enter_sends_the_passphrase_once_and_shows_the_daemons_answer() {
    let mut app = locked_app();
    app.handle_key(ch('u'));
    // Nothing typed is an answer too: a keychain or key-file store needs no passphrase.
    let out = sent(&app.handle_key(key(KeyCode::Enter)));
    assert_eq!(
        out.iter().map(|s| &s.request).collect::<Vec<_>>(),
        [&Request::Unlock {
            passphrase: crate::crypto::Passphrase::new("")
        }]
    );
    app.apply(Incoming::Reply {
        purpose: Purpose::Unlock,
        reply: Reply::Error(ControlError::new(
            ControlErrorCode::Invalid,
            "wrong passphrase: try again",
        )),
    });
    assert!(prompt(&app).error.is_some() && !prompt(&app).sending);

    type_text(&mut app, "wrong one");
    let out = sent(&app.handle_key(key(KeyCode::Enter)));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].purpose, Purpose::Unlock);
    assert_eq!(
        out[0].request,
        Request::Unlock {
            passphrase: crate::crypto::Passphrase::new("wrong one")
        }
    );
    assert_eq!(prompt(&app).typed_chars(), 0, "buffer cleared when sent");
    assert!(prompt(&app).sending);
    type_text(&mut app, "zz");
    assert_eq!(prompt(&app).typed_chars(), 0, "no typing while it is out");

    app.apply(Incoming::Reply {
        purpose: Purpose::Unlock,
        reply: Reply::Error(ControlError::new(
            ControlErrorCode::Invalid,
            "wrong passphrase: try again",
        )),
    });
    let p = prompt(&app);
    assert!(!p.sending);
    assert_eq!(
        p.error.as_deref(),
        Some("daemon: wrong passphrase: try again")
    );

    type_text(&mut app, "correct horse");
    let out = sent(&app.handle_key(key(KeyCode::Enter)));
    let mut unlocked = super::fixtures::status();
    unlocked.locked = false;
    app.apply(Incoming::Reply {
        purpose: out[0].purpose.clone(),
        reply: Reply::Status(unlocked),
    });
    assert!(app.overlay.is_none());
    assert!(!app.locked());
    assert!(app.notice.as_ref().unwrap().text.starts_with("unlocked"));
}

fn searched(app: &mut App, query: &str) -> Vec<Effect> {
    press(app, &[ch('2'), ch('/')]);
    type_text(app, query);
    app.handle_key(key(KeyCode::Enter))
}

fn shown(app: &App) -> Vec<String> {
    app.queue
        .list
        .view()
        .iter()
        .map(|r| r.payload.full_name().to_string())
        .collect()
}

#[test]
fn a_search_page_cut_short_by_the_daemon_is_not_the_last() {
    let mut app = loaded_app(24);
    // The fixture daemon reads 10 records per request: "Customer 030" is in the third chunk,
    // reached without a key press; the page is short but the search goes on past id 30.
    let fx = searched(&mut app, "customer 03");
    assert_eq!(settle_with_cap(&mut app, fx, 10), 3);
    assert_eq!(shown(&app), ["Customer 030"]);
    assert!(app.queue.list.indicators().contains("PgDn searches on"));

    let fx = app.handle_key(key(KeyCode::PageDown));
    assert!(matches!(
        &requests(&fx)[..],
        [Request::List { after: Some(a), query: Some(_), .. }] if *a == id(30)
    ));
    settle_with_cap(&mut app, fx, 10);
    let names: Vec<String> = (31..40).map(|n| format!("Customer {n:03}")).collect();
    assert_eq!(shown(&app), names);
    assert_eq!(app.queue.list.window.page_number(), 2);
    // That chunk reached the end: no more paging on.
    assert!(!app.queue.list.indicators().contains("further"));
    assert!(requests(&app.handle_key(key(KeyCode::PageDown))).is_empty());

    // Back is the first page again, found from where its chunk began.
    let fx = app.handle_key(key(KeyCode::PageUp));
    settle_with_cap(&mut app, fx, 10);
    assert_eq!(shown(&app), ["Customer 030"]);
    assert_eq!(app.queue.list.window.page_number(), 1);
}

#[test]
fn chunks_without_a_match_are_followed_a_bounded_number_of_times_per_key() {
    let mut app = loaded_app(24);
    // One record per request: the match (id 39) is further than 21 chunks away.
    let fx = searched(&mut app, "customer 039");
    assert_eq!(settle_with_cap(&mut app, fx, 1), 1 + AUTO_CONTINUE_MAX);
    assert!(shown(&app).is_empty());
    let line = app.queue.list.indicators();
    assert!(
        line.contains("no match in the next 21 search chunks: PgDn searches further"),
        "{line}"
    );

    // The key press carries on from the last record read, not from the start.
    let fx = app.handle_key(key(KeyCode::PageDown));
    assert!(matches!(
        &requests(&fx)[..],
        [Request::List { after: Some(a), .. }] if *a == id(21)
    ));
    assert_eq!(settle_with_cap(&mut app, fx, 1), 18);
    assert_eq!(shown(&app), ["Customer 039"]);
    assert!(!app.queue.list.indicators().contains("no match"));

    // The last record was read at the cap, so one more request finds the real end.
    let fx = app.handle_key(key(KeyCode::PageDown));
    assert_eq!(settle_with_cap(&mut app, fx, 1), 1);
    assert_eq!(shown(&app), ["Customer 039"]);
    assert!(requests(&app.handle_key(key(KeyCode::PageDown))).is_empty());
}

#[test]
fn a_search_with_no_match_anywhere_stops_at_the_end() {
    let mut app = loaded_app(24);
    let fx = searched(&mut app, "nobody");
    assert_eq!(settle_with_cap(&mut app, fx, 10), 4);
    assert!(shown(&app).is_empty());
    let line = app.queue.list.indicators();
    assert!(
        !line.contains("further") && !line.contains("searching"),
        "{line}"
    );
    assert!(requests(&app.handle_key(key(KeyCode::PageDown))).is_empty());
}

#[test]
fn while_chunks_are_followed_the_indicator_says_so() {
    let mut app = loaded_app(24);
    let fx = searched(&mut app, "customer 039");
    let first = sent(&fx).remove(0);
    let fx = app.apply(Incoming::Reply {
        purpose: first.purpose,
        reply: answer_with_cap(&first.request, 1),
    });
    assert_eq!(sent(&fx).len(), 1, "the next chunk is asked for at once");
    assert!(app.queue.list.indicators().contains("searching… chunk 2"));
}

fn queue_names(app: &App) -> Vec<String> {
    app.queue
        .list
        .view()
        .iter()
        .map(|r| r.payload.full_name().to_string())
        .collect()
}

#[test]
fn s_sorts_every_record_on_the_daemon_and_pages_by_its_cursor_and_back() {
    let mut app = loaded_app(24);
    app.handle_key(ch('2'));
    let rows = app.queue.list.window.limit();
    let fx = app.handle_key(ch('s'));
    assert!(matches!(
        &requests(&fx)[..],
        [Request::List {
            sort: ListSort::Name,
            after: None,
            after_key: None,
            ..
        }]
    ));
    settle(&mut app, fx);
    assert!(app.queue.list.indicators().contains("sort: name · page 1"));
    // The whole fixture list in name order, not the first page reordered.
    let mut all: Vec<String> = super::fixtures::records()
        .iter()
        .map(|r| r.payload.full_name().to_string())
        .collect();
    all.sort_by_key(|n| n.to_lowercase());
    assert!(all.len() > 2 * rows, "the fixtures span several pages");
    assert_eq!(queue_names(&app), all[..rows]);

    // On from the daemon's cursor: the last row's id and its name key.
    app.handle_key(ch('G'));
    let fx = app.handle_key(ch('j'));
    let last = all[rows - 1].to_lowercase();
    assert!(matches!(
        &requests(&fx)[..],
        [Request::List { sort: ListSort::Name, after: Some(_), after_key: Some(SortKey::Name(k)), .. }]
            if *k == last
    ));
    settle(&mut app, fx);
    assert_eq!(queue_names(&app), all[rows..2 * rows]);
    assert!(app.queue.list.indicators().contains("page 2"));
    let fx = app.handle_key(key(KeyCode::PageDown));
    settle(&mut app, fx);
    assert_eq!(queue_names(&app), all[2 * rows..(3 * rows).min(all.len())]);

    // Back twice: the first page again, in the same order.
    for _ in 0..2 {
        let fx = app.handle_key(key(KeyCode::PageUp));
        settle(&mut app, fx);
    }
    assert_eq!(queue_names(&app), all[..rows]);
    assert!(app.queue.list.indicators().contains("page 1"));

    // Then state order, then newest change, then queue order again (no sort member).
    for (sort, label) in [
        (ListSort::State, "sort: state"),
        (ListSort::NewestChange, "sort: newest change"),
        (ListSort::Queue, "sort: queue order"),
    ] {
        let fx = app.handle_key(ch('s'));
        assert!(matches!(&requests(&fx)[..], [Request::List { sort: s, .. }] if *s == sort));
        settle(&mut app, fx);
        assert!(app.queue.list.indicators().contains(label));
    }
    let states: Vec<_> = app.queue.list.view().iter().map(|r| r.id).collect();
    assert_eq!(states[0], id(1), "queue order is id order");
}

#[test]
fn while_the_daemon_sorts_the_header_says_how_far_and_each_tick_asks_again() {
    let mut app = loaded_app(24);
    app.handle_key(ch('2'));
    let out = sent(&app.handle_key(ch('s')));
    let progress = |done| Reply::Records {
        records: Vec::new(),
        resume_after: None,
        next: None,
        sorting: Some(SortProgress {
            done,
            total: 200_000,
        }),
    };
    app.apply(Incoming::Reply {
        purpose: out[0].purpose.clone(),
        reply: progress(50_000),
    });
    let line = app.queue.list.indicators();
    assert!(
        line.contains("sort: name (sorting 50000 of 200000…)"),
        "{line}"
    );
    assert!(app.queue.list.view().is_empty());
    // The next tick asks again; a tick while that is out asks nothing more.
    let again = sent(&app.apply(Incoming::Tick(t0() + chrono::Duration::milliseconds(250))));
    assert!(matches!(
        &again[..],
        [o] if matches!(o.request, Request::List { sort: ListSort::Name, after: None, .. })
    ));
    assert!(
        sent(&app.apply(Incoming::Tick(t0() + chrono::Duration::milliseconds(500)))).is_empty()
    );
    // The order is there: records, no progress, no more asking.
    let reply = answer(&again[0].request);
    app.apply(Incoming::Reply {
        purpose: again[0].purpose.clone(),
        reply,
    });
    assert!(!app.queue.list.indicators().contains("sorting"));
    assert!(!app.queue.list.view().is_empty());
    assert!(sent(&app.apply(Incoming::Tick(t0() + chrono::Duration::seconds(1)))).is_empty());
}

/// The README's "Try it" paragraph tells a newcomer which keys to press in the demo: each
/// single key it names in backticks is one the TUI lists in its hints on some screen (the
/// paragraph once said `a` adopts a conflict after the key had become `U` and `L`).
#[test]
fn every_key_the_readme_demo_paragraph_names_is_a_key_of_the_tui() {
    let readme = include_str!("../../../README.md");
    let section = readme
        .split("## Try it")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has a 'Try it' section");
    let named: Vec<&str> = section
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.len() == 1 && s.is_ascii())
        .collect();
    assert!(named.len() >= 5, "the paragraph names keys: {named:?}");
    let mut app = loaded_app(24);
    let mut listed: Vec<String> = Vec::new();
    for screen in ['1', '2', '3', '4'] {
        app.handle_key(key(KeyCode::Esc));
        app.handle_key(ch(screen));
        listed.extend(app.hints().iter().flat_map(|h| keys_of(h.keys)));
    }
    for k in named {
        assert!(
            listed.iter().any(|l| l == k),
            "README names key `{k}`, which no TUI screen lists: {listed:?}"
        );
    }
}

/// The keys one hint stands for: `Tab/S-Tab` is two, `1-4` is four, `/` is itself.
fn keys_of(hint: &str) -> Vec<String> {
    if hint == "/" {
        return vec![hint.to_owned()];
    }
    hint.split('/')
        .flat_map(|part| match part.split_once('-') {
            Some((a, b)) if a.len() == 1 && b.len() == 1 => match (a.parse(), b.parse()) {
                (Ok(a), Ok(b)) => (a..=b).map(|n: u8| n.to_string()).collect(),
                _ => vec![part.to_owned()],
            },
            _ => vec![part.to_owned()],
        })
        .collect()
}

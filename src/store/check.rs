//! The consistency check behind `doctor`: rebuilds every index, counter and ledger entry from
//! the records alone and compares them with what is stored. Read-only. Problems name record
//! ids and index names, never index terms (they are customer emails and external_ids).

use std::collections::{BTreeMap, BTreeSet};

use super::codec::{self, Codec};
use super::error::StoreError;
use super::index::{self, IndexEntries, TermIndex};
use super::ledger;
use super::record::{LedgerEntry, RecordId, RecordState};
use super::runs;
use super::txn::Trees;

#[derive(Default)]
struct Expected {
    external_id: BTreeMap<Vec<u8>, Vec<RecordId>>,
    email: BTreeMap<Vec<u8>, Vec<RecordId>>,
    content: BTreeMap<Vec<u8>, Vec<RecordId>>,
    short: BTreeMap<Vec<u8>, Vec<RecordId>>,
    state: BTreeMap<Vec<u8>, Vec<u8>>,
    due: BTreeSet<Vec<u8>>,
    counts: BTreeMap<RecordState, u64>,
    ledger: BTreeMap<Vec<u8>, LedgerEntry>,
}

fn describe_ids(ids: &[RecordId]) -> String {
    ids.iter()
        .map(RecordId::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How complete a term index must be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Coverage {
    /// Every record that should hold a term does.
    Every,
    /// Records written before the index existed may lack their term (the content index has
    /// no backfill); an entry listing a record that should not be there is still a problem.
    NewerRecords,
}

fn compare_terms(
    name: &str,
    trees: &Trees,
    index: TermIndex,
    expected: &BTreeMap<Vec<u8>, Vec<RecordId>>,
    coverage: Coverage,
    problems: &mut Vec<String>,
) -> Result<(), StoreError> {
    // A term's holders are the union of its tree entry and its runs' blocks (see `runs`).
    let mut held: BTreeMap<Vec<u8>, Vec<RecordId>> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for kv in trees.term_tree(index).iter() {
        let (term, value) = kv?;
        match codec::decode_id_set(&value) {
            Ok(ids) => {
                held.insert(term.to_vec(), ids);
            }
            Err(e) => {
                seen.insert(term.to_vec());
                problems.push(format!("{name} index: an entry cannot be read: {e}"));
            }
        }
    }
    let runs = runs::for_each_term(&trees.runs, &trees.catalog(), index, |term, ids| {
        let set = held.entry(term.to_vec()).or_default();
        for id in ids {
            index::set_insert(set, id);
        }
    });
    if let Err(e) = runs {
        problems.push(format!("{name} index: a run cannot be read: {e}"));
    }
    for (term, actual) in held {
        seen.insert(term.clone());
        match expected.get(&term) {
            Some(ids) if *ids == actual => {}
            Some(ids)
                if coverage == Coverage::NewerRecords
                    && actual.iter().all(|id| ids.contains(id)) => {}
            Some(ids) => problems.push(format!(
                "{name} index: an entry lists [{}] but the records say [{}]",
                describe_ids(&actual),
                describe_ids(ids)
            )),
            None => problems.push(format!(
                "{name} index: an entry lists [{}] but no live record holds its term",
                describe_ids(&actual)
            )),
        }
    }
    for (term, ids) in expected {
        if coverage == Coverage::Every && !seen.contains(term) {
            problems.push(format!(
                "{name} index: records [{}] are missing from it",
                describe_ids(ids)
            ));
        }
    }
    Ok(())
}

pub fn check(trees: &Trees, codec: &Codec) -> Result<Vec<String>, StoreError> {
    let mut problems = Vec::new();
    let mut want = Expected::default();
    let mut total = 0u64;
    for kv in trees.records.iter() {
        let (key, value) = kv?;
        let id = match codec::decode_record_key(&key) {
            Ok(id) => id,
            Err(e) => {
                problems.push(format!("records: a key cannot be read: {e}"));
                continue;
            }
        };
        let record = match codec.decode_record(id, &value) {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!("record {id} cannot be read: {e}"));
                continue;
            }
        };
        if record.id != id {
            problems.push(format!(
                "record stored under {id} says its id is {}",
                record.id
            ));
        }
        total += 1;
        let entries = IndexEntries::of(codec, &record);
        if let Some(term) = entries.external_id {
            index::set_insert(want.external_id.entry(term).or_default(), record.id);
        }
        if let Some(term) = entries.email {
            index::set_insert(want.email.entry(term).or_default(), record.id);
        }
        if let Some(term) = entries.content {
            index::set_insert(want.content.entry(term).or_default(), record.id);
        }
        index::set_insert(want.short.entry(entries.short).or_default(), record.id);
        want.state.insert(entries.state_key, entries.state_value);
        if let Some(key) = entries.due_key {
            want.due.insert(key);
        }
        *want.counts.entry(record.state).or_default() += 1;
        for attempt in ledger::attempts(&record) {
            let key = codec::ledger_key(&attempt.key);
            let before = want.ledger.remove(&key);
            want.ledger
                .insert(key, ledger::after_attempt(before, record.id, attempt));
        }
    }

    compare_terms(
        "external_id",
        trees,
        TermIndex::ExternalId,
        &want.external_id,
        Coverage::Every,
        &mut problems,
    )?;
    compare_terms(
        "email",
        trees,
        TermIndex::Email,
        &want.email,
        Coverage::Every,
        &mut problems,
    )?;
    compare_terms(
        "content",
        trees,
        TermIndex::Content,
        &want.content,
        Coverage::NewerRecords,
        &mut problems,
    )?;

    compare_terms(
        "short id",
        trees,
        TermIndex::Short,
        &want.short,
        Coverage::Every,
        &mut problems,
    )?;

    let mut state_seen = BTreeSet::new();
    for kv in trees.state.iter() {
        let (key, value) = kv?;
        state_seen.insert(key.to_vec());
        let label = match codec::decode_state_key(&key) {
            Ok((state, id)) => format!("({state}, {id})"),
            Err(e) => format!("unreadable ({e})"),
        };
        match want.state.get(key.as_ref()) {
            Some(v) if v.as_slice() == value.as_ref() => {}
            Some(_) => problems.push(format!("state index: entry {label} has a stale due time")),
            None => problems.push(format!("state index: entry {label} has no matching record")),
        }
    }
    for key in want.state.keys().filter(|k| !state_seen.contains(*k)) {
        if let Ok((state, id)) = codec::decode_state_key(key) {
            problems.push(format!(
                "state index: record {id} ({state}) is missing from it"
            ));
        }
    }

    let mut due_seen = BTreeSet::new();
    for kv in trees.due.iter() {
        let (key, _) = kv?;
        due_seen.insert(key.to_vec());
        if !want.due.contains(key.as_ref()) {
            let label = codec::decode_due_key(&key)
                .map(|(ms, id)| format!("({ms}, {id})"))
                .unwrap_or_else(|e| format!("unreadable ({e})"));
            // A (0, id) entry is the old layout's "due at once" entry: `open` deletes them
            // once (see `Store::open_locked`), so one left over is reported like any stray.
            problems.push(format!(
                "due index: entry {label} has no matching queued record backing off"
            ));
        }
    }
    for key in want.due.iter().filter(|k| !due_seen.contains(*k)) {
        if let Ok((_, id)) = codec::decode_due_key(key) {
            problems.push(format!(
                "due index: queued record {id} backing off is missing from it"
            ));
        }
    }

    let mut counted = 0u64;
    for state in RecordState::ALL {
        let stored = match trees.counters.get(codec::counter_key(state))? {
            Some(bytes) => codec::decode_u64(&bytes)?,
            None => 0,
        };
        counted += stored;
        let actual = want.counts.get(&state).copied().unwrap_or(0);
        if stored != actual {
            problems.push(format!(
                "counter {state}: says {stored}, records say {actual}"
            ));
        }
    }
    if counted != total {
        problems.push(format!(
            "counters total {counted}, but there are {total} records"
        ));
    }

    let mut ledger_seen = BTreeSet::new();
    for kv in trees.ledger.iter() {
        let (key, value) = kv?;
        ledger_seen.insert(key.to_vec());
        let label = String::from_utf8_lossy(&key).into_owned();
        let actual = match codec::decode_ledger(&value) {
            Ok(entry) => entry,
            Err(e) => {
                problems.push(format!("ledger entry {label} cannot be read: {e}"));
                continue;
            }
        };
        match want.ledger.get(key.as_ref()) {
            Some(entry) if *entry == actual => {}
            Some(entry) => problems.push(format!(
                "ledger entry {label}: stored {actual:?}, record {} history says {entry:?}",
                entry.record
            )),
            None => problems.push(format!(
                "ledger entry {label}: no attempt of record {} uses it",
                actual.record
            )),
        }
    }
    for (key, entry) in want
        .ledger
        .iter()
        .filter(|(k, _)| !ledger_seen.contains(*k))
    {
        problems.push(format!(
            "ledger: key {} of record {} is missing",
            String::from_utf8_lossy(key),
            entry.record
        ));
    }
    Ok(problems)
}

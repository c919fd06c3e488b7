//! The shipped example configuration parses and documents every key the code reads.

use icsync::config::{parse_file, resolve, Defaults, Overrides};
use std::path::Path;

#[test]
fn example_config_parses_and_resolves() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/icsync.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let file = parse_file(&text, &path).unwrap();
    let defaults = Defaults {
        config_file: "/c".into(),
        data_dir: "/d".into(),
        key_file: "/c/data.key".into(),
        drop_dir: "/h/icsync-drop".into(),
    };
    let s = resolve(file, Overrides::default(), &defaults, None).unwrap();
    assert_eq!(s.concurrency, 8);
}

#[test]
fn example_config_mentions_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/icsync.example.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let src = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config.rs"))
        .unwrap();
    // Every `pub NAME: Option<...>` member of FileConfig must appear in the example.
    let start = src.find("pub struct FileConfig").unwrap();
    let body = &src[start..start + src[start..].find('}').unwrap()];
    for line in body.lines() {
        if let Some(rest) = line.trim().strip_prefix("pub ") {
            if let Some((name, _)) = rest.split_once(':') {
                assert!(
                    text.contains(&format!("{name} =")),
                    "{name} is not documented"
                );
            }
        }
    }
}

//! Replays the fuzzers' corpora (fuzz/corpus/<target>/*, kept in the repository,
//! including every input that ever crashed a target) through the same entry points
//! the cargo-fuzz targets call. Runs on stable Rust, without libFuzzer.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut inputs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    inputs.sort();
    // The seeds alone are a few dozen; the fuzzers' runs add hundreds.
    assert!(inputs.len() >= 5, "{target}: only {} inputs", inputs.len());
    for path in inputs {
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{target}: {} panicked", path.display());
    }
}

#[test]
fn scim_filter_corpus() {
    replay("scim_filter", rollcall::fuzzing::scim_filter);
}

#[test]
fn scim_patch_corpus() {
    replay("scim_patch", rollcall::fuzzing::scim_patch);
}

#[test]
fn scim_user_body_corpus() {
    replay("scim_user_body", rollcall::fuzzing::scim_user_body);
}

#[test]
fn oauth_forms_corpus() {
    replay("oauth_forms", rollcall::fuzzing::oauth_forms);
}

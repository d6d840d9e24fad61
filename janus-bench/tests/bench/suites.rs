//! The shipped suites.

#[path = "../../examples/gen_suites.rs"]
mod generator;

use janus_bench::{Category, Suite};

#[test]
fn shipped_suites_are_generated() {
    let (train, dev) = generator::generate();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("suites/public");
    assert!(
        std::fs::read_to_string(dir.join("train.jsonl")).unwrap() == train
            && std::fs::read_to_string(dir.join("dev.jsonl")).unwrap() == dev,
        "suites/public differs from examples/gen_suites.rs: run `cargo run -p janus-bench --example gen-suites`"
    );
}

#[test]
fn shipped_suites_have_enough_items_per_category() {
    for (name, minimum) in [("public/train", 20), ("public/dev", 10)] {
        let suite = Suite::load(name).unwrap();
        for (category, count) in suite.counts() {
            assert!(count >= minimum, "{name} {category}: {count} < {minimum}");
        }
        assert_eq!(suite.counts().len(), Category::ALL.len());
        // Every multimodal item carries an image as a data: URL, and states facts to find.
        for item in suite
            .items
            .iter()
            .filter(|i| i.category == Category::Multimodal)
        {
            assert!(item.has_image(), "{}", item.id);
            assert!(!item.expected.contains.is_empty(), "{}", item.id);
        }
        for item in suite.items.iter().filter(|i| i.category == Category::Code) {
            assert!(!item.expected.test_cases.is_empty(), "{}", item.id);
        }
    }
}

#[test]
fn suites_load_from_folders_and_name_missing_files() {
    // A folder of JSONL files loads like `private/test` does from its variable.
    let dir = std::env::temp_dir().join(format!("janus-bench-private-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("b.jsonl"), "{\"id\":\"b1\",\"category\":\"chat\",\"input\":{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}}\n").unwrap();
    std::fs::write(dir.join("a.jsonl"), "{\"id\":\"a1\",\"category\":\"code\",\"input\":{\"messages\":[{\"role\":\"user\",\"content\":\"y\"}]}}\n").unwrap();
    std::fs::write(dir.join("notes.txt"), "not a suite").unwrap();
    let suite = Suite::load(dir.to_str().unwrap()).unwrap();
    let ids: Vec<&str> = suite.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["a1", "b1"]);
    std::fs::remove_dir_all(&dir).unwrap();
    let error = Suite::load("no/such/suite.jsonl").unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("cannot read suite no/such/suite.jsonl"),
        "{error}"
    );
}

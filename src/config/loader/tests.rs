use super::*;
use prost_reflect::DynamicMessage;
use std::path::PathBuf;

const CDS: &str = "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster";

/// A directory with `a.yaml` holding one document per text.
fn dir_with(tag: &str, docs: &[String]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("xdsd-doccache-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("a.yaml"), docs.join("---\n")).expect("write");
    dir
}

fn messages(loaded: &Loaded) -> Vec<Arc<DynamicMessage>> {
    loaded
        .resources
        .iter()
        .map(|r| Arc::clone(&r.message))
        .collect()
}

#[test]
fn a_reload_decodes_only_changed_documents_and_locates_as_before() {
    let doc =
        |name: &str, timeout: &str| format!("{CDS}\nname: {name}\nconnect_timeout: {timeout}\n");
    let bad = format!("{CDS}\nname: bad\nconnect_timeoutt: 1s\n");
    let dir = dir_with("reuse", &[doc("a", "1s"), doc("b", "1s"), bad.clone()]);
    let mut cache = DocumentCache::default();
    let first = load_dir_cached(&dir, ReadLimits::default(), &mut cache).expect("loads");
    let fresh = load_dir(&dir).expect("loads");
    assert_eq!(
        format!("{:?}", first.diagnostics),
        format!("{:?}", fresh.diagnostics)
    );

    // b changes; a and the bad document keep their text and first line.
    std::fs::write(
        dir.join("a.yaml"),
        [doc("a", "1s"), doc("b", "2s"), bad].join("---\n"),
    )
    .expect("write");
    let second = load_dir_cached(&dir, ReadLimits::default(), &mut cache).expect("loads");
    let (before, after) = (messages(&first), messages(&second));
    assert!(Arc::ptr_eq(&before[0], &after[0]), "a is reused");
    assert!(!Arc::ptr_eq(&before[1], &after[1]), "b is decoded again");
    assert_eq!(
        format!("{:?}", second.diagnostics),
        format!("{:?}", load_dir(&dir).expect("loads").diagnostics),
        "findings of reused documents are the same, at the same place"
    );

    // A line more above every document: all move, none is reused, marks follow.
    std::fs::write(
        dir.join("a.yaml"),
        format!(
            "# moved\n{}",
            std::fs::read_to_string(dir.join("a.yaml")).expect("read")
        ),
    )
    .expect("write");
    let third = load_dir_cached(&dir, ReadLimits::default(), &mut cache).expect("loads");
    assert!(!Arc::ptr_eq(&after[0], &messages(&third)[0]));
    assert_eq!(
        format!("{:?}", third.diagnostics),
        format!("{:?}", load_dir(&dir).expect("loads").diagnostics)
    );
    assert_eq!(
        cache.files.values().map(|f| f.parts.len()).sum::<usize>(),
        3,
        "the cache holds this load's parts only"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

const CLUSTER: &str = "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: a\nconnect_timeout: 1s\n";

#[test]
fn three_document_forms() {
    let text = format!(
        "{CLUSTER}---\nkind: Cluster\nnodes: {{cluster: [\"edge*\"]}}\nspec: {{name: b, connect_timeout: 1s}}\n---\nversion_info: \"1\"\nresources:\n- {{\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster, name: c}}\n---\n"
    );
    let loaded = load_str("f.yaml", &text);
    assert!(
        loaded.diagnostics.is_ok(),
        "{:?}",
        loaded.diagnostics.sorted()
    );
    let names: Vec<&str> = loaded.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(loaded.resources[1].selector.cluster, ["edge*"]);
}

#[test]
fn non_resources_are_errors() {
    let loaded = load_str(
        "f.yaml",
        "\"@type\": type.googleapis.com/envoy.config.core.v3.Address\n---\nfoo: 1\n---\nkind: Nope\nspec: {}\n",
    );
    let text: Vec<String> = loaded
        .diagnostics
        .sorted()
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(text.len(), 3, "{text:?}");
    assert!(text[0].contains("not a resource type xdsd serves"));
    assert!(text[1].starts_with("f.yaml:3:1: error: not an xdsd document"));
    assert!(text[2].starts_with("f.yaml:5:7: error: unknown kind"));
}

#[test]
fn nameless_listener_gets_a_name_from_its_address() {
    let loaded = load_str(
        "l.yaml",
        "\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\naddress: {socket_address: {address: 0.0.0.0, port_value: 10000}}\n",
    );
    assert_eq!(loaded.resources[0].name, "0.0.0.0_10000");
    assert_eq!(loaded.diagnostics.warning_count(), 1);
}

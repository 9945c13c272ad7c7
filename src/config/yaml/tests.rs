use super::*;

fn one(text: &str) -> Node {
    parse_documents(text, NestingLimits::default())
        .expect("parses")
        .remove(0)
}

#[test]
fn marks_are_one_based_and_point_at_values() {
    let doc = one("a: 1\nb:\n  c: [x, 'y']\n");
    let b = doc.get("b").expect("b");
    assert_eq!(b.mark, Mark { line: 3, col: 3 });
    let c = b.get("c").expect("c");
    let NodeKind::Seq(items) = &c.kind else {
        panic!("seq")
    };
    assert_eq!(items[1].mark, Mark { line: 3, col: 10 });
    assert!(!items[1].as_scalar().expect("scalar").plain);
}

#[test]
fn scalars_follow_envoy_yaml_rules() {
    let v = |t: &str| {
        format!(
            "{:?}",
            Scalar {
                text: t.into(),
                plain: true
            }
            .value()
        )
    };
    assert_eq!(v("yes"), "Bool(true)");
    assert_eq!(v("Off"), "Bool(false)");
    assert_eq!(v("oN"), "Str(\"oN\")");
    assert_eq!(v("0x10"), "Int(16)");
    assert_eq!(v("12345678901"), "Str(\"12345678901\")");
    assert_eq!(v("1.5"), "Str(\"1.5\")");
    assert_eq!(v("~"), "Null");
    assert_eq!(
        Scalar {
            text: "123".into(),
            plain: false
        }
        .value(),
        ScalarValue::Str("123")
    );
}

#[test]
fn multi_documents_and_empty_ones() {
    let docs = parse_documents("a: 1\n---\n---\nb: 2\n", NestingLimits::default()).expect("parses");
    assert_eq!(docs.len(), 3);
    assert!(docs[1].is_null());
}

/// Parsing a file part by part gives the same documents, marks
/// included, as parsing it whole.
fn assert_split_parse_is_whole_parse(text: &str, what: &str) {
    let whole = parse_documents(text, NestingLimits::default());
    let parts: Result<Vec<Node>, YamlError> = split_documents(text)
        .into_iter()
        .map(|(line, part)| parse_documents_at(part, NestingLimits::default(), line))
        .collect::<Result<Vec<Vec<Node>>, _>>()
        .map(|docs| docs.into_iter().flatten().collect());
    match (&whole, &parts) {
        (Ok(w), Ok(p)) => assert!(
            same_documents(w, p),
            "{what}: split parse differs:\n{w:?}\n{p:?}"
        ),
        (Err(w), Err(p)) => assert_eq!(w.mark, p.mark, "{what}: error at another place"),
        _ => panic!(
            "{what}: whole {:?} vs parts {:?}",
            whole.is_ok(),
            parts.is_ok()
        ),
    }
}

#[test]
fn documents_parse_the_same_split_or_whole() {
    let cases = [
        "",
        "a: 1\n",
        "---\na: 1\n",
        "# lead\n---\na: 1\n---\n---\nb: [1,\n  2]\n--- # c\nc: |\n  x\n  ---y\n",
        "a: 1\n---\r\nb: 2\r\n",
        "--- {a: 1}\n--- !!str x\n",
        "a: &x 1\nb: *x\n---\nc: *x\n",
        "%YAML 1.2\n---\na: 1\n...\n---\nb: 2\n",
        "a: 1\n---\nb: [\n",
        "---\n",
        "- |\n---",
    ];
    for (i, text) in cases.iter().enumerate() {
        assert_split_parse_is_whole_parse(text, &format!("case {i}"));
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [
        "config-examples",
        "tests/fixtures",
        "../shared/corpus/envoy-configs",
    ] {
        collect_yaml(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found {} files", files.len());
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        assert_split_parse_is_whole_parse(&text, &file.display().to_string());
    }
}

fn collect_yaml(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_yaml(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            out.push(path);
        }
    }
}

#[test]
fn alias_bomb_is_refused() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let p = i - 1;
        text.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let err = parse_documents(&text, NestingLimits::default()).expect_err("refused");
    assert!(err.message.contains("alias bomb"), "{}", err.message);
}

#[test]
fn deep_nesting_is_refused() {
    let text = "[".repeat(500);
    assert!(parse_documents(&text, NestingLimits::default()).is_err());
}

#[test]
fn syntax_errors_are_located() {
    let err = parse_documents("a: 1\nb: [1, 2\n", NestingLimits::default()).expect_err("error");
    assert!(err.mark.line >= 2, "{:?}", err);
}

#[test]
fn emitted_yaml_reads_back_identically() {
    let value = serde_json::json!({
        "name": "yes", "port": 8080, "n": "8080", "empty": {}, "list": [{"a": 1, "b": [1, 2]}, "x: y"],
        "nested": {"k": null, "t": true, "s": "it's"}
    });
    let text = to_yaml(&value);
    let doc = one(&text);
    assert_eq!(doc.get("name").and_then(Node::as_str), Some("yes"));
    assert_eq!(doc.get("n").and_then(Node::as_str), Some("8080"));
    assert_eq!(
        doc.get("port").and_then(Node::as_scalar).map(Scalar::value),
        Some(ScalarValue::Int(8080))
    );
    let list = doc.get("list").expect("list");
    let NodeKind::Seq(items) = &list.kind else {
        panic!("seq: {text}")
    };
    assert_eq!(items[1].as_str(), Some("x: y"));
    assert_eq!(
        items[0]
            .get("b")
            .map(|b| matches!(b.kind, NodeKind::Seq(_))),
        Some(true)
    );
}

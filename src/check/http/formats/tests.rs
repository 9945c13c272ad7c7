use super::*;

fn defect(text: &str) -> Option<&'static str> {
    let format = Format {
        what: "f",
        header_value: false,
        extensions: Some(Vec::new()),
    };
    first_defect(text, &format).map(|(rule, _)| rule.id)
}

#[test]
fn tokens_are_read_as_envoy_reads_them() {
    assert_eq!(
        defect("%START_TIME(%Y-%m-%d)% %START_TIME(a)b)% 100%%"),
        None
    );
    assert_eq!(defect("%REQ(a)b)%"), Some("format-command-arguments"));
    assert_eq!(defect("%PROTOCOL()% %REQ(X):0% %START_TIME(%)%"), None);
    assert_eq!(
        defect("%ENVIRONMENT(UNSET)% %COMMON_DURATION(FOO:BAR)%"),
        None
    );
    assert_eq!(
        defect("%UPSTREAM_METADATA([\"a\",\"b\"])% %METADATA(ROUTE)%"),
        None
    );
    assert_eq!(defect("50% off"), Some("format-malformed-command"));
    assert_eq!(defect("%REQ(X):%"), Some("format-malformed-command"));
    assert_eq!(defect("%PROTOCOL"), Some("format-malformed-command"));
    assert_eq!(
        defect("%PER_REQUEST_STATE(x)%"),
        Some("format-unknown-command")
    );
    assert_eq!(defect("%REQ()%"), Some("format-command-arguments"));
    assert_eq!(defect("%PROTOCOL:5%"), Some("format-command-arguments"));
    assert_eq!(
        defect("%UPSTREAM_METADATA(a):3%"),
        Some("format-command-arguments")
    );
    assert_eq!(
        defect("%FILTER_STATE(a:FIELD)%"),
        Some("format-command-option")
    );
    assert_eq!(
        defect("%FILTER_STATE(a:PLAIN:b)%"),
        Some("format-command-option")
    );
    assert_eq!(defect("%FILTER_STATE(a:FIELD:b)% %PATH(NQ:ORIG)%"), None);
    assert_eq!(defect("%METADATA%"), Some("format-command-option"));
    assert_eq!(defect("%XFCC_VALUE(URI)%"), None);
}

use super::numbers::compare_bounds;
use super::*;

#[test]
fn bounds_inclusive_and_exclusive() {
    let show = |x: f64| x.to_string();
    assert!(compare_bounds(70000.0, None, None, None, Some(65535.0), &show).is_some());
    assert!(compare_bounds(80.0, None, None, None, Some(65535.0), &show).is_none());
    assert!(compare_bounds(0.0, Some(0.0), None, None, None, &show).is_some());
    // Exclusive range: v < 10 or v > 20.
    assert!(compare_bounds(15.0, Some(20.0), None, Some(10.0), None, &show).is_some());
    assert!(compare_bounds(5.0, Some(20.0), None, Some(10.0), None, &show).is_none());
}

#[test]
fn re2_syntax() {
    assert!(check_re2("^/api/.*$").is_ok());
    assert!(check_re2("(").is_err());
    assert!(check_re2("(?=x)").is_err());
}

//! The rules reference, `docs/rules.md`, generated from the registry
//! (a test keeps the checked-in file current, as for the man page).

use super::{Rule, all};

/// The whole reference, in Markdown.
pub fn rules_markdown() -> String {
    let rules = all();
    let mut text = String::from(
        "# xdsd lint rules\n\n\
         Generated from the rule registry (`src/check`); do not edit by hand \
         (regenerate it with `XDSD_UPDATE_MAN=1 cargo test --test it man_page`).\n\n\
         Every diagnostic ends with its rule id in brackets. `xdsd lint --explain ID` \
         prints a rule's explanation; `--allow ID` drops its findings and `--deny ID` \
         makes them errors; `# xdsd: allow(ID)` in a resource's YAML document allows it \
         for that document only. Errors are what Envoy 1.40 rejects; warnings are what \
         it accepts but is worth a look. Rules marked *not allowable* leave nothing to \
         serve when they fire.\n\n\
         | rule | severity | summary |\n|---|---|---|\n",
    );
    for rule in &rules {
        text.push_str(&format!(
            "| [`{id}`](#{id}) | {} | {} |\n",
            rule.severity.as_str(),
            rule.summary.replace('|', "\\|"),
            id = rule.id
        ));
    }
    for rule in &rules {
        text.push_str(&section(rule));
    }
    text
}

fn section(rule: &Rule) -> String {
    let mut text = format!(
        "\n## {}\n\n{} ({}{})\n\n{}\n",
        rule.id,
        rule.summary,
        rule.severity.as_str(),
        if rule.allowable {
            ""
        } else {
            ", not allowable"
        },
        rule.explanation.trim()
    );
    if !rule.envoy.is_empty() {
        text.push_str(&format!("\nMirrors Envoy's `{}`.\n", rule.envoy));
    }
    text
}

//! The Lua filter: its scripts must load in LuaJIT.

use super::{field, join, step, text};
use crate::check::{Finding, Rule};
use crate::config::resource::PathStep;
use prost_reflect::{DynamicMessage, Value};

pub static LOAD_ERROR: Rule = Rule {
    id: "lua-script-load-error",
    summary: "an inline Lua script does not parse as LuaJIT 2.1 (Lua 5.1) source",
    explanation: "Envoy compiles every Lua script with LuaJIT (Lua 5.1 syntax plus goto and 64-bit integer \
literals) when it loads the config, and rejects the listener on a syntax error. Lua 5.3/5.4 operators such as \
`//` and `&` are not available: use math.floor and the `bit` library instead. Envoy also runs the chunk at \
load, so a top-level runtime error (`error()`, a missing `require`) fails too; lint checks only the syntax, \
with LuaJIT's own parser.",
    envoy: "source/extensions/filters/common/lua/lua.cc",
    ..Rule::ERROR
};

pub static INLINE_AND_DEFAULT: Rule = Rule {
    id: "lua-inline-code-and-default-source",
    summary: "the Lua filter sets both inline_code and default_source_code",
    explanation: "`inline_code` is the deprecated form of `default_source_code`; a Lua filter may use one \
or the other, not both (\"Only one of `inline_code` or `default_source_code` can be set\").",
    envoy: "source/extensions/filters/http/lua/lua_filter.cc",
    ..Rule::ERROR
};

pub fn message(name: &str, m: &DynamicMessage, out: &mut Vec<Finding>) {
    match name {
        "envoy.extensions.filters.http.lua.v3.Lua" => lua(m, out),
        "envoy.extensions.filters.http.lua.v3.LuaPerRoute" => {
            if let Some((f, Value::Message(source))) = field(m, "source_code") {
                data_source(source, vec![PathStep::Field(f)], out);
            }
        }
        _ => {}
    }
}

fn lua(m: &DynamicMessage, out: &mut Vec<Finding>) {
    let inline = text(m, "inline_code");
    if !inline.is_empty() && m.has_field_by_name("default_source_code") {
        out.push(Finding::at(
            &INLINE_AND_DEFAULT,
            step(m, "inline_code"),
            "lua: set only one of inline_code or default_source_code",
        ));
        return;
    }
    if !inline.is_empty() {
        script(inline.as_bytes(), step(m, "inline_code"), out);
    }
    if let Some((f, Value::Message(source))) = field(m, "default_source_code") {
        data_source(source, vec![PathStep::Field(f)], out);
    }
    if let Some((f, Value::Map(sources))) = field(m, "source_codes") {
        for (key, source) in sources {
            if let Value::Message(source) = source {
                data_source(
                    source,
                    vec![PathStep::Field(f.clone()), PathStep::key(key)],
                    out,
                );
            }
        }
    }
}

/// An inline DataSource's script (files and environment variables are not read).
fn data_source(source: &DynamicMessage, path: Vec<PathStep>, out: &mut Vec<Finding>) {
    if let Some((inner, bytes)) = super::inline_source(source) {
        script(&bytes, join(&path, inner), out);
    }
}

fn script(source: &[u8], path: Vec<PathStep>, out: &mut Vec<Finding>) {
    if let Some(error) = syntax_error(source) {
        out.push(Finding::at(
            &LOAD_ERROR,
            path,
            format!("Lua script does not load: {error}"),
        ));
    }
}

/// LuaJIT's own complaint about the chunk, compiled but not run.
fn syntax_error(source: &[u8]) -> Option<String> {
    // No standard library: nothing of the script runs, it is only compiled.
    let lua = mlua::Lua::new_with(mlua::StdLib::NONE, mlua::LuaOptions::default()).ok()?;
    match lua.load(source).set_name("=script").into_function() {
        Ok(_) => None,
        Err(mlua::Error::SyntaxError { message, .. }) => Some(
            message
                .strip_prefix("script:")
                .map_or(message.clone(), |rest| {
                    format!("line {}", rest.trim_start())
                }),
        ),
        // Out of memory and the like say nothing about the script.
        Err(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::syntax_error;

    #[test]
    fn luajit_syntax_is_accepted_and_lua53_operators_are_not() {
        assert_eq!(syntax_error(b"goto done\n::done::\nlocal x = 1LL"), None);
        assert_eq!(syntax_error(b"error('boom')"), None);
        let e = syntax_error(b"local half = 10 // 2").expect("rejected");
        assert!(e.contains("unexpected symbol near '/'"), "{e}");
        let e = syntax_error(b"f(\n'x'\nend").expect("rejected");
        assert!(e.starts_with("line 3:"), "{e}");
    }
}

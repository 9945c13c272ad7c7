//! Output of resources: as a config directory (typed `"@type"` documents, in
//! YAML or JSON), or as one Envoy bootstrap with everything under
//! `static_resources` for `envoy --mode validate`.

use crate::config::resource::Resource;
use crate::config::schema::{ResourceType, TYPE_URL_PREFIX};
use crate::config::yaml;
use prost_reflect::{DynamicMessage, SerializeOptions};
use serde_json::{Map, Value};

/// Output formats of `render`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Multi-document YAML, one `"@type"` resource per document.
    Yaml,
    /// One JSON document: `{"resources": [...]}` (the DiscoveryResponse form).
    Json,
}

/// A resource as JSON in the proto3 mapping, with `"@type"` and snake_case names.
/// Keys are sorted, so equal resources print identically.
pub fn to_json(resource: &Resource) -> Value {
    message_json(resource.rtype, &resource.message)
}

/// [`to_json`] with every secret replaced by `[redacted]` ([`crate::config::redact`]):
/// what xdsd shows of a resource anywhere but in `render`'s default output.
pub fn redacted_json(resource: &Resource) -> Value {
    let mut message = resource.message.as_ref().clone();
    crate::config::redact::message(&mut message);
    message_json(resource.rtype, &message)
}

/// A message of type `rtype` as [`to_json`] prints it.
pub fn message_json(rtype: ResourceType, message: &DynamicMessage) -> Value {
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false);
    let mut serializer = serde_json::Serializer::new(Vec::new());
    let body = match message.serialize_with_options(&mut serializer, &options) {
        Ok(()) => serde_json::from_slice(&serializer.into_inner()).unwrap_or(Value::Null),
        Err(e) => Value::String(format!("<cannot serialize: {e}>")),
    };
    let body = integral_floats_as_integers(body);
    let mut object = Map::new();
    object.insert(
        "@type".into(),
        Value::String(format!("{TYPE_URL_PREFIX}{}", rtype.message_name())),
    );
    if let Value::Object(fields) = body {
        object.extend(fields);
    }
    Value::Object(object)
}

/// Writes whole-number floats (a Struct's `3`, serialized as `3.0`) as
/// integers: Envoy's YAML reader takes `3.0` for a string.
fn integral_floats_as_integers(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(items) => {
            Value::Array(items.into_iter().map(integral_floats_as_integers).collect())
        }
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k, integral_floats_as_integers(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Renders resources (already filtered and ordered) as a config directory's
/// file; with `redact`, secrets are replaced by `[redacted]`.
pub fn render(resources: &[&Resource], format: Format, redact: bool) -> String {
    let json = if redact { redacted_json } else { to_json };
    render_values(resources.iter().map(|r| json(r)).collect(), format)
}

/// Renders resources already turned into JSON by [`to_json`] or [`message_json`].
pub fn render_values(values: Vec<Value>, format: Format) -> String {
    match format {
        Format::Yaml => values
            .iter()
            .map(|v| format!("---\n{}", yaml::to_yaml(v)))
            .collect(),
        Format::Json => {
            let doc = serde_json::json!({ "resources": values });
            let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
            text.push('\n');
            text
        }
    }
}

/// Builds an Envoy bootstrap holding `resources` as `static_resources`:
/// RDS is inlined as `route_config`, EDS clusters become STATIC with their
/// `load_assignment`, and SDS secrets fetched over xDS become static secrets.
/// Works on plain JSON so it also serves for configs that xdsd rejects.
pub fn envoy_static(resources: &[(ResourceType, Value)]) -> Value {
    let of_type = |t: ResourceType| {
        resources
            .iter()
            .filter(move |(rt, _)| *rt == t)
            .map(|(_, v)| without_type(v))
    };
    let routes: Vec<Value> = of_type(ResourceType::RouteConfiguration).collect();
    let endpoints: Vec<Value> = of_type(ResourceType::ClusterLoadAssignment).collect();
    let clusters: Vec<Value> = of_type(ResourceType::Cluster)
        .map(|c| static_cluster(c, &endpoints))
        .collect();
    let mut listeners: Vec<Value> = of_type(ResourceType::Listener).collect();
    for listener in &mut listeners {
        inline_rds(listener, &routes);
    }
    let mut bootstrap = serde_json::json!({
        "static_resources": { "clusters": clusters, "listeners": listeners, "secrets": of_type(ResourceType::Secret).collect::<Vec<_>>() }
    });
    drop_xds_sds_sources(&mut bootstrap);
    bootstrap
}

fn without_type(v: &Value) -> Value {
    let mut v = v.clone();
    if let Value::Object(m) = &mut v {
        m.remove("@type");
    }
    v
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(*k))
        .and_then(Value::as_str)
}

/// An EDS cluster whose ClusterLoadAssignment is in the set becomes STATIC
/// with it inline. One without `eds_cluster_config` stays EDS: Envoy refuses
/// to create it ("cannot create an EDS cluster without an EDS config",
/// `source/extensions/clusters/eds/eds.cc`), and the static form must not hide
/// that from a referee.
fn static_cluster(mut cluster: Value, endpoints: &[Value]) -> Value {
    if str_at(&cluster, &["type"]) != Some("EDS") || cluster.get("eds_cluster_config").is_none() {
        return cluster;
    }
    let name = str_at(&cluster, &["eds_cluster_config", "service_name"])
        .filter(|s| !s.is_empty())
        .or_else(|| str_at(&cluster, &["name"]))
        .unwrap_or("")
        .to_string();
    let assignment = endpoints
        .iter()
        .find(|e| str_at(e, &["cluster_name"]) == Some(name.as_str()));
    if let (Some(assignment), Value::Object(m)) = (assignment, &mut cluster) {
        m.remove("eds_cluster_config");
        m.insert("type".into(), Value::String("STATIC".into()));
        m.insert("load_assignment".into(), assignment.clone());
    }
    cluster
}

fn inline_rds(v: &mut Value, routes: &[Value]) {
    match v {
        Value::Object(m) => {
            let is_hcm = m
                .get("@type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with(".HttpConnectionManager"));
            let rds_name = m
                .get("rds")
                .and_then(|r| r.get("route_config_name"))
                .and_then(Value::as_str)
                .map(str::to_string);
            if let (true, Some(name)) = (is_hcm, rds_name)
                && let Some(route) = routes
                    .iter()
                    .find(|r| str_at(r, &["name"]) == Some(name.as_str()))
            {
                m.remove("rds");
                m.insert("route_config".into(), route.clone());
            }
            m.values_mut().for_each(|child| inline_rds(child, routes));
        }
        Value::Array(items) => items.iter_mut().for_each(|child| inline_rds(child, routes)),
        _ => {}
    }
}

fn drop_xds_sds_sources(v: &mut Value) {
    match v {
        Value::Object(m) => {
            let over_xds = m
                .get("sds_config")
                .is_some_and(|s| s.get("path").is_none() && s.get("path_config_source").is_none());
            if over_xds && m.contains_key("name") {
                m.remove("sds_config");
            }
            m.values_mut().for_each(drop_xds_sds_sources);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_xds_sds_sources),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::loader::load_str;

    const SET: &str = "\"@type\": type.googleapis.com/envoy.config.cluster.v3.Cluster\nname: b\ntype: EDS\neds_cluster_config: {eds_config: {ads: {}}}\n---\n\"@type\": type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment\ncluster_name: b\n---\n\"@type\": type.googleapis.com/envoy.config.route.v3.RouteConfiguration\nname: r\n---\n\"@type\": type.googleapis.com/envoy.config.listener.v3.Listener\nname: l\nfilter_chains:\n- filters:\n  - name: hcm\n    typed_config:\n      \"@type\": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager\n      stat_prefix: s\n      rds: {route_config_name: r, config_source: {ads: {}}}\n";

    #[test]
    fn rendered_yaml_loads_back_to_the_same_resources() {
        let loaded = load_str("a.yaml", SET);
        let all: Vec<&Resource> = loaded.resources.iter().collect();
        let text = render(&all, Format::Yaml, false);
        let again = load_str("b.yaml", &text);
        assert!(
            again.diagnostics.is_ok(),
            "{:?}",
            again.diagnostics.sorted()
        );
        let again_refs: Vec<&Resource> = again.resources.iter().collect();
        assert_eq!(render(&again_refs, Format::Yaml, false), text);
        let json = render(&all, Format::Json, false);
        let from_json = load_str("c.json", &json);
        assert_eq!(
            from_json.resources.len(),
            4,
            "{:?}",
            from_json.diagnostics.sorted()
        );
    }

    #[test]
    fn static_bootstrap_inlines_rds_and_eds() {
        let loaded = load_str("a.yaml", SET);
        let typed: Vec<(ResourceType, Value)> = loaded
            .resources
            .iter()
            .map(|r| (r.rtype, to_json(r)))
            .collect();
        let b = envoy_static(&typed);
        let cluster = &b["static_resources"]["clusters"][0];
        assert_eq!(cluster["type"], "STATIC");
        assert_eq!(cluster["load_assignment"]["cluster_name"], "b");
        let hcm = &b["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
        assert_eq!(hcm["route_config"]["name"], "r");
        assert!(hcm.get("rds").is_none());
    }

    #[test]
    fn an_eds_cluster_without_eds_config_stays_eds_so_envoy_still_refuses_it() {
        let cluster = serde_json::json!({"name": "b", "type": "EDS"});
        let endpoints = [serde_json::json!({"cluster_name": "b"})];
        let kept = static_cluster(cluster.clone(), &endpoints);
        assert_eq!(kept, cluster);
    }
}

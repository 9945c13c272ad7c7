//! Secrets are never displayed: a config directory holding a real private
//! key (rcgen) in a Secret is served, rendered, diffed, linted with errors
//! and queried through every door that shows config, and no output holds
//! any line of the key's base64 body. `render` without `--redact` does (the
//! check would find a key), since its output must be a loadable directory.

use crate::common::pki::{Pki, body_lines, indented, server_sans};
use crate::common::{ScratchDir, Xdsd, wait_for, xdsd};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::status::v3::ClientStatusRequest;
use envoy_types::pb::envoy::service::status::v3::client_status_discovery_service_client::ClientStatusDiscoveryServiceClient;
use prost::Message;
use std::path::Path;
use std::process::Output;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const SECRET: &str = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";

/// A Secret named `served-cert` holding `cert` and `key` inline.
fn secret_doc(cert: &str, key: &str) -> String {
    format!(
        "\"@type\": {SECRET}\nname: served-cert\ntls_certificate:\n  certificate_chain:\n    inline_string: |\n{}  private_key:\n    inline_string: |\n{}",
        indented(cert, 6),
        indented(key, 6)
    )
}

/// The same Secret with mistakes next to the key: an unknown field, a
/// second source for the key, and an unquoted all-digit token.
fn broken_doc(cert: &str, key: &str) -> String {
    format!(
        "{}    filename: /etc/also-a-key.pem\n  not_a_field: 1\n---\n\"@type\": {SECRET}\nname: token\ngeneric_secret: {{secret: {{inline_string: 27182818}}}}\n",
        secret_doc(cert, key)
    )
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Panics when `output` (what door `door` showed) holds a line of a key.
fn assert_no_key(door: &str, output: &str, keys: &[&str]) {
    for key in keys {
        for line in body_lines(key) {
            assert!(
                !output.contains(&line),
                "{door} shows the private key (line `{line}`):\n{output}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_door_displays_a_private_key() {
    let work = ScratchDir::new("redaction");
    let pki = Pki::new(work.path());
    let read = |p: &Path| std::fs::read_to_string(p).expect("read PEM");
    let (cert1, key1) = pki.leaf("served-1", server_sans());
    let (cert2, key2) = pki.leaf("served-2", server_sans());
    let (cert1, key1, cert2, key2) = (read(&cert1), read(&key1), read(&cert2), read(&key2));
    let keys = [key1.as_str(), key2.as_str()];
    let v1 = work.write("v1/secret.yaml", &secret_doc(&cert1, &key1));
    let v1 = v1.parent().expect("dir").to_path_buf();
    let v2 = work.write("v2/secret.yaml", &secret_doc(&cert2, &key2));
    let v2 = v2.parent().expect("dir").to_path_buf();
    let broken = work.write("broken/secret.yaml", &broken_doc(&cert1, &key1));
    let broken = broken.parent().expect("dir").to_path_buf();
    let arg = |p: &Path| p.to_str().expect("UTF-8").to_string();

    // render: the key by default (so the check below can see one), none with --redact.
    let plain = text(&xdsd(&["render", "--dir", &arg(&v1)]));
    assert!(
        body_lines(&key1).iter().all(|l| plain.contains(l.as_str())),
        "render keeps the key by default:\n{plain}"
    );
    for format in ["yaml", "json"] {
        let redacted = xdsd(&["render", "--dir", &arg(&v1), "--redact", "--format", format]);
        assert!(redacted.status.success(), "{redacted:?}");
        let redacted = text(&redacted);
        assert!(redacted.contains("[redacted]"), "{redacted}");
        assert!(
            redacted.contains(body_lines(&cert1)[0].as_str()),
            "the certificate stays"
        );
        assert_no_key(
            &format!("render --redact --format {format}"),
            &redacted,
            &keys,
        );
    }
    let bootstrap = text(&xdsd(&[
        "render",
        "--dir",
        &arg(&v1),
        "--redact",
        "--envoy-static",
    ]));
    assert_no_key("render --redact --envoy-static", &bootstrap, &keys);

    // diff: the change is named, its values are not.
    let diff = text(&xdsd(&["diff", &arg(&v1), &arg(&v2)]));
    assert!(
        diff.contains("tls_certificate.private_key.inline_string: (a secret; changed)"),
        "{diff}"
    );
    assert_no_key("diff", &diff, &keys);

    // lint: errors in the file holding the key quote none of it.
    for format in ["text", "json", "github"] {
        let lint = xdsd(&["lint", "--dir", &arg(&broken), "--format", format]);
        assert_eq!(lint.status.code(), Some(1), "errors found: {lint:?}");
        let lint = text(&lint);
        assert!(lint.contains("not_a_field"), "{lint}");
        assert_no_key(&format!("lint --format {format}"), &lint, &keys);
        assert!(
            !lint.contains("27182818"),
            "lint quotes a secret token:\n{lint}"
        );
    }

    // serve: a client gets the Secret; CSDS, /config, status and the log show no key.
    let log = work.path().join("xdsd.log");
    let xds = Xdsd::start_with(&v1, &log, &[]);
    let (requests, rx) = mpsc::channel(4);
    let request = DiscoveryRequest {
        node: Some(Node {
            id: "edge-1".into(),
            cluster: "edge".into(),
            ..Default::default()
        }),
        type_url: SECRET.into(),
        resource_names: vec!["served-cert".into()],
        ..Default::default()
    };
    requests.send(request.clone()).await.expect("send");
    let mut ads =
        AggregatedDiscoveryServiceClient::connect(format!("http://127.0.0.1:{}", xds.listen))
            .await
            .expect("connect");
    let mut responses = ads
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .expect("ADS")
        .into_inner();
    let response = responses.message().await.expect("ok").expect("a response");
    let served = String::from_utf8_lossy(&response.encode_to_vec()).into_owned();
    assert!(
        served.contains(body_lines(&key1)[0].as_str()),
        "the client itself gets its key"
    );
    requests
        .send(DiscoveryRequest {
            version_info: response.version_info.clone(),
            response_nonce: response.nonce.clone(),
            ..request
        })
        .await
        .expect("ACK");

    let csds =
        ClientStatusDiscoveryServiceClient::connect(format!("http://127.0.0.1:{}", xds.listen))
            .await
            .expect("connect")
            .fetch_client_status(ClientStatusRequest::default())
            .await
            .expect("CSDS")
            .into_inner();
    assert_eq!(csds.config.len(), 1, "{csds:?}");
    let csds = String::from_utf8_lossy(&csds.encode_to_vec()).into_owned();
    assert!(csds.contains("[redacted]"), "{csds}");
    assert_no_key("CSDS", &csds, &keys);

    let config = xds
        .admin_get("/config?node_id=edge-1&node_cluster=edge")
        .body;
    assert!(config.contains("[redacted]"), "{config}");
    assert_no_key("/config", &config, &keys);
    let config = xds.admin_get("/config?node_id=edge-1&format=json").body;
    assert_no_key("/config?format=json", &config, &keys);

    let admin = format!("127.0.0.1:{}", xds.admin);
    let server = format!("127.0.0.1:{}", xds.listen);
    let status = tokio::task::block_in_place(|| {
        [
            text(&xdsd(&["status", "--admin", &admin])),
            text(&xdsd(&["status", "--admin", &admin, "--format", "json"])),
            text(&xdsd(&["status", "--xds", &server])),
            text(&xdsd(&["status", "--xds", &server, "--format", "json"])),
        ]
    });
    assert!(
        status[3].contains("served-cert") && status[3].contains("[redacted]"),
        "{}",
        status[3]
    );
    for shown in &status {
        assert_no_key("xdsd status", shown, &keys);
    }

    // A rejected reload of a file holding the key is logged without it.
    std::fs::copy(broken.join("secret.yaml"), v1.join("secret.yaml")).expect("copy");
    let rejected = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        xds.log().contains("reload rejected").then_some(())
    });
    assert!(
        rejected.is_some(),
        "the broken set is rejected:\n{}",
        xds.log()
    );
    let status = tokio::task::block_in_place(|| text(&xdsd(&["status", "--admin", &admin])));
    assert!(status.contains("REJECTED"), "{status}");
    assert_no_key("xdsd status after a rejected reload", &status, &keys);
    assert_no_key("the serve log", &xds.log(), &keys);
    assert!(
        !xds.log().contains("27182818"),
        "the log quotes a secret token"
    );
}

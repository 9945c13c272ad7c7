//! xDS-enabled gRPC servers (gRFC A36): a server asks xdsd for the Listener
//! named by its address (the template `xdsd bootstrap --format grpc`
//! prints), serves only once it has a valid one, and NACKs one it cannot
//! use while it keeps serving on the last good one.

use super::*;

for_each_grpc!(takes_its_listener_from_xdsd,);

/// The example's server Listener, for a server on `port`.
fn server_listener(port: u16) -> String {
    let text =
        std::fs::read_to_string(root().join("config-examples/grpc-proxyless/server-listener.yaml"))
            .expect("read example server listener");
    assert!(text.contains("127.0.0.1:50051") && text.contains("port_value: 50051"));
    text.replace("127.0.0.1:50051", &format!("127.0.0.1:{port}"))
        .replace("port_value: 50051", &format!("port_value: {port}"))
}

/// A client that tries once and gives up after `ready_timeout` seconds.
fn one_call(
    grpc: Grpc,
    work: &Path,
    label: &str,
    bootstrap: &Path,
    ready_timeout: &str,
) -> (bool, String) {
    let mut client = grpc.client(work, label, bootstrap, &["--ready-timeout", ready_timeout]);
    let status = client
        .guard
        .wait_exit(Duration::from_secs(30))
        .expect("the client exits");
    let text = std::fs::read_to_string(&client.out).unwrap_or_default();
    (status.success(), text)
}

/// The whole path on one implementation: a client resolves `xds:///greeter`
/// to an xDS-enabled server of the same implementation; the server accepts
/// no RPC until xdsd serves its Listener, then does; a Listener gRPC
/// servers cannot use (two network filters: Envoy accepts it, lint warns)
/// is NACKed, `/clients` shows the text, and the server keeps serving.
fn takes_its_listener_from_xdsd(grpc: Grpc) {
    let work = common::ScratchDir::new(&format!("grpc-{}-server", grpc.name()));
    let port = free_port();
    let config = work.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir config");
    write_config(&config, port);
    let xdsd = Xdsd::start(&config, &work.path().join("xdsd.log"));
    let server_bootstrap = write_bootstrap(work.path(), xdsd.listen, "server-1", &[]);
    let client_bootstrap = write_bootstrap(work.path(), xdsd.listen, "client-1", &[]);
    let _server = grpc.server(work.path(), "xds-server", port, Some(&server_bootstrap));

    // Without its Listener the server asked for it but serves nothing.
    let listener_type = "type.googleapis.com/envoy.config.listener.v3.Listener";
    wait_client_entry(&xdsd, "server-1", "the server's Listener request", |e| {
        e["types"][listener_type].is_object()
    });
    let (ok, text) = one_call(grpc, work.path(), "before", &client_bootstrap, "2");
    assert!(
        !ok,
        "an RPC succeeded before the server had its Listener:\n{text}"
    );

    replace_file(&config, "server-listener.yaml", &server_listener(port));
    let served = wait_for(Duration::from_secs(20), Duration::from_millis(200), || {
        let (ok, text) = one_call(grpc, work.path(), "after", &client_bootstrap, "2");
        (ok && text.contains("ok ") && text.contains("xds-server")).then_some(text)
    });
    assert!(
        served.is_some(),
        "the server never served after its Listener arrived; xdsd log:\n{}",
        tail(&xdsd.log(), 40)
    );
    // A server with an inline route_config subscribes to its Listener only.
    wait_client_entry(&xdsd, "server-1", "its Listener ACKed", |e| {
        let state = &e["types"][listener_type];
        state["sent_version"]
            .as_str()
            .is_some_and(|v| !v.is_empty())
            && state["sent_version"] == state["acked_version"]
    });

    // Two network filters: Envoy accepts it, gRPC servers do not.
    let refused = server_listener(port).replace(
        "  - filters:\n",
        "  - filters:\n    - name: envoy.filters.network.connection_limit\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.filters.network.connection_limit.v3.ConnectionLimit\n        stat_prefix: limit\n        max_connections: 100\n",
    );
    assert_ne!(refused, server_listener(port));
    let check = common::ScratchDir::new("grpc-server-lint");
    std::fs::write(check.path().join("server-listener.yaml"), &refused).expect("write");
    let lint = common::xdsd(&["lint", "--dir", check.path().to_str().expect("utf-8 path")]);
    let lint_text = String::from_utf8_lossy(&lint.stdout);
    assert!(
        lint.status.success(),
        "lint must accept it (Envoy does): {lint_text}"
    );
    assert!(
        lint_text.contains("[grpc-server-filter-chain]"),
        "lint warns about what gRPC servers refuse: {lint_text}"
    );
    replace_file(&config, "server-listener.yaml", &refused);
    let entry = wait_client_entry(&xdsd, "server-1", "a Listener NACK", |e| {
        e["types"][listener_type]["last_nack"]["error"].is_string()
    });
    eprintln!(
        "{} server NACK text: {}",
        grpc.name(),
        entry["types"][listener_type]["last_nack"]["error"]
    );
    let (ok, text) = one_call(grpc, work.path(), "after-nack", &client_bootstrap, "5");
    assert!(ok, "the server stopped serving after a NACK:\n{text}");
}

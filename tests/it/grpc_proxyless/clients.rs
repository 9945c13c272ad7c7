//! What every gRPC client implementation must do with xdsd: resolve and
//! call, follow endpoint and route changes without a failed RPC, NACK what
//! it cannot use and keep working, and resume after an xdsd restart.

use super::*;

for_each_grpc!(
    resolves_and_calls,
    switches_endpoints_without_failures,
    follows_a_route_to_a_new_cluster_without_failures,
    nacks_what_it_cannot_use_and_keeps_working,
    resumes_after_an_xdsd_restart_with_nothing_resent,
);

/// `xds:///greeter` resolves through xdsd and one RPC reaches server-a; a
/// second client's four types are all ACKed at the served versions.
fn resolves_and_calls(grpc: Grpc) {
    let setup = Setup::new(grpc, "one");
    let mut client = setup.client(grpc, "one", &[]);
    let text = wait_client_ok(&mut client, Duration::from_secs(30), &setup.xdsd);
    assert!(
        matches!(rpcs(&text).as_slice(), [Rpc::Ok { server, .. }] if server == "server-a"),
        "expected one OK RPC on server-a:\n{text}"
    );
    // The client disconnected; its entry may be gone. Run a short loop and
    // check the ACK state while it is connected.
    let mut client = setup.client(grpc, "one-b", &["--duration", "2"]);
    let entry = wait_all_acked(&setup.xdsd, "one-b");
    eprintln!("{} /clients entry: {entry:#}", grpc.name());
    wait_client_ok(&mut client, Duration::from_secs(30), &setup.xdsd);
}

/// Under a 10 ms RPC loop, replacing the endpoint moves every RPC to
/// server-b with none failing.
fn switches_endpoints_without_failures(grpc: Grpc) {
    let setup = Setup::new(grpc, "switch");
    let (_b, port_b) = start_server(grpc, setup.work.path(), "server-b");
    let mut client = setup.client(grpc, "switch", &["--duration", "5", "--interval", "0.01"]);
    wait_rpcs_on(&mut client, "server-a", 50, Duration::from_secs(20));
    let changed_at = replace_file(&setup.config, "endpoints.yaml", &endpoints_yaml(port_b));
    let text = wait_client_ok(&mut client, Duration::from_secs(30), &setup.xdsd);
    let first_b = assert_moved_to(&text, "server-b", &setup.xdsd);
    eprintln!(
        "{}: {} RPCs, 0 failed; file change -> first RPC on server-b: {:.0} ms",
        grpc.name(),
        rpcs(&text).len(),
        (first_b - changed_at) * 1000.0
    );
}

/// Under a 10 ms RPC loop, one edit adds a cluster (and its endpoints) and
/// points the route at it: xdsd sends the cluster and endpoints before the
/// route (make-before-break), and no RPC fails on the way to server-b.
fn follows_a_route_to_a_new_cluster_without_failures(grpc: Grpc) {
    let setup = Setup::new(grpc, "route");
    let (_b, port_b) = start_server(grpc, setup.work.path(), "server-b");
    let mut client = setup.client(grpc, "route", &["--duration", "6", "--interval", "0.01"]);
    wait_rpcs_on(&mut client, "server-a", 50, Duration::from_secs(20));

    let example = root().join("config-examples/grpc-proxyless");
    let routes = std::fs::read_to_string(example.join("routes.yaml")).expect("routes");
    let cluster = std::fs::read_to_string(example.join("clusters.yaml")).expect("clusters");
    let new_route = routes.replace("cluster: greeter", "cluster: greeter-v2");
    assert_ne!(new_route, routes, "the example route names cluster greeter");
    let new_cluster = cluster.replace("name: greeter", "name: greeter-v2");
    let new_endpoints =
        endpoints_yaml(port_b).replace("cluster_name: greeter", "cluster_name: greeter-v2");
    // One file, one atomic rename: the new route arrives in the same load
    // as what it needs.
    let text = format!("{new_route}\n---\n{new_cluster}\n---\n{new_endpoints}");
    let changed_at = replace_file(&setup.config, "routes.yaml", &text);

    let text = wait_client_ok(&mut client, Duration::from_secs(30), &setup.xdsd);
    let first_b = assert_moved_to(&text, "server-b", &setup.xdsd);
    let log = setup.xdsd.log();
    let order: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("sent") && l.contains("resources=") && l.contains("v3."))
        .filter_map(|l| {
            ["Cluster", "ClusterLoadAssignment", "RouteConfiguration"]
                .into_iter()
                .find(|t| l.contains(&format!("v3.{t} ")))
        })
        .collect();
    eprintln!(
        "{}: {} RPCs, 0 failed; file change -> first RPC on server-b: {:.0} ms; sent: {order:?}",
        grpc.name(),
        rpcs(&text).len(),
        (first_b - changed_at) * 1000.0
    );
}

/// Every RPC in `text` succeeded, one reached `server`, and the last ten
/// all did; returns when the first one did.
fn assert_moved_to(text: &str, server: &str, xdsd: &Xdsd) -> f64 {
    let calls = rpcs(text);
    let failed = failures(&calls);
    assert!(failed.is_empty(), "failed RPCs: {failed:?}");
    let first = calls.iter().find_map(|r| match r {
        Rpc::Ok { at, server: s } if s == server => Some(*at),
        _ => None,
    });
    let Some(first) = first else {
        panic!(
            "no RPC reached {server}; client:\n{}\nxdsd log:\n{}",
            tail(text, 20),
            tail(&xdsd.log(), 60)
        );
    };
    let last: Vec<&str> = calls
        .iter()
        .rev()
        .take(10)
        .filter_map(|r| match r {
            Rpc::Ok { server, .. } => Some(server.as_str()),
            Rpc::Err { .. } => None,
        })
        .collect();
    assert!(
        last.len() == 10 && last.iter().all(|s| *s == server),
        "the last RPCs did not all reach {server}: {last:?}"
    );
    first
}

/// A config Envoy accepts but gRPC clients reject (a STATIC cluster for a
/// gRPC route): lint only warns, xdsd serves it, the client NACKs it and
/// keeps calling on its last good config, the NACK text shows in
/// `/clients`, and it is not sent again.
fn nacks_what_it_cannot_use_and_keeps_working(grpc: Grpc) {
    let setup = Setup::new(grpc, "nack");
    let port = {
        let text = std::fs::read_to_string(setup.config.join("endpoints.yaml")).expect("endpoints");
        text.split("port_value: ")
            .nth(1)
            .and_then(|p| p.trim().parse::<u16>().ok())
            .expect("port")
    };
    let mut client = setup.client(grpc, "nack", &["--duration", "6", "--interval", "0.02"]);
    wait_all_acked(&setup.xdsd, "nack");

    let static_cluster = format!(
        "kind: Cluster\nnodes:\n  cluster: [\"grpc*\"]\nspec:\n  name: greeter\n  type: STATIC\n  lb_policy: ROUND_ROBIN\n  load_assignment:\n    cluster_name: greeter\n    endpoints:\n    - load_balancing_weight: 1\n      lb_endpoints:\n      - endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: {port}}}}}}}\n"
    );
    let check = common::ScratchDir::new("grpc-nack-lint");
    std::fs::write(check.path().join("clusters.yaml"), &static_cluster).expect("write");
    for name in ["listeners.yaml", "routes.yaml", "endpoints.yaml"] {
        std::fs::copy(setup.config.join(name), check.path().join(name)).expect("copy");
    }
    let lint = common::xdsd(&["lint", "--dir", check.path().to_str().expect("utf-8 path")]);
    let lint_text = String::from_utf8_lossy(&lint.stdout);
    assert!(
        lint.status.success(),
        "lint must accept it (Envoy does): {lint_text}"
    );
    assert!(
        lint_text.contains("gRPC clients accept only EDS"),
        "lint warns: {lint_text}"
    );
    replace_file(&setup.config, "clusters.yaml", &static_cluster);

    let cluster_type = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    let entry = wait_client_entry(&setup.xdsd, "nack", "a cluster NACK", |e| {
        e["types"][cluster_type]["last_nack"]["error"].is_string()
    });
    eprintln!(
        "{} NACK text: {}",
        grpc.name(),
        entry["types"][cluster_type]["last_nack"]["error"]
    );
    let text = wait_client_ok(&mut client, Duration::from_secs(30), &setup.xdsd);
    let calls = rpcs(&text);
    let failed = failures(&calls);
    assert!(
        failed.is_empty() && calls.len() > 50,
        "{} RPCs, failures: {failed:?}",
        calls.len()
    );
    let sent = sent_count(&setup.xdsd.log(), "envoy.config.cluster.v3.Cluster");
    assert!(
        sent <= 2,
        "the refused clusters were sent again ({sent} cluster responses in all):\n{}",
        tail(&setup.xdsd.log(), 40)
    );
}

/// xdsd stops (SIGTERM) and starts again on the same port while the client
/// calls every 10 ms: no RPC fails, the client reconnects and says which
/// versions it has, and the new xdsd sends it nothing (the versions are the
/// same, as they derive from content).
fn resumes_after_an_xdsd_restart_with_nothing_resent(grpc: Grpc) {
    let mut setup = Setup::new(grpc, "restart");
    let mut client = setup.client(grpc, "restart", &["--duration", "8", "--interval", "0.01"]);
    let before = wait_all_acked(&setup.xdsd, "restart");
    wait_rpcs_on(&mut client, "server-a", 50, Duration::from_secs(20));

    setup.xdsd.guard.signal("TERM");
    let status = setup.xdsd.guard.wait_exit(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "xdsd did not exit 0 within 5 s of SIGTERM: {status:?}"
    );
    let (listen, admin) = (setup.xdsd.listen, setup.xdsd.admin);
    let log = setup.work.path().join("xdsd-2.log");
    let mut second = Xdsd::spawn(&setup.config, listen, admin, &[], &log);
    second.wait_ready();
    setup.xdsd = second;

    let after = wait_all_acked(&setup.xdsd, "restart");
    for (type_url, state) in before["types"].as_object().expect("types") {
        assert_eq!(
            state["acked_version"], after["types"][type_url]["acked_version"],
            "{type_url}: the version changed across the restart"
        );
    }
    let text = wait_client_ok(&mut client, Duration::from_secs(30), &setup.xdsd);
    let calls = rpcs(&text);
    assert!(
        failures(&calls).is_empty(),
        "failed RPCs: {:?}",
        failures(&calls)
    );
    let resent = sent_count(&setup.xdsd.log(), "type.googleapis.com/");
    assert_eq!(
        resent,
        0,
        "the restarted xdsd sent {resent} responses to a client that had them:\n{}",
        tail(&setup.xdsd.log(), 40)
    );
    eprintln!(
        "{}: {} RPCs across the restart, 0 failed, 0 responses re-sent",
        grpc.name(),
        calls.len()
    );
}

/// Node only, the bootstrap this issue started from: grpc-js-xds refuses a
/// node without `locality`, and every RPC fails. The bootstrap xdsd prints
/// works (every test above uses it).
#[test]
fn node_fails_without_the_locality_xdsd_now_prints() {
    let setup = Setup::new(Grpc::Node, "no-locality");
    let bootstrap = write_bootstrap(setup.work.path(), setup.xdsd.listen, "no-locality", &[]);
    let mut old: Value =
        serde_json::from_slice(&std::fs::read(&bootstrap).expect("read")).expect("json");
    old["node"]
        .as_object_mut()
        .expect("node")
        .remove("locality")
        .expect("xdsd prints node.locality");
    std::fs::write(&bootstrap, old.to_string()).expect("write");
    let mut client = Grpc::Node.client(
        setup.work.path(),
        "no-locality",
        &bootstrap,
        &["--ready-timeout", "2"],
    );
    let status = client
        .guard
        .wait_exit(Duration::from_secs(30))
        .expect("exits");
    let text = std::fs::read_to_string(&client.out).unwrap_or_default();
    assert!(
        !status.success() && text.contains("xDS name resolution failed"),
        "a Node client without node.locality: {status}\n{text}"
    );
}

/// C-core only (grpc-js-xds has no `tls` channel credentials; xdsd says so
/// when it prints such a bootstrap): the bootstrap's `tls` credentials
/// work: a client holding a certificate for its node resolves and calls
/// through an mTLS xdsd that authorizes nodes by certificate; one holding
/// another node's certificate is refused and never gets a channel.
#[test]
fn c_core_over_mtls_with_node_authorization() {
    use common::pki::{Pki, mtls_serve_flags, path_str, server_sans, spiffe};
    let grpc = Grpc::CCore;
    let work = common::ScratchDir::new("grpc-mtls");
    let pki = Pki::new(work.path());
    let (server_cert, server_key) = pki.leaf("server", server_sans());
    let (good_cert, good_key) = pki.leaf("grpc-mtls", vec![spiffe("grpc-mtls")]);
    let (other_cert, other_key) = pki.leaf("someone-else", vec![spiffe("someone-else")]);
    let (_server, port) = start_server(grpc, work.path(), "server-a");
    let config = work.path().join("config");
    std::fs::create_dir_all(&config).expect("mkdir config");
    write_config(&config, port);
    let ca = pki.ca_path();
    let xdsd = Xdsd::start_with(
        &config,
        &work.path().join("xdsd.log"),
        &mtls_serve_flags(
            &server_cert,
            &server_key,
            &ca,
            "spiffe://xdsd.test/envoy/{node_id}",
        ),
    );
    let bootstrap = |label: &str, cert: &Path, key: &Path| {
        let flags = [
            "--tls-ca",
            path_str(&ca),
            "--tls-cert",
            path_str(cert),
            "--tls-key",
            path_str(key),
        ];
        let path = write_bootstrap(work.path(), xdsd.listen, "grpc-mtls", &flags);
        let renamed = work.path().join(format!("bootstrap-{label}.json"));
        std::fs::rename(&path, &renamed).expect("rename bootstrap");
        renamed
    };
    let good = bootstrap("good", &good_cert, &good_key);
    let mut client = grpc.client(work.path(), "good", &good, &[]);
    let text = wait_client_ok(&mut client, Duration::from_secs(30), &xdsd);
    assert!(
        matches!(rpcs(&text).as_slice(), [Rpc::Ok { server, .. }] if server == "server-a"),
        "expected one OK RPC on server-a:\n{text}"
    );

    let other = bootstrap("other", &other_cert, &other_key);
    let mut refused = grpc.client(work.path(), "other", &other, &["--ready-timeout", "3"]);
    let status = refused
        .guard
        .wait_exit(Duration::from_secs(20))
        .expect("client gives up");
    let text = std::fs::read_to_string(&refused.out).unwrap_or_default();
    assert!(
        !status.success() && text.contains("NOT_READY"),
        "refused client: {status}\n{text}"
    );
    assert!(
        xdsd.log().contains("refused: node id `grpc-mtls`"),
        "the refusal is logged:\n{}",
        tail(&xdsd.log(), 40)
    );
}

# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_xdsd_global_optspecs
    string join \n h/help V/version
end

function __fish_xdsd_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_xdsd_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_xdsd_using_subcommand
    set -l cmd (__fish_xdsd_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c xdsd -n "__fish_xdsd_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c xdsd -n "__fish_xdsd_needs_command" -s V -l version -d 'Print version'
complete -c xdsd -n "__fish_xdsd_needs_command" -f -a "serve" -d 'Serve a config directory over xDS (ADS), reloading it when it changes'
complete -c xdsd -n "__fish_xdsd_needs_command" -f -a "status" -d 'Show which client has which config: a running daemon\'s clients, per type'
complete -c xdsd -n "__fish_xdsd_needs_command" -f -a "history" -d 'List the past good sets a state directory keeps, newest first'
complete -c xdsd -n "__fish_xdsd_needs_command" -f -a "bootstrap" -d 'Print a client bootstrap that points at a running xdsd'
complete -c xdsd -n "__fish_xdsd_needs_command" -f -a "lint" -d 'Check a config directory and report every problem with its location'
complete -c xdsd -n "__fish_xdsd_needs_command" -f -a "render" -d 'Print the resources one node is served, as typed Envoy resources'
complete -c xdsd -n "__fish_xdsd_needs_command" -f -a "diff" -d 'Compare two config directories resource by resource'
complete -c xdsd -n "__fish_xdsd_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l dir -d 'Directory of *.yaml, *.yml and *.json resource files, read recursively' -r -F
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l max-file-mb -d 'Largest config file read, in MiB; a larger file is an error at that file (and, for serve, the whole change is rejected)' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l allow -d 'Drop the findings of this rule (repeatable); `xdsd lint --explain` lists the rules. Syntax and schema errors cannot be allowed' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l deny -d 'Make the findings of this rule errors (repeatable)' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l known-cluster -d 'A cluster defined in the proxies\' own bootstrap, not in --dir (repeatable): references to it are satisfied' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l known-clusters-file -d 'A file naming such clusters, one per line (`#` starts a comment)' -r -F
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l envoy-validate -d 'Have this Envoy validate every node view of each candidate set (`envoy --mode validate`) before it is served; a rejection keeps the last good set, like any invalid set' -r -F
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l listen -d 'Address for gRPC xDS' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l admin -d 'Address of the admin HTTP endpoint (/healthz, /readyz, /metrics, /clients, /status, /config)' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l admin-timeout-secs -d 'Seconds an admin client has to send a request head, also the next one on a kept-alive connection (so an idle connection is closed after this long), and that a write to it may stay stuck' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l admin-max-connections -d 'Most admin connections open at once; over it, new connections are not accepted but wait in the kernel\'s queue until one closes' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l tls-cert -d 'Serve xDS over TLS with this certificate chain (PEM); needs --tls-key. Re-read, with the key, when its directory changes and on SIGHUP: new connections get the new pair, unless it does not load' -r -F
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l tls-key -d 'The private key (PEM) of --tls-cert' -r -F
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l tls-client-ca -d 'Require client certificates signed by this CA bundle (PEM): mutual TLS. Clients without one fail the handshake' -r -F
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l authorize-node -d 'Tie each client\'s certificate to the node it claims: the certificate must carry a DNS or URI subject alternative name (or a subject CN) equal to TEMPLATE with {node_id} and {node_cluster} replaced by the client\'s node id and cluster, e.g. `spiffe://example.org/envoy/{node_id}`. Other clients are refused with PERMISSION_DENIED, and it is logged' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l admin-identity -d 'A certificate identity (DNS or URI SAN, or subject CN) that may read every node\'s status through CSDS, e.g. for `xdsd status --xds` (repeatable; exact, or a glob with `*` and `?` such as `spiffe://example.org/ops/*`). It claims no node: over ADS and the per-type services it is held to --authorize-node like any client' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l debounce-ms -d 'Quiet period, in milliseconds, that ends a burst of file events' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l debounce-max-ms -d 'Longest wait, in milliseconds, from a burst\'s first event to the reload' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l load-memory-limit-mb -d 'Memory (address space), in MiB, a load may use before it is stopped and rejected; 0 means no limit. Loads run in a child process, so a file that exhausts this cannot harm the daemon or what it serves' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l load-timeout-secs -d 'Seconds a load may take before it is stopped and rejected' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l max-clients -d 'Most xDS streams open at once (an Envoy on ADS holds one; per-type services one per type); more are refused with RESOURCE_EXHAUSTED' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l max-request-mb -d 'Largest request a client may send, in MiB; a larger one ends its stream with RESOURCE_EXHAUSTED' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l state-dir -d 'Keep the last good set in this directory (created if missing; replaced atomically after each applied load). When --dir is invalid at start, that set is served instead of refusing to start, and /status, the log and xdsd_serving_saved_state say so; a damaged file is ignored' -r -F
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l history -d 'How many past good sets --state-dir keeps in its `history/` folder (each with its version, time and what changed; `xdsd history` lists them); 0 keeps none' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l log-format -d 'Log format' -r -f -a "text\t'Human-readable lines'
json\t'One JSON object per line'"
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -l log-level -d 'Log level (error, warn, info, debug, trace) or a tracing filter' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c xdsd -n "__fish_xdsd_using_subcommand serve" -s V -l version -d 'Print version'
complete -c xdsd -n "__fish_xdsd_using_subcommand status" -l admin -d 'Address of the admin HTTP endpoint (/healthz, /readyz, /metrics, /clients, /status, /config)' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand status" -l xds -d 'Ask CSDS on xdsd\'s xDS port (`host:port`) instead of the admin API, over TLS with the --tls-* flags; with --authorize-node on the daemon, a certificate shows the nodes it proves, an --admin-identity all' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand status" -l format -d 'Output: a table, or JSON (the admin API\'s `/clients` as it is; with --xds, the CSDS answer with resources decoded, secrets redacted)' -r -f -a "table\t'One line per stream, then the NACKs'
json\t'`/clients` (with --xds, the CSDS answer) as JSON'"
complete -c xdsd -n "__fish_xdsd_using_subcommand status" -l tls-ca -d 'Reach xdsd over TLS, trusting this CA bundle (PEM) for its certificate' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand status" -l tls-cert -d 'mTLS: the client\'s certificate chain (PEM); needs --tls-key and --tls-ca' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand status" -l tls-key -d 'mTLS: the private key (PEM) of --tls-cert' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand status" -l tls-server-name -d 'The name xdsd\'s certificate must carry (a DNS name, sent as SNI, or an IP address); default: the host of --server or --xds. Not for gRPC bootstraps, which have no such setting' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c xdsd -n "__fish_xdsd_using_subcommand status" -s V -l version -d 'Print version'
complete -c xdsd -n "__fish_xdsd_using_subcommand history" -l state-dir -d 'The state directory of `xdsd serve --state-dir`' -r -F
complete -c xdsd -n "__fish_xdsd_using_subcommand history" -l format -d 'Output: a table, or JSON (one object per set, newest first)' -r -f -a "table\t'One line per stream, then the NACKs'
json\t'`/clients` (with --xds, the CSDS answer) as JSON'"
complete -c xdsd -n "__fish_xdsd_using_subcommand history" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c xdsd -n "__fish_xdsd_using_subcommand history" -s V -l version -d 'Print version'
complete -c xdsd -n "__fish_xdsd_using_subcommand bootstrap" -l format -d 'Which client the bootstrap is for' -r -f -a "envoy\t'An Envoy bootstrap (YAML)'
grpc\t'A GRPC_XDS_BOOTSTRAP file (JSON)'"
complete -c xdsd -n "__fish_xdsd_using_subcommand bootstrap" -l server -d 'xdsd\'s gRPC address as the client reaches it (`host:port`)' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand bootstrap" -l node-id -d 'The node\'s `node.id`, matched against `nodes.id` selectors' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand bootstrap" -l node-cluster -d 'The node\'s `node.cluster`, matched against `nodes.cluster` selectors' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand bootstrap" -l locality -d 'The node\'s `node.locality`, `REGION[/ZONE[/SUB_ZONE]]` (a part may be empty). Always printed, with an empty zone by default: grpc-js-xds refuses a bootstrap whose node has no locality' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand bootstrap" -l admin-port -d 'Envoy only: the port of Envoy\'s admin endpoint on 127.0.0.1' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand bootstrap" -l tls-ca -d 'Reach xdsd over TLS, trusting this CA bundle (PEM) for its certificate' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand bootstrap" -l tls-cert -d 'mTLS: the client\'s certificate chain (PEM); needs --tls-key and --tls-ca' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand bootstrap" -l tls-key -d 'mTLS: the private key (PEM) of --tls-cert' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand bootstrap" -l tls-server-name -d 'The name xdsd\'s certificate must carry (a DNS name, sent as SNI, or an IP address); default: the host of --server or --xds. Not for gRPC bootstraps, which have no such setting' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand bootstrap" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c xdsd -n "__fish_xdsd_using_subcommand bootstrap" -s V -l version -d 'Print version'
complete -c xdsd -n "__fish_xdsd_using_subcommand lint" -l dir -d 'Directory of *.yaml, *.yml and *.json resource files, read recursively' -r -F
complete -c xdsd -n "__fish_xdsd_using_subcommand lint" -l max-file-mb -d 'Largest config file read, in MiB; a larger file is an error at that file (and, for serve, the whole change is rejected)' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand lint" -l allow -d 'Drop the findings of this rule (repeatable); `xdsd lint --explain` lists the rules. Syntax and schema errors cannot be allowed' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand lint" -l deny -d 'Make the findings of this rule errors (repeatable)' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand lint" -l known-cluster -d 'A cluster defined in the proxies\' own bootstrap, not in --dir (repeatable): references to it are satisfied' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand lint" -l known-clusters-file -d 'A file naming such clusters, one per line (`#` starts a comment)' -r -F
complete -c xdsd -n "__fish_xdsd_using_subcommand lint" -l envoy -d 'Also have this Envoy validate every node view (`envoy --mode validate` on a static bootstrap) when xdsd finds no error; each rejection is reported at the resource responsible. Without PATH: $XDSD_ENVOY, else `envoy` on PATH. Verdicts are cached in $XDG_CACHE_HOME/xdsd/envoy' -r -F
complete -c xdsd -n "__fish_xdsd_using_subcommand lint" -l explain -d 'Print what rule RULE checks and why, or list every rule; no --dir needed' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand lint" -l format -d 'Output format: text (path:line:col), json, or github (Actions annotations)' -r -f -a "text\t'`path:line:col: severity: message [rule-id]`, one per line'
json\t'A JSON array of objects with file, line, column, severity, rule, message'
github\t'GitHub Actions workflow commands (`::error file=...::message`)'"
complete -c xdsd -n "__fish_xdsd_using_subcommand lint" -l deny-warnings -d 'Treat warnings as errors (exit 1 when there are any)'
complete -c xdsd -n "__fish_xdsd_using_subcommand lint" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c xdsd -n "__fish_xdsd_using_subcommand lint" -s V -l version -d 'Print version'
complete -c xdsd -n "__fish_xdsd_using_subcommand render" -l dir -d 'Directory of *.yaml, *.yml and *.json resource files, read recursively' -r -F
complete -c xdsd -n "__fish_xdsd_using_subcommand render" -l max-file-mb -d 'Largest config file read, in MiB; a larger file is an error at that file (and, for serve, the whole change is rejected)' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand render" -l allow -d 'Drop the findings of this rule (repeatable); `xdsd lint --explain` lists the rules. Syntax and schema errors cannot be allowed' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand render" -l deny -d 'Make the findings of this rule errors (repeatable)' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand render" -l known-cluster -d 'A cluster defined in the proxies\' own bootstrap, not in --dir (repeatable): references to it are satisfied' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand render" -l known-clusters-file -d 'A file naming such clusters, one per line (`#` starts a comment)' -r -F
complete -c xdsd -n "__fish_xdsd_using_subcommand render" -l node-id -d 'The node\'s `node.id`, matched against `nodes.id` selectors' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand render" -l node-cluster -d 'The node\'s `node.cluster`, matched against `nodes.cluster` selectors' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand render" -l type -d 'Only resources of this type (Cluster, ClusterLoadAssignment or Endpoints, Listener, RouteConfiguration, ...)' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand render" -l format -d 'Output format' -r -f -a "yaml\t'Multi-document YAML, one `"@type"` resource per document'
json\t'One JSON document: `{"resources": [...]}` (the DiscoveryResponse form)'"
complete -c xdsd -n "__fish_xdsd_using_subcommand render" -l envoy-static -d 'Print one Envoy bootstrap (JSON) with the resources as static_resources, RDS inlined and EDS as load_assignment, for `envoy --mode validate`'
complete -c xdsd -n "__fish_xdsd_using_subcommand render" -l redact -d 'Replace every secret (fields Envoy marks sensitive: private keys, session ticket keys, HMAC and generic secrets) by `[redacted]`, for output meant to be shown; without it the output is a loadable config directory and holds them'
complete -c xdsd -n "__fish_xdsd_using_subcommand render" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c xdsd -n "__fish_xdsd_using_subcommand render" -s V -l version -d 'Print version'
complete -c xdsd -n "__fish_xdsd_using_subcommand diff" -l node-id -d 'The node\'s `node.id`, matched against `nodes.id` selectors' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand diff" -l node-cluster -d 'The node\'s `node.cluster`, matched against `nodes.cluster` selectors' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand diff" -l max-file-mb -d 'Largest config file read, in MiB; a larger file is an error at that file (and, for serve, the whole change is rejected)' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand diff" -l allow -d 'Drop the findings of this rule (repeatable); `xdsd lint --explain` lists the rules. Syntax and schema errors cannot be allowed' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand diff" -l deny -d 'Make the findings of this rule errors (repeatable)' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand diff" -l known-cluster -d 'A cluster defined in the proxies\' own bootstrap, not in --dir (repeatable): references to it are satisfied' -r
complete -c xdsd -n "__fish_xdsd_using_subcommand diff" -l known-clusters-file -d 'A file naming such clusters, one per line (`#` starts a comment)' -r -F
complete -c xdsd -n "__fish_xdsd_using_subcommand diff" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c xdsd -n "__fish_xdsd_using_subcommand diff" -s V -l version -d 'Print version'
complete -c xdsd -n "__fish_xdsd_using_subcommand help; and not __fish_seen_subcommand_from serve status history bootstrap lint render diff help" -f -a "serve" -d 'Serve a config directory over xDS (ADS), reloading it when it changes'
complete -c xdsd -n "__fish_xdsd_using_subcommand help; and not __fish_seen_subcommand_from serve status history bootstrap lint render diff help" -f -a "status" -d 'Show which client has which config: a running daemon\'s clients, per type'
complete -c xdsd -n "__fish_xdsd_using_subcommand help; and not __fish_seen_subcommand_from serve status history bootstrap lint render diff help" -f -a "history" -d 'List the past good sets a state directory keeps, newest first'
complete -c xdsd -n "__fish_xdsd_using_subcommand help; and not __fish_seen_subcommand_from serve status history bootstrap lint render diff help" -f -a "bootstrap" -d 'Print a client bootstrap that points at a running xdsd'
complete -c xdsd -n "__fish_xdsd_using_subcommand help; and not __fish_seen_subcommand_from serve status history bootstrap lint render diff help" -f -a "lint" -d 'Check a config directory and report every problem with its location'
complete -c xdsd -n "__fish_xdsd_using_subcommand help; and not __fish_seen_subcommand_from serve status history bootstrap lint render diff help" -f -a "render" -d 'Print the resources one node is served, as typed Envoy resources'
complete -c xdsd -n "__fish_xdsd_using_subcommand help; and not __fish_seen_subcommand_from serve status history bootstrap lint render diff help" -f -a "diff" -d 'Compare two config directories resource by resource'
complete -c xdsd -n "__fish_xdsd_using_subcommand help; and not __fish_seen_subcommand_from serve status history bootstrap lint render diff help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'

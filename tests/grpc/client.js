// A proxyless gRPC client for tests/it/grpc_proxyless.rs, on Node's gRPC
// (grpc-js with grpc-js-xds): the twin of client.py, with the same flags and
// the same output, so one test drives either implementation.
//
// Resolves TARGET (e.g. xds:///greeter) through the xDS server named in
// GRPC_XDS_BOOTSTRAP, waits (up to --ready-timeout seconds) for the channel
// to be ready, then calls grpc.health.v1.Health/Check(service="") in a loop
// for --duration seconds. One line per RPC on stdout:
//
//     ok UNIX_TIME SERVER          (SERVER from the `x-server` metadata)
//     error UNIX_TIME CODE DETAILS
//
// Exit 0 only if at least one RPC ran and every RPC succeeded with SERVING.
//
// The health messages are encoded by hand (a request with an empty service
// is zero bytes; a response is field 1, a varint), so no .proto file or
// protobuf library is needed.
'use strict';

const grpc = require('@grpc/grpc-js');
require('@grpc/grpc-js-xds').register();
const { parseFlags, now } = require('./flags');

const SERVING = 1;

function decodeStatus(buffer) {
  // HealthCheckResponse { ServingStatus status = 1; }: tag 0x08, one varint
  // byte for the small enum; an empty message is UNKNOWN (0).
  return buffer.length >= 2 && buffer[0] === 0x08 ? buffer[1] : 0;
}

const Health = grpc.makeGenericClientConstructor({
  Check: {
    path: '/grpc.health.v1.Health/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: () => Buffer.alloc(0),
    requestDeserialize: (b) => b,
    responseSerialize: (b) => b,
    responseDeserialize: (b) => b,
  },
});

function call(client, timeoutSeconds) {
  return new Promise((resolve) => {
    let server = '?';
    const deadline = new Date(Date.now() + timeoutSeconds * 1000);
    const rpc = client.Check({}, new grpc.Metadata(), { deadline }, (err, response) => {
      if (err) {
        resolve({ ok: false, line: `${grpc.status[err.code]} ${(err.details || '').replace(/\n/g, ' ')}` });
      } else if (decodeStatus(response) === SERVING) {
        resolve({ ok: true, server });
      } else {
        resolve({ ok: false, line: `NOT_SERVING ${server} status=${decodeStatus(response)}` });
      }
    });
    rpc.on('metadata', (metadata) => {
      const value = metadata.get('x-server');
      if (value.length > 0) server = String(value[0]);
    });
  });
}

async function main() {
  const flags = parseFlags(process.argv.slice(2), {
    target: 'xds:///greeter', duration: 0, interval: 0.02, 'rpc-timeout': 2, 'ready-timeout': 15,
  });
  if (!process.env.GRPC_XDS_BOOTSTRAP) {
    process.stderr.write('GRPC_XDS_BOOTSTRAP is not set\n');
    return 2;
  }
  const client = new Health(flags.target, grpc.credentials.createInsecure());
  const ready = await new Promise((resolve) => {
    client.waitForReady(new Date(Date.now() + flags['ready-timeout'] * 1000), (err) => resolve(!err));
  });
  if (!ready) {
    // One RPC says why (a resolution error carries its text).
    const why = await call(client, 1);
    console.log(`error ${now()} NOT_READY channel not ready within ${flags['ready-timeout']}s: ${why.line || 'no reason given'}`);
    client.close();
    return 1;
  }
  console.log(`ready ${now()}`);
  const end = Date.now() + flags.duration * 1000;
  let ok = 0;
  let failed = 0;
  for (;;) {
    const result = await call(client, flags['rpc-timeout']);
    if (result.ok) {
      ok += 1;
      console.log(`ok ${now()} ${result.server}`);
    } else {
      failed += 1;
      console.log(`error ${now()} ${result.line}`);
    }
    if (Date.now() >= end) break;
    await new Promise((r) => setTimeout(r, flags.interval * 1000));
  }
  client.close();
  console.log(`done ok=${ok} failed=${failed}`);
  return ok > 0 && failed === 0 ? 0 : 1;
}

main().then((code) => process.exit(code), (err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(3);
});

// A gRPC server for tests/it/grpc_proxyless.rs on Node's gRPC: the standard
// grpc.health.v1.Health/Check, SERVING, with initial metadata
// `x-server: NAME` on every answer (the twin of health_server.py).
//
//     server.js --port PORT --name NAME [--xds]
//
// With --xds it is an xDS-enabled server (gRFC A36, grpc-js-xds XdsServer):
// it asks the xDS server in GRPC_XDS_BOOTSTRAP for the Listener
// `grpc/server?xds.resource.listening_address=127.0.0.1:PORT` and serves
// only once it has a valid one ("serving" is printed then; "not serving"
// with the reason when the Listener is missing or refused).
'use strict';

const grpc = require('@grpc/grpc-js');
const xds = require('@grpc/grpc-js-xds');
// register() also registers the HTTP filters (the router among them); an
// XdsServer without it refuses every Listener.
xds.register();
const { parseFlags } = require('./flags');

const SERVING_RESPONSE = Buffer.from([0x08, 0x01]);

const service = {
  Check: {
    path: '/grpc.health.v1.Health/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: (b) => b,
    requestDeserialize: (b) => b,
    responseSerialize: (b) => b,
    responseDeserialize: (b) => b,
  },
};

function main() {
  const flags = parseFlags(process.argv.slice(2), { port: 0, name: '', xds: false });
  const server = flags.xds ? new xds.XdsServer() : new grpc.Server();
  server.addService(service, {
    Check: (call, callback) => {
      const metadata = new grpc.Metadata();
      metadata.set('x-server', flags.name);
      call.sendMetadata(metadata);
      callback(null, SERVING_RESPONSE);
    },
  });
  const address = `127.0.0.1:${flags.port}`;
  server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err) => {
    if (err) {
      process.stderr.write(`cannot bind ${address}: ${err.message}\n`);
      process.exit(1);
    }
    if (!flags.xds) console.log(`${flags.name} serving on ${address}`);
  });
  if (flags.xds) {
    // XdsServer made the port's entry in bindAsync; its state follows the
    // Listener xdsd serves.
    server.addServingStateListener(address, (state) => {
      const reason = state.details ? ` ${state.details.replace(/\n/g, ' ')}` : '';
      console.log(`${state.code === grpc.status.OK ? 'serving' : 'not serving'}${reason}`);
    });
  }
}

main();

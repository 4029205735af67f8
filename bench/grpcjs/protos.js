// The two services every framework in the bench serves, loaded from the repo's own .proto files.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const ROOT = path.resolve(__dirname, '..', '..');
const OPTIONS = { keepCase: true, longs: Number, enums: String, defaults: true };
// Messages of any size (the 1 MiB rows and above); grpc-js's default cap is 4 MiB.
const CHANNEL_OPTIONS = {
  'grpc.max_receive_message_length': -1,
  'grpc.max_send_message_length': -1,
};

function load(relative) {
  return grpc.loadPackageDefinition(protoLoader.loadSync(path.join(ROOT, relative), OPTIONS));
}

const helloworld = load('app/greeter/helloworld.proto').helloworld;
const bench = load('bench/protos/bench.proto').rpcviz.bench;

module.exports = { grpc, Greeter: helloworld.Greeter, Bench: bench.Bench, CHANNEL_OPTIONS };

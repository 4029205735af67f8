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

// Each loaded on first use: a client needs one of them, and parsing a .proto is a good part of node's start.
const services = {
  get Greeter() {
    return load('app/greeter/helloworld.proto').helloworld.Greeter;
  },
  get Bench() {
    return load('bench/protos/bench.proto').rpcviz.bench.Bench;
  },
};

module.exports = { grpc, services, CHANNEL_OPTIONS };

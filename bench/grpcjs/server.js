// A grpc-js server for the bench: helloworld.Greeter/SayHello and rpcviz.bench.Bench.
//
// `node server.js` binds 127.0.0.1:0, prints `READY <port>` and serves until SIGTERM/SIGINT,
// like `python -m bench.servers KIND` (which execs it for the kind `grpcjs`).
'use strict';

const { grpc, services, CHANNEL_OPTIONS } = require('./protos');

function sayHello(call, callback) {
  callback(null, { message: `Hello, ${call.request.name}!` });
}

function echo(call, callback) {
  callback(null, { data: call.request.data });
}

// `messages` Blobs of `size` bytes, waiting for 'drain' when the stream's buffer is full.
function download(call) {
  const total = call.request.messages;
  const blob = { data: Buffer.alloc(call.request.size) };
  let sent = 0;
  let cancelled = false;
  call.on('cancelled', () => {
    cancelled = true;
  });
  call.on('error', () => {});
  const pump = () => {
    while (!cancelled && sent < total) {
      sent += 1;
      if (!call.write(blob)) {
        call.once('drain', pump);
        return;
      }
    }
    if (!cancelled) call.end();
  };
  pump();
}

function upload(call, callback) {
  let messages = 0;
  let bytes = 0;
  call.on('data', (blob) => {
    messages += 1;
    bytes += blob.data.length;
  });
  call.on('end', () => callback(null, { messages, bytes }));
  call.on('error', () => {});
}

function pingPong(call) {
  call.on('data', (blob) => call.write(blob));
  call.on('end', () => call.end());
  call.on('error', () => {});
}

function main() {
  const server = new grpc.Server(CHANNEL_OPTIONS);
  server.addService(services.Greeter.service, { SayHello: sayHello });
  server.addService(services.Bench.service, { Echo: echo, Download: download, Upload: upload, PingPong: pingPong });
  server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, port) => {
    if (error) {
      process.stderr.write(`grpcjs server: ${error.message}\n`);
      process.exit(1);
    }
    process.stdout.write(`READY ${port}\n`);
  });
  const stop = () => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      process.exit(0);
    }, 500);
    server.tryShutdown(() => {
      clearTimeout(timer);
      process.exit(0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();

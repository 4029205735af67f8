// A closed-loop grpc-js client for the bench, on one channel: `python -m bench.clients grpcjs ...` execs it.
//
// node client.js --port P --concurrency C --calls N --duration S --warmup W [--server-pid PID]
//                [--workload unary|echo|download|upload|pingpong] [--size BYTES] [--messages M]
//
// Like bench/clients.py: warms up with W calls, then keeps C calls in flight until N calls or S seconds,
// whichever comes first, and prints one JSON line with the same keys (throughput, p50/p99, CPU µs per
// call and per message of this process and, from /proc, of the server).
'use strict';

const fs = require('fs');
const { grpc, services, CHANNEL_OPTIONS } = require('./protos');

const WORKLOADS = ['unary', 'echo', 'download', 'upload', 'pingpong'];
const CONNECT_TIMEOUT_MS = 10000;
const CLK_TCK = 100; // USER_HZ: the unit of utime/stime in /proc/PID/stat on Linux
const MiB = 1024 * 1024;

function parseArgs(argv) {
  const args = {
    port: null,
    concurrency: 1,
    calls: 1000000,
    duration: 3.0,
    warmup: 500,
    serverPid: null,
    workload: 'unary',
    size: 100,
    messages: 100,
  };
  const names = {
    '--port': 'port',
    '--concurrency': 'concurrency',
    '--calls': 'calls',
    '--duration': 'duration',
    '--warmup': 'warmup',
    '--server-pid': 'serverPid',
    '--workload': 'workload',
    '--size': 'size',
    '--messages': 'messages',
  };
  for (let i = 0; i < argv.length; i += 1) {
    let [flag, value] = argv[i].split('=', 2);
    const key = names[flag];
    if (key === undefined) usage(`unknown argument ${argv[i]}`);
    if (value === undefined) {
      i += 1;
      value = argv[i];
    }
    if (value === undefined) usage(`${flag} needs a value`);
    if (key === 'workload') {
      if (!WORKLOADS.includes(value)) usage(`--workload must be one of ${WORKLOADS.join(', ')}`);
      args.workload = value;
    } else {
      const number = Number(value);
      if (!Number.isFinite(number)) usage(`${flag} needs a number, not ${value}`);
      args[key] = number;
    }
  }
  if (args.port === null) usage('--port is required');
  return args;
}

function usage(message) {
  process.stderr.write(`grpcjs client: ${message}\n`);
  process.exit(2);
}

// utime + stime of process `pid` (all its threads) in seconds, or null without /proc (as bench/procs.py).
function procCpuSeconds(pid) {
  let stat;
  try {
    stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

function cpuSeconds() {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

// Python's round(): halves to even, so that percentiles pick the same rank as bench/clients.py's.
function roundHalfEven(x) {
  const floor = Math.floor(x);
  const diff = x - floor;
  if (diff > 0.5) return floor + 1;
  if (diff < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

// The q-quantile (nearest rank) of sorted nanoseconds, in µs.
function percentile(sortedNs, q) {
  if (sortedNs.length === 0) return null;
  const index = Math.min(sortedNs.length - 1, Math.max(0, roundHalfEven(q * sortedNs.length + 0.5) - 1));
  return sortedNs[index] / 1000;
}

function connect(args) {
  const Service = args.workload === 'unary' ? services.Greeter : services.Bench;
  const client = new Service(`127.0.0.1:${args.port}`, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  return new Promise((resolve, reject) => {
    client.waitForReady(Date.now() + CONNECT_TIMEOUT_MS, (error) => (error ? reject(error) : resolve(client)));
  });
}

// One bidi stream answering each Blob with its echo: a round trip at a time.
class PingPongStream {
  constructor(client) {
    this.call = client.PingPong();
    this.pending = null;
    this.failed = null;
    this.call.on('data', (blob) => this.settle(null, blob));
    this.call.on('error', (error) => this.fail(error));
    this.call.on('end', () => this.fail(new Error('PingPong ended by the server')));
    this.done = new Promise((resolve) => this.call.on('status', resolve));
  }

  settle(error, blob) {
    const pending = this.pending;
    this.pending = null;
    if (pending === null) return;
    if (error) pending.reject(error);
    else pending.resolve(blob);
  }

  fail(error) {
    if (this.failed === null) this.failed = error;
    this.settle(error, null);
  }

  roundTrip(blob) {
    return new Promise((resolve, reject) => {
      if (this.failed !== null) {
        reject(this.failed);
        return;
      }
      this.pending = { resolve, reject };
      this.call.write(blob);
    });
  }

  close() {
    if (this.failed === null) this.call.end();
    return this.done;
  }
}

// The workload's call: a function of the worker's index resolving to {ok, messages}.
function makeCall(client, args) {
  const { size, messages } = args;
  const blob = { data: Buffer.alloc(size, 0x78) };
  if (args.workload === 'unary') {
    const request = { name: 'world' };
    return () =>
      new Promise((resolve, reject) => {
        client.SayHello(request, (error, reply) =>
          error ? reject(error) : resolve({ ok: reply.message === 'Hello, world!', messages: 1 }),
        );
      });
  }
  if (args.workload === 'echo') {
    return () =>
      new Promise((resolve, reject) => {
        client.Echo(blob, (error, reply) =>
          error ? reject(error) : resolve({ ok: reply.data.equals(blob.data), messages: 1 }),
        );
      });
  }
  if (args.workload === 'download') {
    const request = { messages, size };
    return () =>
      new Promise((resolve, reject) => {
        const call = client.Download(request);
        let received = 0;
        let good = true;
        call.on('data', (reply) => {
          received += 1;
          good = good && reply.data.length === size;
        });
        call.on('error', reject);
        call.on('end', () => resolve({ ok: good && received === messages, messages: received }));
      });
  }
  if (args.workload === 'upload') {
    return () =>
      new Promise((resolve, reject) => {
        const call = client.Upload((error, summary) =>
          error
            ? reject(error)
            : resolve({
                ok: Number(summary.messages) === messages && Number(summary.bytes) === messages * size,
                messages,
              }),
        );
        let sent = 0;
        const pump = () => {
          while (sent < messages) {
            sent += 1;
            if (!call.write(blob)) {
              call.once('drain', pump);
              return;
            }
          }
          call.end();
        };
        pump();
      });
  }
  // pingpong: one stream per worker, kept across the warm-up and the measurement; a failed one is replaced.
  const streams = [];
  const roundTrip = async (worker) => {
    if (streams[worker] === undefined || streams[worker].failed !== null) streams[worker] = new PingPongStream(client);
    const reply = await streams[worker].roundTrip(blob);
    return { ok: reply.data.equals(blob.data), messages: 1 };
  };
  roundTrip.close = () => Promise.all(streams.map((stream) => stream.close()));
  return roundTrip;
}

// Keep `concurrency` calls in flight until `calls` started or `duration` seconds passed.
async function closedLoop(call, concurrency, calls, duration, latencies) {
  const deadline = performance.now() + duration * 1000;
  let started = 0;
  let ok = 0;
  let errors = 0;
  let messages = 0;
  const worker = async (index) => {
    while (started < calls && performance.now() < deadline) {
      started += 1;
      const t0 = process.hrtime.bigint();
      let result;
      try {
        result = await call(index);
      } catch (error) {
        errors += 1;
        if (errors > 100) throw error;
        continue;
      }
      const t1 = process.hrtime.bigint();
      if (latencies !== null) latencies.push(Number(t1 - t0));
      ok += result.ok ? 1 : 0;
      messages += result.messages;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, (_, index) => worker(index)));
  return { ok, errors, messages };
}

function summary(args, latencies, loop, wall, cpu, serverCpu) {
  const n = latencies.length;
  latencies.sort((a, b) => a - b);
  const payload = args.workload === 'unary' ? 0 : args.size;
  const bytes = loop.messages * payload;
  const perCall = (seconds) => (n && seconds !== null ? (seconds / n) * 1e6 : null);
  const perMessage = (seconds) => (loop.messages && seconds !== null ? (seconds / loop.messages) * 1e6 : null);
  return {
    client: 'grpcjs',
    concurrency: args.concurrency,
    calls: n,
    ok: loop.ok,
    errors: loop.errors,
    seconds: wall,
    throughput: wall ? n / wall : 0.0,
    p50_us: percentile(latencies, 0.5),
    p99_us: percentile(latencies, 0.99),
    client_cpu_us: perCall(cpu),
    server_cpu_us: perCall(serverCpu),
    workload: args.workload,
    size: payload,
    messages: loop.messages,
    messages_per_s: wall ? loop.messages / wall : 0.0,
    bytes,
    mb_per_s: wall ? bytes / MiB / wall : 0.0,
    client_cpu_us_per_message: perMessage(cpu),
    server_cpu_us_per_message: perMessage(serverCpu),
  };
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  // Bounds the whole run as bench/clients.py's wait_for()s do: warm-up ≤ 60 s, measurement ≤ duration + 60 s.
  setTimeout(
    () => {
      process.stderr.write('grpcjs client: timed out\n');
      process.exit(1);
    },
    (CONNECT_TIMEOUT_MS / 1000 + 120 + Math.max(1, args.duration) + args.duration) * 1000,
  ).unref();
  const client = await connect(args);
  const call = makeCall(client, args);
  await closedLoop(call, args.concurrency, args.warmup, Math.max(1.0, args.duration), null);
  const latencies = [];
  const serverCpu0 = args.serverPid ? procCpuSeconds(args.serverPid) : null;
  const cpu0 = cpuSeconds();
  const wall0 = performance.now();
  const loop = await closedLoop(call, args.concurrency, args.calls, args.duration, latencies);
  const wall = (performance.now() - wall0) / 1000;
  const cpu = cpuSeconds() - cpu0;
  const serverCpu1 = args.serverPid ? procCpuSeconds(args.serverPid) : null;
  if (call.close) await call.close();
  client.close();
  const serverCpu = serverCpu0 === null || serverCpu1 === null ? null : serverCpu1 - serverCpu0;
  process.stdout.write(`${JSON.stringify(summary(args, latencies, loop, wall, cpu, serverCpu))}\n`);
}

main().catch((error) => {
  process.stderr.write(`grpcjs client: ${error && error.message ? error.message : error}\n`);
  process.exit(1);
});

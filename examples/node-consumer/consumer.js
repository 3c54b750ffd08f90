// Kesu integrators' feed: a minimal consumer in Node.js.
//
// Reads kesu.public.v1 and prints one JSON object per event, decoding the
// protobuf values with only the shipped .proto files (proto/kesu/v1). Events
// of one case arrive in order on one partition (the key is the case id) and
// carry case_seq 1, 2, 3, ... without gaps: a consumer that remembers the last
// case_seq per case can drop redeliveries and detect nothing was missed.
//
//   node consumer.js [--brokers 127.0.0.1:59092] [--topic kesu.public.v1]
//                    [--group my-app] [--from-beginning] [--idle-ms 5000]
'use strict';
const path = require('path');
const { Kafka, CompressionTypes, CompressionCodecs, logLevel } = require('kafkajs');
const lz4js = require('lz4js');
const protobuf = require('protobufjs');

// Kesu's producers compress with lz4; kafkajs needs a codec for it.
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  async compress(encoder) { return Buffer.from(lz4js.compress(encoder.buffer)); },
  async decompress(buffer) { return Buffer.from(lz4js.decompress(buffer)); },
});

function arg(name, def) {
  const i = process.argv.indexOf(name);
  if (i < 0) return def;
  return process.argv[i + 1] && !process.argv[i + 1].startsWith('--') ? process.argv[i + 1] : true;
}

async function main() {
  const brokers = String(arg('--brokers', process.env.KESU_KAFKA || '127.0.0.1:59092')).split(',');
  const topic = arg('--topic', 'kesu.public.v1');
  const group = arg('--group', 'kesu-example-' + process.pid);
  const idleMs = Number(arg('--idle-ms', 0));
  const protoDir = arg('--proto', path.join(__dirname, '..', '..', 'proto'));

  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => path.join(protoDir, target);
  await root.load('kesu/v1/envelope.proto', { keepCase: true });
  const Envelope = root.lookupType('kesu.v1.Envelope');

  const kafka = new Kafka({ clientId: 'kesu-example', brokers, logLevel: logLevel.WARN });
  const consumer = kafka.consumer({ groupId: group });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: Boolean(arg('--from-beginning', false)) });

  const lastSeq = new Map();
  let last = Date.now();
  await consumer.run({
    eachMessage: async ({ partition, message }) => {
      last = Date.now();
      const env = Envelope.toObject(Envelope.decode(message.value),
        { longs: Number, enums: String, defaults: false, oneofs: true });
      const seen = lastSeq.get(env.case_id) || 0;
      if (env.case_seq <= seen) return; // a redelivery: already handled
      if (env.case_seq !== seen + 1) {
        console.error(`case ${env.case_no}: expected case_seq ${seen + 1}, got ${env.case_seq}`);
      }
      lastSeq.set(env.case_id, env.case_seq);
      env._partition = partition;
      env._offset = Number(message.offset);
      process.stdout.write(JSON.stringify(env) + '\n');
    },
  });
  if (idleMs > 0) {
    const timer = setInterval(async () => {
      if (Date.now() - last > idleMs) {
        clearInterval(timer);
        await consumer.disconnect();
        process.exit(0);
      }
    }, 200);
  }
}

main().catch((e) => { console.error('kesu example consumer:', e.message); process.exit(1); });

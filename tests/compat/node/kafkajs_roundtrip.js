#!/usr/bin/env node
// kafkajs driver for tests/compat/test_kafkajs.py.
//
// This script uses kafkajs's admin client and producer; the Python test reads the messages back
// with confluent-kafka (manual assignment) and checks them. kafkajs's group consumer is driven by
// kafkajs_group_consume.js.
//
//   node kafkajs_roundtrip.js --bootstrap 127.0.0.1:PORT --topic T [--partitions 4] [--create]
//        [--messages 500] [--keys 20] [--batch 100] [--compression none|gzip|snappy|lz4|zstd]
//        [--acks -1|0|1] [--idempotent]
//
// Prints one JSON object on the last line of stdout:
//   { topicsBefore, created, topicsAfter, metadata: {partitions: [...]}, produced: [{i, key, value,
//     partition, offset}], sendResults: [...], offsets: [{partition, low, high}] }
// kafkajs's own log goes to stderr. Exits 0 on success, 1 on any error, 3 on the overall timeout.
//
// Compression codecs: kafkajs ships gzip only. snappy comes from kafkajs-snappy (pure JS). The
// official LZ4 and ZSTD plug-ins (kafkajs-lz4 -> lz4@0.6, @kafkajs/zstd -> cppzst) are node-gyp
// builds that fail on node 20 (cppzst) or are blocked as install scripts by npm 11 (lz4), so those
// two codecs are small adapters below over lz4-napi (prebuilt N-API binary shipped as an npm
// package, no build step; LZ4 frame format as Kafka uses) and zstd-codec (zstd compiled to wasm).
'use strict'

const {
  Kafka,
  logLevel,
  CompressionTypes,
  CompressionCodecs,
  Partitioners,
} = require('kafkajs')

const OVERALL_TIMEOUT_MS = 90000

function parseArgs(argv) {
  const args = {
    bootstrap: null,
    topic: null,
    partitions: 4,
    create: false,
    messages: 500,
    keys: 20,
    batch: 100,
    compression: 'none',
    acks: -1,
    idempotent: false,
  }
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`missing value for ${name}`)
      return argv[++i]
    }
    switch (name) {
      case '--bootstrap': args.bootstrap = next(); break
      case '--topic': args.topic = next(); break
      case '--partitions': args.partitions = parseInt(next(), 10); break
      case '--create': args.create = true; break
      case '--messages': args.messages = parseInt(next(), 10); break
      case '--keys': args.keys = parseInt(next(), 10); break
      case '--batch': args.batch = parseInt(next(), 10); break
      case '--compression': args.compression = next(); break
      case '--acks': args.acks = parseInt(next(), 10); break
      case '--idempotent': args.idempotent = true; break
      default: throw new Error(`unknown argument ${name}`)
    }
  }
  if (!args.bootstrap || !args.topic) throw new Error('--bootstrap and --topic are required')
  return args
}

function registerCodecs() {
  CompressionCodecs[CompressionTypes.Snappy] = require('kafkajs-snappy')

  const lz4 = require('lz4-napi')
  CompressionCodecs[CompressionTypes.LZ4] = () => ({
    async compress(encoder) {
      return lz4.compressFrame(encoder.buffer)
    },
    async decompress(buffer) {
      return lz4.decompressFrame(buffer)
    },
  })

  // zstd-codec initialises its wasm module asynchronously; resolve it once.
  let zstdReady = null
  const zstd = () => {
    if (!zstdReady) {
      const { ZstdCodec } = require('zstd-codec')
      zstdReady = new Promise(resolve => ZstdCodec.run(z => resolve(new z.Streaming())))
    }
    return zstdReady
  }
  CompressionCodecs[CompressionTypes.ZSTD] = () => ({
    async compress(encoder) {
      const z = await zstd()
      return Buffer.from(z.compress(encoder.buffer, 3))
    },
    async decompress(buffer) {
      // Streaming decompression: frames written by streaming compressors carry no content size.
      const z = await zstd()
      return Buffer.from(z.decompress(buffer))
    },
  })
}

const COMPRESSION = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
}

// kafkajs logs through console.* by default, which would mix with the JSON on stdout.
const stderrLogCreator = () => ({ namespace, level, label, log }) => {
  const { message, ...extra } = log
  process.stderr.write(`[kafkajs ${label} ${namespace}] ${message} ${JSON.stringify(extra)}\n`)
}

async function main() {
  const args = parseArgs(process.argv.slice(2))
  if (!(args.compression in COMPRESSION)) throw new Error(`unknown compression ${args.compression}`)
  registerCodecs()

  const kafka = new Kafka({
    clientId: 'ringtail-compat-kafkajs',
    brokers: [args.bootstrap],
    connectionTimeout: 5000,
    requestTimeout: 15000,
    retry: { retries: 8, initialRetryTime: 100, maxRetryTime: 2000 },
    logLevel: logLevel.WARN,
    logCreator: stderrLogCreator,
  })

  const result = {}
  const admin = kafka.admin()
  await admin.connect()
  try {
    result.topicsBefore = await admin.listTopics()
    if (args.create) {
      result.created = await admin.createTopics({
        topics: [{ topic: args.topic, numPartitions: args.partitions, replicationFactor: 1 }],
        waitForLeaders: true,
        timeout: 10000,
      })
    }
    result.topicsAfter = await admin.listTopics()
    const meta = await admin.fetchTopicMetadata({ topics: [args.topic] })
    const topicMeta = meta.topics.find(t => t.name === args.topic)
    if (!topicMeta) throw new Error(`topic ${args.topic} missing from metadata`)
    result.metadata = {
      partitions: topicMeta.partitions
        .map(p => ({ partitionId: p.partitionId, leader: p.leader, errorCode: p.partitionErrorCode }))
        .sort((a, b) => a.partitionId - b.partitionId),
    }

    // kafkajs's default (Java-compatible murmur2) partitioner picks each message's partition; we
    // call it ourselves so that every message's offset can be computed from the send results.
    const partitioner = Partitioners.DefaultPartitioner()
    const partitionMetadata = topicMeta.partitions
    const produced = []
    for (let i = 0; i < args.messages; i++) {
      const key = `k${i % args.keys}`
      const value = `v${i}-${key}`
      const message = { key, value, headers: { seq: String(i) } }
      message.partition = partitioner({ topic: args.topic, partitionMetadata, message })
      produced.push({ i, key, value, partition: message.partition, offset: null })
    }

    const producer = kafka.producer(
      args.idempotent
        ? { idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false }
        : { allowAutoTopicCreation: false }
    )
    await producer.connect()
    result.sendResults = []
    try {
      for (let start = 0; start < produced.length; start += args.batch) {
        const chunk = produced.slice(start, start + args.batch)
        const res = await producer.send({
          topic: args.topic,
          acks: args.acks,
          compression: COMPRESSION[args.compression],
          messages: chunk.map(m => ({
            key: m.key,
            value: m.value,
            partition: m.partition,
            headers: { seq: String(m.i) },
          })),
        })
        result.sendResults.push(res)
        if (args.acks === 0) continue
        // One send carries one batch per partition, in message order: offsets follow baseOffset.
        const base = new Map()
        for (const r of res) {
          if (r.errorCode !== 0) throw new Error(`produce error ${JSON.stringify(r)}`)
          base.set(r.partition, BigInt(r.baseOffset))
        }
        const seen = new Map()
        for (const m of chunk) {
          if (!base.has(m.partition)) throw new Error(`no send result for partition ${m.partition}`)
          const k = seen.get(m.partition) || 0n
          m.offset = (base.get(m.partition) + k).toString()
          seen.set(m.partition, k + 1n)
        }
      }
    } finally {
      await producer.disconnect()
    }
    result.produced = produced

    const offsets = await admin.fetchTopicOffsets(args.topic)
    result.offsets = offsets
      .map(o => ({ partition: o.partition, low: o.low, high: o.high }))
      .sort((a, b) => a.partition - b.partition)
  } finally {
    await admin.disconnect()
  }
  return result
}

const timer = setTimeout(() => {
  process.stderr.write(`kafkajs_roundtrip: overall timeout of ${OVERALL_TIMEOUT_MS} ms\n`)
  process.exit(3)
}, OVERALL_TIMEOUT_MS)

main().then(
  result => {
    clearTimeout(timer)
    process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0))
  },
  err => {
    clearTimeout(timer)
    process.stderr.write(`kafkajs_roundtrip: ${err && err.stack ? err.stack : err}\n`)
    if (err && err.cause) process.stderr.write(`cause: ${err.cause}\n`)
    process.exit(1)
  }
)

#!/usr/bin/env node
// kafkajs group consumer for tests/compat/test_kafkajs.py: joins group GROUP, consumes TOPIC from
// the beginning until COUNT messages arrived, commits (kafkajs commits resolved offsets on
// disconnect and on its auto-commit timer), then reads the group's committed offsets back with the
// admin client.
//
//   node kafkajs_group_consume.js --bootstrap 127.0.0.1:PORT --topic T --group G --count N
//
// Prints one JSON object on the last line: { consumed, partitions: {p: count}, committed: [{partition, offset}] }.
'use strict'

const { Kafka, logLevel } = require('kafkajs')

function arg(name) {
  const index = process.argv.indexOf(name)
  if (index < 0 || index + 1 >= process.argv.length) throw new Error(`missing ${name}`)
  return process.argv[index + 1]
}

async function main() {
  const bootstrap = arg('--bootstrap')
  const topic = arg('--topic')
  const groupId = arg('--group')
  const count = parseInt(arg('--count'), 10)
  // kafkajs logs to stdout by default; keep stdout for the JSON result.
  const logCreator = () => ({ namespace, level, log }) => process.stderr.write(`${namespace} ${log.message}\n`)
  const kafka = new Kafka({ clientId: 'ringtail-compat', brokers: [bootstrap], logLevel: logLevel.WARN, logCreator })
  const consumer = kafka.consumer({ groupId, sessionTimeout: 10000, heartbeatInterval: 1000 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const partitions = {}
  let consumed = 0
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${consumed} of ${count} messages`)), 60000)
    consumer.run({
      eachMessage: async ({ partition }) => {
        consumed += 1
        partitions[partition] = (partitions[partition] || 0) + 1
        if (consumed >= count) {
          clearTimeout(timer)
          resolve()
        }
      },
    }).catch(reject)
  })
  await consumer.commitOffsets([]).catch(() => {})
  await consumer.disconnect()
  const admin = kafka.admin()
  await admin.connect()
  const committed = await admin.fetchOffsets({ groupId, topics: [topic] })
  await admin.disconnect()
  const offsets = committed[0].partitions.map(({ partition, offset }) => ({ partition, offset: parseInt(offset, 10) }))
  console.log(JSON.stringify({ consumed, partitions, committed: offsets }))
}

main().then(() => process.exit(0), (error) => {
  process.stderr.write(`${error.stack || error}\n`)
  process.exit(1)
})

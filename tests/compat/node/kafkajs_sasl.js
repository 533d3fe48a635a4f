#!/usr/bin/env node
// kafkajs with SASL for tests/compat/test_sasl.py: admin listTopics, then produce 50 messages to
// partition 0 of a new topic, over SASL_PLAINTEXT with the given SCRAM mechanism.
//
//   node kafkajs_sasl.js --bootstrap HOST:PORT --topic T --mechanism scram-sha-256 --user U --password P
//
// Prints one JSON object on the last line of stdout: { topics: [...], produced: N }. Exits 0 on
// success; on an error prints {error: type} and exits 1.
'use strict'

const { Kafka, logLevel } = require('kafkajs')

function arg(name) {
  const at = process.argv.indexOf(`--${name}`)
  if (at < 0 || at + 1 >= process.argv.length) throw new Error(`missing --${name}`)
  return process.argv[at + 1]
}

async function main() {
  const kafka = new Kafka({
    clientId: 'ringtail-sasl-test',
    brokers: [arg('bootstrap')],
    sasl: { mechanism: arg('mechanism'), username: arg('user'), password: arg('password') },
    logLevel: logLevel.ERROR,
    retry: { retries: 2 },
  })
  const topic = arg('topic')
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 1 }] })
  const topics = await admin.listTopics()
  await admin.disconnect()
  const producer = kafka.producer()
  await producer.connect()
  const messages = Array.from({ length: 50 }, (_, i) => ({ value: `j${i}` }))
  await producer.send({ topic, acks: -1, messages: messages.map((m) => ({ ...m, partition: 0 })) })
  await producer.disconnect()
  console.log(JSON.stringify({ topics, produced: messages.length }))
}

main().then(
  () => process.exit(0),
  (err) => {
    console.log(JSON.stringify({ error: err.type || err.name, message: err.message }))
    process.exit(1)
  },
)

// Many ModelInstanceDocuments at once, for the repair throughput suite:
//   node bulk.mjs create <ceramicUrl> <userSeedHex> <modelId> <count>
//       creates <count> notes; prints their stream ids, one a line
//   node bulk.mjs update <ceramicUrl> <userSeedHex> <streamIdsFile> [<first> <count>]
//       stream number i (0-based, in the file's order) gets 1 + i % 3 updates, one after
//       another; prints the number of commits written
// Writes use {anchor: false, publish: true}, as mid.mjs does. WIDTH documents are written at
// once: one at a time would take minutes for hundreds of streams; many more would make the node
// queue the writes anyway.
import { readFileSync } from 'node:fs'
import { ModelInstanceDocument } from '@ceramicnetwork/stream-model-instance'
import { StreamID } from '@ceramicnetwork/streamid'
import { client, fail } from './lib.mjs'

const WIDTH = 8
const opts = { anchor: false, publish: true }
const [cmd, url, seed, ...rest] = process.argv.slice(2)

async function pool (items, work) {
  const out = new Array(items.length)
  let next = 0
  const worker = async () => {
    while (next < items.length) {
      const i = next++
      out[i] = await work(items[i], i)
    }
  }
  await Promise.all(Array.from({ length: WIDTH }, worker))
  return out
}

if (cmd === 'create' && rest.length === 2) {
  const ceramic = await client(url, seed)
  const model = StreamID.fromString(rest[0])
  const n = Number(rest[1])
  const ids = await pool([...Array(n).keys()], async (i) =>
    (await ModelInstanceDocument.create(ceramic, { title: `bulk ${i}`, count: i }, { model }, opts)).id.toString())
  console.log(ids.join('\n'))
} else if (cmd === 'update' && (rest.length === 1 || rest.length === 3)) {
  const ceramic = await client(url, seed)
  const all = readFileSync(rest[0], 'utf8').split('\n').filter(Boolean)
  const first = rest.length === 3 ? Number(rest[1]) : 0
  const count = rest.length === 3 ? Number(rest[2]) : all.length
  const ids = all.slice(first, first + count)
  const sent = await pool(ids, async (id, i) => {
    const doc = await ModelInstanceDocument.load(ceramic, id)
    const k = 1 + ((first + i) % 3)
    for (let v = 1; v <= k; v++) {
      await doc.replace({ title: `bulk ${first + i} v${v}`, count: first + i }, undefined, opts)
    }
    return k
  })
  console.log(sent.reduce((a, b) => a + b, 0))
} else {
  fail('usage: node bulk.mjs create <url> <seed> <model> <count> | update <url> <seed> <idsFile> [<first> <count>]')
}

// ModelInstanceDocuments, as a user did:key:
//   node mid.mjs create <ceramicUrl> <userSeedHex> <modelId> '<content JSON>'
//   node mid.mjs update <ceramicUrl> <userSeedHex> <streamId> '<content JSON>'
//   node mid.mjs load   <ceramicUrl> <streamId>
// Each prints {streamId, tip, content, log}. Writes use {anchor: false} unless ANCHOR=1: the
// in-memory anchor service only validates anchors made in its own process, so an anchored
// stream cannot apply on other nodes (that is what ANCHOR=1 is for: an unrepairable case).
import { ModelInstanceDocument } from '@ceramicnetwork/stream-model-instance'
import { StreamID } from '@ceramicnetwork/streamid'
import { client, fail } from './lib.mjs'
const [cmd, url, ...rest] = process.argv.slice(2)
const opts = { anchor: process.env.ANCHOR === '1', publish: true }
const out = (doc) => console.log(JSON.stringify({
  streamId: doc.id.toString(), tip: doc.tip.toString(), content: doc.content,
  log: doc.state.log.map((e) => e.cid.toString())
}))
const parse = (text) => {
  try { return JSON.parse(text) } catch (e) { fail(`content is not JSON: ${e.message}`) }
}
if (cmd === 'create' && rest.length === 3) {
  const [seed, modelId, content] = rest
  const ceramic = await client(url, seed)
  out(await ModelInstanceDocument.create(ceramic, parse(content), { model: StreamID.fromString(modelId) }, opts))
} else if (cmd === 'update' && rest.length === 3) {
  const [seed, streamId, content] = rest
  const ceramic = await client(url, seed)
  const doc = await ModelInstanceDocument.load(ceramic, streamId)
  // replace(content, metadata, opts): opts in second place would silently request an anchor.
  await doc.replace(parse(content), undefined, opts)
  out(doc)
} else if (cmd === 'load' && rest.length === 1) {
  out(await ModelInstanceDocument.load(await client(url), rest[0]))
} else {
  fail('usage: node mid.mjs create <url> <seed> <model> <json> | update <url> <seed> <streamId> <json> | load <url> <streamId>')
}

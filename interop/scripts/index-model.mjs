// usage: node index-model.mjs <ceramicUrl> <adminSeedHex> <modelId> [...]
// Asks the node to index the models (admin API); the node loads them from its peers first.
import { StreamID } from '@ceramicnetwork/streamid'
import { client, fail } from './lib.mjs'
const [url, adminSeed, ...models] = process.argv.slice(2)
if (!url || !adminSeed || models.length === 0) fail('usage: node index-model.mjs <url> <adminSeed> <modelId>...')
const ceramic = await client(url, adminSeed)
await ceramic.admin.startIndexingModels(models.map((m) => StreamID.fromString(m)))
const indexed = await ceramic.admin.getIndexedModels()
console.log(JSON.stringify({ indexed: indexed.map((m) => String(m.streamID ?? m)) }))

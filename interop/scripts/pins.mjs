// Lists the streams a node has pinned (its state store), via the admin API:
//   node pins.mjs <ceramicUrl> <adminSeedHex>
import { client } from './lib.mjs'
const [url, seed] = process.argv.slice(2)
const ceramic = await client(url, seed)
const ids = []
for await (const id of await ceramic.admin.pin.ls()) ids.push(id)
console.log(JSON.stringify(ids))

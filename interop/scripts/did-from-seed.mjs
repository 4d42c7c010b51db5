// usage: node did-from-seed.mjs <64-hex seed>   -> the did:key of that ed25519 seed
import { didFromSeedHex, fail } from './lib.mjs'
const [seed] = process.argv.slice(2)
if (!/^[0-9a-f]{64}$/.test(seed ?? '')) fail('usage: node did-from-seed.mjs <64-hex seed>')
console.log((await didFromSeedHex(seed)).id)

// Shared by the client scripts: a CeramicClient authenticated with an ed25519 did:key from a seed.
import { CeramicClient } from '@ceramicnetwork/http-client'
import { Ed25519Provider } from 'key-did-provider-ed25519'
import { getResolver } from 'key-did-resolver'
import { DID } from 'dids'
import { fromString } from 'uint8arrays'

export async function didFromSeedHex (hex) {
  const did = new DID({ provider: new Ed25519Provider(fromString(hex, 'base16')), resolver: getResolver() })
  await did.authenticate()
  return did
}

export async function client (url, seedHex) {
  const ceramic = new CeramicClient(url)
  if (seedHex) ceramic.did = await didFromSeedHex(seedHex)
  return ceramic
}

export function fail (message) {
  console.error(message)
  process.exit(2)
}

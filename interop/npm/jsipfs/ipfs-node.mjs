// A js-ipfs node (ipfs-core 0.18, dag-jose built in) serving the Kubo RPC API (ipfs-http-server),
// so an unmodified js-ceramic daemon can use it in remote mode (`ipfs.mode = remote`).
// Loopback only: no bootstrap, MDNS, NAT/UPnP, DHT, delegates, preload or relay; the connection
// manager keeps no minimum, so a peer disconnected on purpose (`cluster.sh partition`) stays away.
// usage: node ipfs-node.mjs <repoDir> <swarmPort> <apiPort>
if (typeof Promise.withResolvers !== 'function') {
  // Node 20 lacks it (Node 22+); newer transitive dependencies (it-queue via mortice) call it.
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}
const { create } = await import('ipfs-core')
const { HttpApi } = await import('ipfs-http-server')
const [repo, swarmPort, apiPort] = process.argv.slice(2)
if (!repo || !swarmPort || !apiPort) {
  console.error('usage: node ipfs-node.mjs <repoDir> <swarmPort> <apiPort>')
  process.exit(2)
}
const ipfs = await create({
  repo,
  repoAutoMigrate: true,
  init: { emptyRepo: true, algorithm: 'Ed25519' },
  preload: { enabled: false },
  config: {
    Addresses: { Swarm: [`/ip4/127.0.0.1/tcp/${swarmPort}`], API: `/ip4/127.0.0.1/tcp/${apiPort}`,
      Gateway: '', RPC: '', Delegates: [], Announce: [], NoAnnounce: [] },
    Bootstrap: [],
    Discovery: { MDNS: { Enabled: false }, webRTCStar: { Enabled: false } },
    Routing: { Type: 'none' },
    Swarm: { DisableNatPortMap: true },
    Pubsub: { Enabled: true, Router: 'gossipsub' }
  },
  libp2p: {
    peerDiscovery: [],
    nat: { enabled: false },
    relay: { enabled: false, hop: { enabled: false } },
    connectionManager: { minConnections: 0, autoDial: false }
  }
})
const api = new HttpApi(ipfs)
await api.start()
const id = await ipfs.id()
console.log(JSON.stringify({ ready: true, peerId: id.id.toString(), agentVersion: id.agentVersion,
  addresses: id.addresses.map(String), api: `http://127.0.0.1:${apiPort}` }))
const shutdown = async () => {
  try { await api.stop() } catch {}
  try { await ipfs.stop() } catch {}
  process.exit(0)
}
process.on('SIGINT', shutdown)
process.on('SIGTERM', shutdown)

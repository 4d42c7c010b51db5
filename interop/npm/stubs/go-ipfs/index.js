'use strict'
// Only imported for the CLI's bundled IPFS mode, which the harness never uses.
module.exports.path = function path () {
  throw new Error('go-ipfs stub: no Kubo binary here; run ceramic with a remote IPFS (--ipfs-api)')
}

// usage: node deploy-model.mjs <ceramicUrl> <adminSeedHex> note
//        node deploy-model.mjs <ceramicUrl> <adminSeedHex> comment <noteModelId>
// Creates a ComposeDB model (v2 definition) with the admin DID and indexes it on that node.
// `note`: {title, count}. `comment`: {text, noteId} where noteId is a document relation to a
// note, so the model's index table gets a custom_noteId column. Prints {"model": <streamId>}.
// Model.create takes no opts: a model stream always asks the (in-memory) anchor service.
import { Model } from '@ceramicnetwork/stream-model'
import { StreamID } from '@ceramicnetwork/streamid'
import { client, fail } from './lib.mjs'
const [url, adminSeed, kind, noteModel] = process.argv.slice(2)
const schema = (properties, required) => ({
  $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object',
  properties, required, additionalProperties: false
})
let definition
if (kind === 'note') {
  definition = {
    version: '2.0', name: 'AuditNote', description: 'ceramic-audit interop: a note',
    accountRelation: { type: 'list' }, interface: false, implements: [],
    schema: schema({ title: { type: 'string', maxLength: 100 }, count: { type: 'integer' } }, ['title']),
    relations: {}, views: {}
  }
} else if (kind === 'comment' && noteModel) {
  definition = {
    version: '2.0', name: 'AuditComment', description: 'ceramic-audit interop: a comment on a note',
    accountRelation: { type: 'list' }, interface: false, implements: [],
    schema: schema({
      text: { type: 'string', maxLength: 200 },
      noteId: { type: 'string', $comment: `cip-88:ref:${noteModel}`, maxLength: 100 }
    }, ['text', 'noteId']),
    relations: { noteId: { type: 'document', model: noteModel } }, views: {}
  }
} else {
  fail('usage: node deploy-model.mjs <url> <adminSeed> note | comment <noteModelId>')
}
const ceramic = await client(url, adminSeed)
const model = await Model.create(ceramic, definition)
await ceramic.admin.startIndexingModels([StreamID.fromString(model.id.toString())])
console.log(JSON.stringify({ model: model.id.toString() }))

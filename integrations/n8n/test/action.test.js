'use strict';
// The action node (generate a video, get a video) against a real videohooks.

const assert = require('node:assert/strict');
const { randomUUID } = require('node:crypto');
const { test } = require('node:test');

const { Videohooks } = require('../dist/nodes/Videohooks/Videohooks.node');
const { eventually, instance } = require('../../support/loopback');
const { executeContext } = require('./support/context');

const service = instance();
const credentials = { baseUrl: service.baseUrl, apiKey: service.apiKey };
const node = new Videohooks();

const run = async (parameters, options = {}) => {
  const [items] = await node.execute.call(executeContext({ credentials, parameters, ...options }));
  return items;
};

test('generates a video from the fields filled in, and gets it once it completed', async () => {
  const [generated] = await run([
    {
      operation: 'generate',
      model: 'simulator/default',
      prompt: 'a fox in the snow',
      additionalFields: {
        duration: 4,
        aspectRatio: '16:9',
        fallbackModels: 'simulator/backup, simulator/other',
        metadata: '{"user_id": "42"}',
        input: '{"simulate": {"after_s": 0.1}}',
      },
    },
  ]);
  const video = generated.json;
  assert.match(video.id, /^vid_/);
  assert.equal(video.status, 'queued');
  assert.deepEqual(video.metadata, { user_id: '42' });
  assert.deepEqual(generated.pairedItem, { item: 0 });

  const got = await eventually(async () => {
    const [item] = await run([{ operation: 'get', videoId: video.id }]);
    return item.json.status === 'completed' && item.json;
  });
  assert.equal(got.id, video.id);
  assert.match(got.outputs[0].url, /\.mp4$/);
});

test('the same idempotency key returns the first job, item by item', async () => {
  const fields = { operation: 'generate', model: 'simulator/default', prompt: 'once' };
  const additionalFields = { idempotencyKey: randomUUID() };
  const items = await run([
    { ...fields, additionalFields },
    { ...fields, additionalFields },
  ]);
  assert.equal(items[1].json.id, items[0].json.id);
  assert.deepEqual(
    items.map((item) => item.pairedItem),
    [{ item: 0 }, { item: 1 }],
  );
});

test("an error from the service stops the node with its message, or becomes the item's error", async () => {
  const parameters = [{ operation: 'get', videoId: 'vid_unknown' }];
  await assert.rejects(run(parameters), (err) => {
    assert.equal(err.name, 'NodeOperationError');
    assert.match(err.message, /no such video/);
    assert.equal(err.context.itemIndex, 0);
    return true;
  });
  const [item] = await run(parameters, { continueOnFail: true });
  assert.match(item.json.error, /no such video/);
});

test('metadata that is not a JSON object is refused before anything is sent', async () => {
  const parameters = [
    {
      operation: 'generate',
      model: 'simulator/default',
      prompt: 'x',
      additionalFields: { metadata: '[1]' },
    },
  ];
  await assert.rejects(run(parameters), /Metadata must be a JSON object/);
});

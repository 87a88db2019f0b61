'use strict';
// The "Generate Video" action and the "Find Video" search against a real videohooks.

const assert = require('node:assert/strict');
const { randomUUID } = require('node:crypto');
const { test } = require('node:test');
const zapier = require('zapier-platform-core');

const App = require('../index');
const { eventually, instance } = require('../../support/loopback');

const appTester = zapier.createAppTester(App);
const service = instance();
const authData = { baseUrl: service.baseUrl, apiKey: service.apiKey };
const generate = (inputData) =>
  appTester(App.creates.generate_video.operation.perform, { authData, inputData });
const find = (id) =>
  appTester(App.searches.find_video.operation.perform, { authData, inputData: { id } });

test('Generate Video submits a job with the fields filled in; Find Video finds it finished', async () => {
  const video = await generate({
    model: 'simulator/default',
    prompt: 'a fox in the snow',
    duration: 4,
    negative_prompt: '',
    metadata: { user_id: '42' },
    input: JSON.stringify({ simulate: { after_s: 0.1 } }),
  });
  assert.match(video.id, /^vid_/);
  assert.equal(video.status, 'queued');
  assert.deepEqual(video.metadata, { user_id: '42' });
  assert.equal(video.video_url, null);

  const [found] = await eventually(async () => {
    const results = await find(video.id);
    return results[0].status === 'completed' && results;
  });
  assert.equal(found.id, video.id);
  assert.equal(found.video_url, found.outputs[0].url);
});

test('Generate Video with the same idempotency key returns the first job', async () => {
  const fields = { model: 'simulator/default', prompt: 'once', idempotency_key: randomUUID() };
  const first = await generate(fields);
  const second = await generate(fields);
  assert.equal(second.id, first.id);
});

test("Generate Video shows the service's reason for a bad field", async () => {
  await assert.rejects(generate({ model: 'no-slash', prompt: 'x' }), (err) => {
    const shown = JSON.parse(err.message);
    assert.equal(shown.code, 'invalid_request');
    assert.equal(shown.status, 422);
    assert.match(shown.message, /model/);
    return true;
  });
});

test('Generate Video refuses Provider Input that is not a JSON object before sending it', async () => {
  for (const input of ['{not json', '[1, 2]']) {
    await assert.rejects(generate({ model: 'simulator/default', input }), (err) => {
      assert.equal(JSON.parse(err.message).code, 'invalid_input');
      return true;
    });
  }
});

test('Find Video finds nothing for an unknown id', async () => {
  assert.deepEqual(await find('vid_unknown'), []);
});

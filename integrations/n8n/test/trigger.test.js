'use strict';
// The trigger node's webhook methods (checkExists, create, delete) and its signature check,
// against a real videohooks: only the n8n execution context is stood in for. The n8n webhook
// endpoint is a recording server on loopback that hands each request to the node's webhook().

const assert = require('node:assert/strict');
const { randomBytes } = require('node:crypto');
const { after, before, test } = require('node:test');
const { Webhook } = require('standardwebhooks');

const { VideohooksTrigger } = require('../dist/nodes/VideohooksTrigger/VideohooksTrigger.node');
const { instance, recordingTarget } = require('../../support/loopback');
const { hookContext, n8nWebhookEndpoint } = require('./support/context');

const service = instance();
const credentials = { baseUrl: service.baseUrl, apiKey: service.apiKey };
const trigger = new VideohooksTrigger();
const methods = trigger.webhookMethods.default;

// One trigger node of one workflow: its static data, its webhook endpoint, its workflow runs.
const activeNodes = [];
const triggerNode = async (event = 'video.completed') => {
  const staticData = {};
  const runs = [];
  const endpoint = await recordingTarget(n8nWebhookEndpoint(trigger, staticData, runs));
  activeNodes.push(endpoint);
  const webhookUrl = `${endpoint.url}/webhook/${randomBytes(8).toString('hex')}/webhook`;
  const context = (fields = {}) =>
    hookContext({ credentials, webhookUrl, event, staticData, ...fields });
  const call = (method, fields) => methods[method].call(context(fields));
  return { staticData, runs, endpoint, webhookUrl, call };
};
after(() => Promise.all(activeNodes.map((endpoint) => endpoint.close())));

const hook = (id) => service.api('GET', `/v1/hooks/${id}`);
const hooksAt = async (url) =>
  (await service.api('GET', `/v1/hooks?target_url=${encodeURIComponent(url)}`)).body.data;

// Posts to a node's endpoint as a forger would.
const post = async (url, body, headers) => {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  });
  return response.status;
};

test('activation creates a hook, a signed delivery runs the workflow, deactivation removes the hook', async () => {
  const node = await triggerNode('video.completed');
  assert.equal(await node.call('checkExists'), false);
  assert.equal(await node.call('create'), true);
  const { hookId, hookSecret } = node.staticData;
  assert.match(hookId, /^hook_/);
  assert.match(hookSecret, /^whsec_/);
  const created = await hook(hookId);
  assert.equal(created.body.target_url, node.webhookUrl);
  assert.equal(created.body.event, 'video.completed');
  assert.equal(await node.call('checkExists'), true);

  const video = await service.submit({ after_s: 0.2 });
  const delivery = await node.endpoint.deliveryOf(video.id);
  assert.equal(delivery.answer.status, 200);
  const [run] = node.runs.filter((r) => r.request === delivery);
  assert.equal(run.items.length, 1);
  assert.equal(run.items[0].type, 'video.completed');
  assert.equal(run.items[0].id, delivery.headers['webhook-id']);
  assert.equal(run.items[0].data.id, video.id);
  assert.equal(run.items[0].data.status, 'completed');

  assert.equal(await node.call('delete'), true);
  assert.equal((await hook(hookId)).status, 404);
  assert.deepEqual(node.staticData, {});
  assert.equal(await node.call('checkExists'), false);
});

test('deliveries that do not verify are refused with 401 and run nothing', async () => {
  const node = await triggerNode('video.failed');
  await node.call('create');
  assert.equal((await hook(node.staticData.hookId)).body.event, 'video.failed');
  const video = await service.submit({ after_s: 0.1, outcome: 'failed' });
  const genuine = await node.endpoint.deliveryOf(video.id);
  assert.equal(genuine.answer.status, 200);
  const runsBefore = node.runs.length;

  const body = genuine.rawBody.toString('utf8');
  const headers = {
    'webhook-id': genuine.headers['webhook-id'],
    'webhook-timestamp': genuine.headers['webhook-timestamp'],
    'webhook-signature': genuine.headers['webhook-signature'],
  };
  const forged = body.replace('"failed"', '"completed"');
  assert.notEqual(forged, body);
  assert.equal(await post(node.webhookUrl, forged, headers), 401);
  const otherSecret = `whsec_${randomBytes(24).toString('base64')}`;
  const signedElsewhere = new Webhook(otherSecret).sign(headers['webhook-id'], new Date(), body);
  assert.equal(
    await post(node.webhookUrl, body, { ...headers, 'webhook-signature': signedElsewhere }),
    401,
  );
  const stale = new Date(Date.now() - 10 * 60 * 1000);
  const replayed = {
    'webhook-id': headers['webhook-id'],
    'webhook-timestamp': String(Math.floor(stale.getTime() / 1000)),
    'webhook-signature': new Webhook(node.staticData.hookSecret).sign(
      headers['webhook-id'],
      stale,
      body,
    ),
  };
  assert.equal(await post(node.webhookUrl, body, replayed), 401);
  assert.equal(await post(node.webhookUrl, body, {}), 401);
  assert.equal(node.runs.length, runsBefore);

  // The genuine delivery again (a retry) still verifies: de-duplicating is the workflow's call.
  assert.equal(await post(node.webhookUrl, body, headers), 200);

  // A node that lost its secret verifies nothing.
  delete node.staticData.hookSecret;
  assert.equal(await post(node.webhookUrl, body, headers), 401);
  assert.equal(node.runs.length, runsBefore + 1);
  await node.call('delete');
});

test('checkExists is false once the hook is gone or sends another event, and create replaces it', async () => {
  const node = await triggerNode('*');
  await node.call('create');
  const first = node.staticData.hookId;
  assert.equal((await hook(first)).body.event, '*');
  assert.equal(await node.call('checkExists', { event: 'video.failed' }), false);

  await service.api('DELETE', `/v1/hooks/${first}`);
  assert.equal(await node.call('checkExists'), false);
  await node.call('create');
  assert.notEqual(node.staticData.hookId, first);
  assert.equal(await node.call('checkExists'), true);
  await node.call('delete');
});

test("create removes a hook left at the node's URL whose secret the node no longer has", async () => {
  const node = await triggerNode();
  await node.call('create');
  const orphan = node.staticData.hookId;
  for (const key of Object.keys(node.staticData)) {
    delete node.staticData[key];
  }
  assert.equal(await node.call('checkExists'), false);
  await node.call('create');
  assert.equal((await hook(orphan)).status, 404);
  assert.deepEqual(
    (await hooksAt(node.webhookUrl)).map((h) => h.id),
    [node.staticData.hookId],
  );
  await node.call('delete');
  assert.deepEqual(await hooksAt(node.webhookUrl), []);
});

'use strict';
// The REST-hook triggers against a real videohooks: Zapier's side (subscribe, perform,
// performList, unsubscribe) through the platform's app tester; the hook target Zapier would
// host is a recording server on loopback. `npm test` runs the files one at a time and the tests
// of a file in order: the first needs a service where no video has failed yet (only this file
// makes videos fail), and the newest events performList finds are this file's own.

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');
const { Webhook } = require('standardwebhooks');
const zapier = require('zapier-platform-core');

const App = require('../index');
const { eventually, instance, recordingTarget } = require('../../support/loopback');

const appTester = zapier.createAppTester(App);
const service = instance();
const authData = { baseUrl: service.baseUrl, apiKey: service.apiKey };
const { video_completed: videoCompleted, video_failed: videoFailed } = App.triggers;

let target;
before(async () => {
  target = await recordingTarget();
});
after(() => target.close());

const subscribe = (trigger, targetUrl) =>
  appTester(trigger.operation.performSubscribe, { authData, targetUrl });

// What Zapier hands perform: the delivery's parsed JSON body.
const performOn = (trigger, delivery, subscribeData) =>
  appTester(trigger.operation.perform, {
    authData,
    subscribeData,
    cleanedRequest: delivery.json(),
  });

test("before any video failed, Video Failed's sample data is a made-up event from the service", async () => {
  const existing = await service.api('GET', '/v1/events?type=video.failed&limit=1');
  assert.deepEqual(existing.body.data, [], 'this test needs a service where no video failed');
  const [item] = await appTester(videoFailed.operation.performList, { authData });
  assert.match(item.id, /^vid_/);
  assert.equal(item.status, 'failed');
  assert.equal(item.event_type, 'video.failed');
  assert.equal(item.error.code, 'generation_failed');
  assert.equal(item.video_url, null);
});

test("Video Completed: subscribe, a job completes, its delivery is the trigger's output, unsubscribe removes the hook", async () => {
  const hook = await subscribe(videoCompleted, `${target.url}/zap/completed`);
  assert.match(hook.id, /^hook_/);
  const shown = await service.api('GET', `/v1/hooks/${hook.id}`);
  assert.equal(shown.body.event, 'video.completed');
  assert.equal(shown.body.target_url, `${target.url}/zap/completed`);

  const video = await service.submit({ after_s: 0.2 });
  const delivery = await target.deliveryOf(video.id);
  assert.equal(delivery.path, '/zap/completed');
  // Signed with the secret the subscription returned (which Zapier keeps in subscribeData).
  const event = new Webhook(hook.secret).verify(delivery.rawBody.toString(), delivery.headers);
  assert.equal(event.type, 'video.completed');

  const [item] = await performOn(videoCompleted, delivery, hook);
  assert.equal(item.id, video.id);
  assert.equal(item.status, 'completed');
  assert.equal(item.event_id, event.id);
  assert.equal(item.event_type, 'video.completed');
  assert.match(item.video_url, /^http:\/\/127\.0\.0\.1:\d+\/simulator\/files\/.+\.mp4$/);
  assert.equal(item.video_url, item.outputs[0].url);

  // The delivered event is also the newest sample data now.
  const listed = await appTester(videoCompleted.operation.performList, { authData });
  assert.ok(listed.some((sample) => sample.event_id === event.id));

  const removed = await appTester(videoCompleted.operation.performUnsubscribe, {
    authData,
    subscribeData: hook,
  });
  assert.equal(removed.deleted, true);
  assert.equal((await service.api('GET', `/v1/hooks/${hook.id}`)).status, 404);
});

test("Video Failed: a failed video's delivery is the trigger's output, with the error", async () => {
  const hook = await subscribe(videoFailed, `${target.url}/zap/failed`);
  assert.equal((await service.api('GET', `/v1/hooks/${hook.id}`)).body.event, 'video.failed');
  const failed = await service.submit({ after_s: 0.1, outcome: 'failed', error_message: 'no fox' });
  const delivery = await target.deliveryOf(failed.id);
  assert.equal(delivery.path, '/zap/failed');

  const [item] = await performOn(videoFailed, delivery, hook);
  assert.equal(item.id, failed.id);
  assert.equal(item.status, 'failed');
  assert.equal(item.event_type, 'video.failed');
  assert.equal(item.error.message, 'no fox');
  assert.equal(item.video_url, null);

  // The sample data is real from now on.
  const [sample] = await appTester(videoFailed.operation.performList, { authData });
  assert.equal(sample.id, failed.id);
  await appTester(videoFailed.operation.performUnsubscribe, { authData, subscribeData: hook });
});

test('turning a Zap off after videohooks removed its hook (the target answered 410) succeeds', async () => {
  const gone = await recordingTarget(async () => ({ status: 410 }));
  try {
    const hook = await subscribe(videoCompleted, gone.url);
    const video = await service.submit({ after_s: 0.1 });
    await gone.deliveryOf(video.id);
    await eventually(async () => (await service.api('GET', `/v1/hooks/${hook.id}`)).status === 404);
    const removed = await appTester(videoCompleted.operation.performUnsubscribe, {
      authData,
      subscribeData: hook,
    });
    assert.equal(removed.deleted, true);
  } finally {
    await gone.close();
  }
});

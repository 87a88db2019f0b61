'use strict';
// The platform's own structural validation (the offline part of `zapier validate`).

const assert = require('node:assert/strict');
const { test } = require('node:test');
const zapier = require('zapier-platform-core');

const App = require('../index');

test('the app definition passes the platform schema', async () => {
  const handler = zapier.createAppHandler(App);
  const { results: errors } = await handler({ command: 'validate', calledFromCli: true });
  assert.deepEqual(
    errors.map((error) => error.stack),
    [],
  );
});

test('the validation does find faults (it is not vacuous)', async () => {
  const trigger = App.triggers.video_completed;
  const renamed = { ...trigger, display: { ...trigger.display, title: 'not a display field' } };
  const broken = { ...App, triggers: { ...App.triggers, video_completed: renamed } };
  const { results: errors } = await zapier.createAppHandler(broken)({
    command: 'validate',
    calledFromCli: true,
  });
  assert.deepEqual(
    errors.map((error) => error.property),
    ['instance.triggers.video_completed.display'],
  );
});

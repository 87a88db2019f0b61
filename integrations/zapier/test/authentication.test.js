'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');
const zapier = require('zapier-platform-core');

const App = require('../index');
const { instance } = require('../../support/loopback');

const appTester = zapier.createAppTester(App);
const service = instance();

test('the connection test passes with a valid key', async () => {
  const bundle = { authData: { baseUrl: `${service.baseUrl}/`, apiKey: service.apiKey } };
  const answer = await appTester(App.authentication.test, bundle);
  assert.equal(answer.object, 'list');
});

test("the connection test fails with the service's own message for a wrong key", async () => {
  const bundle = { authData: { baseUrl: service.baseUrl, apiKey: 'vhk_wrong' } };
  await assert.rejects(appTester(App.authentication.test, bundle), (err) => {
    const shown = JSON.parse(err.message);
    assert.match(shown.message, /invalid API key/);
    assert.equal(shown.code, 'unauthorized');
    assert.equal(shown.status, 401);
    return true;
  });
});

'use strict';

const assert = require('node:assert/strict');
const { test } = require('node:test');

const { instance } = require('../../support/loopback');
const { testCredentials } = require('./support/context');

const service = instance();

test('the credential test passes with a valid key and base URL', async () => {
  const answer = await testCredentials({ baseUrl: `${service.baseUrl}/`, apiKey: service.apiKey });
  assert.equal(answer.statusCode, 200);
  assert.equal(answer.body.object, 'list');
});

test('the credential test fails with a wrong key', async () => {
  const answer = await testCredentials({ baseUrl: service.baseUrl, apiKey: 'vhk_wrong' });
  assert.equal(answer.statusCode, 401);
  assert.equal(answer.body.error.code, 'unauthorized');
});

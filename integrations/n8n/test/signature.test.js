'use strict';
// The trigger's hand-written verifier (n8n community nodes may have no runtime dependency) held
// to the standardwebhooks package: it accepts what the package signs and refuses what the
// package refuses.

const assert = require('node:assert/strict');
const { randomBytes } = require('node:crypto');
const { test } = require('node:test');
const { Webhook } = require('standardwebhooks');

const { TOLERANCE_SECONDS, verifiedEvent } = require('../dist/nodes/VideohooksTrigger/signature');

const newSecret = () => `whsec_${randomBytes(24).toString('base64')}`;
const now = Math.floor(Date.now() / 1000);

const signed = (secret, body, { id = 'evt_1', at = now } = {}) => ({
  'webhook-id': id,
  'webhook-timestamp': String(at),
  'webhook-signature': new Webhook(secret).sign(id, new Date(at * 1000), body),
});

const packageAccepts = (secret, headers, body) => {
  try {
    new Webhook(secret).verify(body, headers);
    return true;
  } catch {
    return false;
  }
};

const agree = (secret, headers, body) => {
  const mine = verifiedEvent(secret, headers, Buffer.from(body, 'utf8'));
  assert.equal(mine !== undefined, packageAccepts(secret, headers, body));
  return mine;
};

test('accepts what standardwebhooks signs, byte for byte, and returns the event', () => {
  const secret = newSecret();
  for (const body of [
    '{"id":"evt_1","type":"video.completed"}',
    '{ "id" : "evt_1", "prompt": "a fox in the snow ❄️ — ünïcödé" }',
  ]) {
    assert.deepEqual(agree(secret, signed(secret, body), body), JSON.parse(body));
  }
});

test('accepts a delivery when one of several signatures matches (a secret rotating)', () => {
  const [old, current] = [newSecret(), newSecret()];
  const body = '{"id":"evt_1"}';
  const headers = signed(old, body);
  headers['webhook-signature'] =
    `${signed(current, body)['webhook-signature']} ${headers['webhook-signature']}`;
  assert.ok(agree(old, headers, body));
  assert.ok(agree(current, headers, body));
  assert.equal(agree(newSecret(), headers, body), undefined);
});

test('refuses a changed body, id or timestamp, and another secret', () => {
  const secret = newSecret();
  const body = '{"id":"evt_1","type":"video.completed"}';
  const headers = signed(secret, body);
  assert.equal(agree(secret, headers, body.replace('completed', 'failed')), undefined);
  assert.equal(agree(secret, { ...headers, 'webhook-id': 'evt_2' }, body), undefined);
  const later = String(now + 1);
  assert.equal(agree(secret, { ...headers, 'webhook-timestamp': later }, body), undefined);
  assert.equal(agree(newSecret(), headers, body), undefined);
});

test('refuses a timestamp outside the tolerance, either way, and accepts one inside', () => {
  const secret = newSecret();
  const body = '{"id":"evt_1"}';
  for (const offset of [-TOLERANCE_SECONDS - 10, TOLERANCE_SECONDS + 10]) {
    assert.equal(agree(secret, signed(secret, body, { at: now + offset }), body), undefined);
  }
  assert.ok(agree(secret, signed(secret, body, { at: now - TOLERANCE_SECONDS + 10 }), body));
});

test('refuses missing headers, other signature versions and a non-numeric timestamp', () => {
  const secret = newSecret();
  const body = '{"id":"evt_1"}';
  const headers = signed(secret, body);
  for (const name of Object.keys(headers)) {
    const { [name]: _, ...without } = headers;
    assert.equal(agree(secret, without, body), undefined);
  }
  const v2 = headers['webhook-signature'].replace(/^v1,/, 'v2,');
  assert.equal(agree(secret, { ...headers, 'webhook-signature': v2 }, body), undefined);
  assert.equal(
    verifiedEvent(secret, { ...headers, 'webhook-timestamp': `${now}.5` }, Buffer.from(body)),
    undefined,
  );
});

test('refuses a signed body that is not a JSON object', () => {
  const secret = newSecret();
  for (const body of ['not json', '[1,2]', 'null']) {
    assert.equal(verifiedEvent(secret, signed(secret, body), Buffer.from(body)), undefined);
  }
});

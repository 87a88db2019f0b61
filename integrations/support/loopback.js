'use strict';
// What the integrations' tests share: the videohooks instance under test (started by
// integrations/test_integrations.py, or by hand) and recording HTTP targets on loopback.

const http = require('node:http');

const instance = () => {
  const baseUrl = process.env.VIDEOHOOKS_URL;
  const apiKey = process.env.VIDEOHOOKS_API_KEY;
  if (!baseUrl || !apiKey) {
    throw new Error(
      'VIDEOHOOKS_URL and VIDEOHOOKS_API_KEY must name a running `videohooks serve` with ' +
        'VIDEOHOOKS_ALLOW_PRIVATE_URLS=true and VIDEOHOOKS_PUBLIC_URL set to its own URL ' +
        '(`pytest integrations` starts one and runs these tests)',
    );
  }
  const api = async (method, path, body, key = apiKey) => {
    const response = await fetch(baseUrl + path, {
      method,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
  const submit = async (simulate) => {
    const answer = await api('POST', '/v1/videos', {
      model: 'simulator/default',
      prompt: 'a test',
      input: { simulate },
    });
    if (answer.status !== 202) {
      throw new Error(`submitting a job answered ${answer.status}: ${JSON.stringify(answer.body)}`);
    }
    return answer.body;
  };
  return { baseUrl, apiKey, api, submit };
};

// An HTTP server on 127.0.0.1 that records every request (raw body included) and answers with
// `respond(request)` ({status, body}), 200 by default. Several test files share one service, so
// a target may receive other tests' events too: wait for the one you mean with `waitFor`.
const recordingTarget = async (respond = async () => ({ status: 200 })) => {
  const received = [];
  const waiters = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', async () => {
      const request = {
        method: req.method,
        path: req.url,
        headers: req.headers,
        rawBody: Buffer.concat(chunks),
      };
      request.json = () => JSON.parse(request.rawBody.toString('utf8'));
      let answer;
      try {
        answer = await respond(request);
      } catch (err) {
        answer = { status: 500, body: { error: String(err) } };
      }
      request.answer = answer;
      res.writeHead(answer.status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(answer.body ?? {}));
      received.push(request);
      for (const waiter of waiters.splice(0)) {
        waiter();
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const waitFor = async (predicate) => {
    for (;;) {
      const found = received.find(predicate);
      if (found) {
        return found;
      }
      await new Promise((resolve) => waiters.push(resolve));
    }
  };
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    received,
    waitFor,
    // The delivery of the event of one video.
    deliveryOf: (videoId) => waitFor((request) => request.json().data.id === videoId),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
};

// Polls until `check` returns a truthy value: for changes that no request to the test announces
// (a hook removed after its target answered 410).
const eventually = async (check, { interval = 50 } = {}) => {
  for (;;) {
    const value = await check();
    if (value) {
      return value;
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
};

module.exports = { instance, recordingTarget, eventually };

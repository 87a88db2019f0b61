'use strict';
// Stands in for the execution contexts n8n hands a node's methods, and nothing else: the built
// nodes run unchanged and reach the real service through it. Each part does what n8n's does for
// the features these nodes use: credentials applied as the credential type declares them, JSON
// in and out, the full response when asked for, static data kept between calls, and a webhook
// request carrying its raw body.

const assert = require('node:assert/strict');

const { VideohooksApi } = require('../../dist/credentials/VideohooksApi.credentials');

const credentialType = new VideohooksApi();

// n8n evaluates the expressions of a credential type; these use only `{{$credentials.name}}`.
const resolve = (value, credentials) => {
  if (typeof value !== 'string' || !value.startsWith('=')) {
    return value;
  }
  const resolved = value
    .slice(1)
    .replace(/\{\{\s*\$credentials\.(\w+)\s*\}\}/g, (_, name) => String(credentials[name]));
  assert.ok(!resolved.includes('{{'), `an expression this stand-in cannot evaluate: ${value}`);
  return resolved;
};

const resolveAll = (values, credentials) =>
  Object.fromEntries(
    Object.entries(values ?? {}).map(([key, value]) => [key, resolve(value, credentials)]),
  );

// n8n's httpRequest over fetch, for the options these nodes pass.
const httpRequest = async (options) => {
  // Joined with exactly one slash, as axios (under n8n's helper) joins baseURL and url.
  const url = new URL(
    options.baseURL
      ? `${options.baseURL.replace(/\/+$/, '')}/${options.url.replace(/^\/+/, '')}`
      : options.url,
  );
  for (const [key, value] of Object.entries(options.qs ?? {})) {
    url.searchParams.set(key, String(value));
  }
  const headers = { accept: 'application/json', ...options.headers };
  let body;
  if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers['content-type'] = 'application/json';
  }
  const response = await fetch(url, { method: options.method ?? 'GET', headers, body });
  const text = await response.text();
  const parsed = options.json && text ? JSON.parse(text) : text;
  if (response.status >= 400 && !options.ignoreHttpStatusErrors) {
    throw Object.assign(new Error(`Request failed with status code ${response.status}`), {
      httpCode: String(response.status),
    });
  }
  return options.returnFullResponse
    ? { statusCode: response.status, headers: Object.fromEntries(response.headers), body: parsed }
    : parsed;
};

const authenticated = (credentials, options) => {
  const { headers, qs } = credentialType.authenticate.properties;
  return {
    ...options,
    headers: { ...options.headers, ...resolveAll(headers, credentials) },
    qs: { ...options.qs, ...resolveAll(qs, credentials) },
  };
};

// The credential type's test request, as n8n sends it when credentials are saved.
const testCredentials = (credentials) => {
  const { request } = credentialType.test;
  return httpRequest(
    authenticated(credentials, {
      ...request,
      baseURL: resolve(request.baseURL, credentials),
      json: true,
      returnFullResponse: true,
      ignoreHttpStatusErrors: true,
    }),
  );
};

const returnJsonArray = (data) => (Array.isArray(data) ? data : [data]).map((json) => ({ json }));

const nodeContext = (credentials, node) => ({
  getCredentials: async (type) => {
    assert.equal(type, credentialType.name);
    return credentials;
  },
  getNode: () => ({
    id: 'node',
    name: node,
    type: node,
    typeVersion: 1,
    position: [0, 0],
    parameters: {},
  }),
  helpers: {
    httpRequestWithAuthentication: async (type, options) => {
      assert.equal(type, credentialType.name);
      return httpRequest(authenticated(credentials, options));
    },
    returnJsonArray,
  },
});

// For a trigger's webhook methods (checkExists, create, delete): `staticData` is the node's
// static data, which n8n keeps with the workflow between activation and deliveries.
const hookContext = ({ credentials, webhookUrl, event, staticData }) => ({
  ...nodeContext(credentials, 'Videohooks Trigger'),
  getNodeWebhookUrl: (name) => (name === 'default' ? webhookUrl : undefined),
  getNodeParameter: (name) => {
    assert.equal(name, 'event');
    return event;
  },
  getWorkflowStaticData: (type) => {
    assert.equal(type, 'node');
    return staticData;
  },
});

// For a trigger's webhook(): the request as n8n's webhook server received it (`request` from a
// recording target), and the response the node may send itself.
const webhookContext = ({ staticData, request }) => {
  const sent = {};
  const response = {
    status(code) {
      sent.status = code;
      return response;
    },
    json(body) {
      sent.body = body;
      return response;
    },
  };
  return {
    sent,
    getWorkflowStaticData: (type) => {
      assert.equal(type, 'node');
      return staticData;
    },
    getRequestObject: () => ({ headers: request.headers, rawBody: request.rawBody }),
    getHeaderData: () => request.headers,
    getResponseObject: () => response,
    helpers: { returnJsonArray },
  };
};

// Answers a request as n8n's webhook endpoint for `trigger` does, recording each workflow run
// (the items it started with) in `runs`: 200 "Workflow was started" (the onReceived response),
// or what the node sent itself.
const n8nWebhookEndpoint = (trigger, staticData, runs) => async (request) => {
  const context = webhookContext({ staticData, request });
  const result = await trigger.webhook.call(context);
  if (result.noWebhookResponse) {
    return { status: context.sent.status, body: context.sent.body };
  }
  runs.push({ request, items: result.workflowData[0].map((item) => item.json) });
  return { status: 200, body: { message: 'Workflow was started' } };
};

// For an action node's execute(): one input item per entry of `parameters`.
const executeContext = ({ credentials, parameters, continueOnFail = false }) => ({
  ...nodeContext(credentials, 'Videohooks'),
  getInputData: () => parameters.map(() => ({ json: {} })),
  getNodeParameter: (name, itemIndex, fallback) => {
    const value = parameters[itemIndex][name];
    assert.ok(value !== undefined || fallback !== undefined, `no parameter ${name}`);
    return value === undefined ? fallback : value;
  },
  continueOnFail: () => continueOnFail,
});

module.exports = { executeContext, hookContext, n8nWebhookEndpoint, testCredentials };

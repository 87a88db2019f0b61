'use strict';
// Connecting an account: the videohooks instance's base URL and one of its API keys.

const { apiUrl } = require('./client');

// The cheapest authenticated read: a wrong key answers 401, a wrong URL fails to connect.
const test = async (z, bundle) => {
  const response = await z.request({ url: apiUrl(bundle, '/v1/hooks'), params: { limit: 1 } });
  return response.data;
};

module.exports = {
  type: 'custom',
  fields: [
    {
      key: 'baseUrl',
      label: 'Base URL',
      type: 'string',
      required: true,
      helpText:
        'Where your videohooks instance is reached, for example `https://videohooks.example.com`.',
    },
    {
      key: 'apiKey',
      label: 'API Key',
      type: 'password',
      required: true,
      helpText:
        'A key printed by `videohooks api-key create` (or listed in `VIDEOHOOKS_API_KEYS`).',
    },
  ],
  test,
  connectionLabel: '{{bundle.authData.baseUrl}}',
};

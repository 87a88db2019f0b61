'use strict';
// The "Generate Video" action: POST /v1/videos. The video finishes later; the "Video Completed"
// and "Video Failed" triggers carry the result.

const { apiUrl, videoOutput } = require('../client');
const { queuedVideo } = require('../samples');

const parseInput = (z, text) => {
  if (text === undefined || text === '') {
    return undefined;
  }
  let input;
  try {
    input = JSON.parse(text);
  } catch (err) {
    throw new z.errors.Error(`Provider Input is not valid JSON: ${err.message}`, 'invalid_input');
  }
  if (input === null || typeof input !== 'object' || Array.isArray(input)) {
    throw new z.errors.Error('Provider Input must be a JSON object', 'invalid_input');
  }
  return input;
};

// Only what the user filled in is sent, so the service's own defaults apply to the rest.
const videoRequest = (z, inputData) => {
  const fields = [
    'model',
    'prompt',
    'negative_prompt',
    'duration',
    'resolution',
    'aspect_ratio',
    'size',
    'seed',
    'image_url',
    'fallback_models',
    'callback_url',
    'metadata',
  ];
  const body = {};
  for (const field of fields) {
    const value = inputData[field];
    if (value !== undefined && value !== null && value !== '') {
      body[field] = value;
    }
  }
  const input = parseInput(z, inputData.input);
  if (input !== undefined) {
    body.input = input;
  }
  return body;
};

const perform = async (z, bundle) => {
  const headers = {};
  if (bundle.inputData.idempotency_key) {
    headers['Idempotency-Key'] = bundle.inputData.idempotency_key;
  }
  const response = await z.request({
    url: apiUrl(bundle, '/v1/videos'),
    method: 'POST',
    headers,
    body: videoRequest(z, bundle.inputData),
  });
  return videoOutput(response.data);
};

module.exports = {
  key: 'generate_video',
  noun: 'Video',
  display: {
    label: 'Generate Video',
    description: 'Submits a video generation job to a provider through videohooks.',
  },
  operation: {
    inputFields: [
      {
        key: 'model',
        label: 'Model',
        required: true,
        helpText:
          'The provider and model as `provider/model`, for example `nanogpt/veo3` or `simulator/default`.',
      },
      { key: 'prompt', label: 'Prompt', type: 'text' },
      { key: 'negative_prompt', label: 'Negative Prompt', type: 'text' },
      { key: 'duration', label: 'Duration (seconds)', type: 'number' },
      { key: 'resolution', label: 'Resolution', helpText: 'For example `720p` or `1080p`.' },
      { key: 'aspect_ratio', label: 'Aspect Ratio', helpText: 'For example `16:9`.' },
      { key: 'size', label: 'Size', helpText: 'For example `1280x720`.' },
      { key: 'seed', label: 'Seed', type: 'integer' },
      { key: 'image_url', label: 'Image URL', helpText: 'A first frame or reference image.' },
      {
        key: 'fallback_models',
        label: 'Fallback Models',
        list: true,
        helpText: 'Models (`provider/model`) tried in order when the first cannot do the job.',
      },
      {
        key: 'callback_url',
        label: 'Callback URL',
        helpText: "An https URL that receives this job's terminal event, signed.",
      },
      { key: 'metadata', label: 'Metadata', dict: true, helpText: 'Up to 16 string pairs.' },
      {
        key: 'input',
        label: 'Provider Input (JSON)',
        type: 'text',
        helpText: 'A JSON object passed to the provider as is, over the fields above.',
      },
      {
        key: 'idempotency_key',
        label: 'Idempotency Key',
        helpText:
          'The same key with the same fields returns the first job instead of starting another.',
      },
    ],
    perform,
    sample: { ...queuedVideo, video_url: null },
    outputFields: [
      { key: 'id', label: 'Video ID' },
      { key: 'status', label: 'Status' },
      { key: 'model', label: 'Model' },
      { key: 'provider', label: 'Provider' },
    ],
  },
};

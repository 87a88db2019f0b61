'use strict';
// How every request reaches a videohooks instance: its base URL and Bearer key come from the
// connection, and its error shape becomes a message the Zap editor shows.

const apiUrl = (bundle, path) =>
  `${String(bundle.authData.baseUrl).trim().replace(/\/+$/, '')}${path}`;

const addApiKey = (request, z, bundle) => {
  request.headers = request.headers || {};
  request.headers.Authorization = `Bearer ${bundle.authData.apiKey}`;
  return request;
};

// videohooks answers every error as {"error": {"code", "message", "details"}}; the message is
// written for people, so it is what the user sees, with the status and code kept for support.
const raiseApiErrors = (response, z) => {
  if (response.status < 400 || response.skipThrowForStatus) {
    return response;
  }
  let error = {};
  try {
    error = JSON.parse(response.content).error || {};
  } catch {
    // Not ours (a proxy's HTML page, say): the status alone has to do.
  }
  const details = error.details ? ` ${JSON.stringify(error.details)}` : '';
  throw new z.errors.Error(
    `${error.message || `HTTP ${response.status}`}${details}`,
    error.code || 'http_error',
    response.status,
  );
};

// A Video as every operation outputs it: the API's object plus the first output's URL at the
// top level, the field a Zap maps most.
const videoOutput = (video) => ({
  ...video,
  video_url: video.outputs && video.outputs.length ? video.outputs[0].url : null,
});

module.exports = { apiUrl, addApiKey, raiseApiErrors, videoOutput };

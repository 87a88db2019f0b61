'use strict';
// The "Find Video" search: GET /v1/videos/{id}; an unknown id is "nothing found", not an error.

const { apiUrl, videoOutput } = require('../client');
const { completedVideo } = require('../samples');

const perform = async (z, bundle) => {
  const response = await z.request({
    url: apiUrl(bundle, `/v1/videos/${encodeURIComponent(bundle.inputData.id)}`),
    skipThrowForStatus: true,
  });
  if (response.status === 404) {
    return [];
  }
  response.throwForStatus();
  return [videoOutput(response.data)];
};

module.exports = {
  key: 'find_video',
  noun: 'Video',
  display: {
    label: 'Find Video',
    description: 'Finds a video job by its ID, with its status and outputs.',
  },
  operation: {
    inputFields: [
      { key: 'id', label: 'Video ID', required: true, helpText: 'The `vid_…` id of the job.' },
    ],
    perform,
    sample: { ...completedVideo, video_url: completedVideo.outputs[0].url },
    outputFields: [
      { key: 'id', label: 'Video ID' },
      { key: 'status', label: 'Status' },
      { key: 'progress', label: 'Progress', type: 'integer' },
      { key: 'video_url', label: 'Video URL' },
    ],
  },
};

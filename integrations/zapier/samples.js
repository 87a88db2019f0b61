'use strict';
// What the Zap editor shows before it has fetched anything: events and videos shaped as the
// contract describes them, with obviously made-up values.

const video = (status, fields) => ({
  id: 'vid_01sample0000000000000000',
  object: 'video',
  status,
  model: 'simulator/default',
  provider: 'simulator',
  provider_job_id: 'sim_01sample0000000000000000',
  progress: status === 'completed' ? 100 : 40,
  outputs: [],
  error: null,
  metadata: { user_id: '42' },
  callback_url: null,
  created_at: 1767225600,
  updated_at: 1767225642,
  completed_at: 1767225642,
  ...fields,
});

const completedVideo = video('completed', {
  outputs: [
    {
      url: 'https://videohooks.example/simulator/files/sim_01sample0000000000000000.mp4',
      content_type: 'video/mp4',
    },
  ],
});

const failedVideo = video('failed', {
  error: { code: 'generation_failed', message: 'the provider reported failure' },
});

const event = (type, data) => ({
  id: 'evt_01sample0000000000000000',
  object: 'event',
  type,
  created_at: 1767225642,
  data,
});

module.exports = {
  queuedVideo: video('queued', { progress: 0, updated_at: 1767225600, completed_at: null }),
  completedVideo,
  completedEvent: event('video.completed', completedVideo),
  failedEvent: event('video.failed', failedVideo),
};

'use strict';
// The videohooks integration for Zapier: instant triggers when a video completes or fails, an
// action that generates a video, and a search that finds one.

const authentication = require('./authentication');
const { addApiKey, raiseApiErrors } = require('./client');
const { completedEvent, failedEvent } = require('./samples');
const { videoEventTrigger } = require('./triggers/video_event');
const generateVideo = require('./creates/generate_video');
const findVideo = require('./searches/find_video');

const videoCompleted = videoEventTrigger({
  key: 'video_completed',
  eventType: 'video.completed',
  label: 'Video Completed',
  description: 'Triggers when a video job finishes with its video ready.',
  sampleEvent: completedEvent,
});

const videoFailed = videoEventTrigger({
  key: 'video_failed',
  eventType: 'video.failed',
  label: 'Video Failed',
  description: 'Triggers when a video job fails, with the reason.',
  sampleEvent: failedEvent,
});

module.exports = {
  version: require('./package.json').version,
  platformVersion: require('zapier-platform-core').version,
  authentication,
  beforeRequest: [addApiKey],
  afterResponse: [raiseApiErrors],
  triggers: {
    [videoCompleted.key]: videoCompleted,
    [videoFailed.key]: videoFailed,
  },
  searches: { [findVideo.key]: findVideo },
  creates: { [generateVideo.key]: generateVideo },
};

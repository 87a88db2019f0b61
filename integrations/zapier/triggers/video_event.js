'use strict';
// The "Video Completed" and "Video Failed" triggers: instant, through videohooks' REST hooks
// (POST /v1/hooks when a Zap is turned on, DELETE /v1/hooks/{id} when it is turned off).

const { apiUrl, videoOutput } = require('../client');

// The trigger's item is the Video the event carries, so the Zap maps video fields directly; its
// id is the video's, which Zapier de-duplicates on (one terminal event per video, and a
// redelivered event carries the same video).
const eventOutput = (event) => ({
  ...videoOutput(event.data),
  event_id: event.id,
  event_type: event.type,
});

const videoEventTrigger = ({ key, eventType, label, description, sampleEvent }) => {
  const performSubscribe = async (z, bundle) => {
    const response = await z.request({
      url: apiUrl(bundle, '/v1/hooks'),
      method: 'POST',
      body: { target_url: bundle.targetUrl, event: eventType },
    });
    // Kept by Zapier as bundle.subscribeData: the id to unsubscribe with, and the secret.
    return response.data;
  };

  const performUnsubscribe = async (z, bundle) => {
    const response = await z.request({
      url: apiUrl(bundle, `/v1/hooks/${encodeURIComponent(bundle.subscribeData.id)}`),
      method: 'DELETE',
      skipThrowForStatus: true,
    });
    // Already gone is fine: videohooks removes a hook whose target answered 410.
    if (response.status === 404) {
      return { id: bundle.subscribeData.id, object: 'hook', deleted: true };
    }
    response.throwForStatus();
    return response.data;
  };

  const perform = (z, bundle) => [eventOutput(bundle.cleanedRequest)];

  // Sample data for the Zap editor: the latest real events of this type, or, before there are
  // any, a made-up one from the service (shaped exactly like a real one).
  const performList = async (z, bundle) => {
    const recent = await z.request({
      url: apiUrl(bundle, '/v1/events'),
      params: { type: eventType, limit: 3 },
    });
    if (recent.data.data.length) {
      return recent.data.data.map(eventOutput);
    }
    const sample = await z.request({
      url: apiUrl(bundle, '/v1/events/sample'),
      params: { type: eventType },
    });
    return [eventOutput(sample.data)];
  };

  return {
    key,
    noun: 'Video',
    display: { label, description },
    operation: {
      type: 'hook',
      performSubscribe,
      performUnsubscribe,
      perform,
      performList,
      sample: eventOutput(sampleEvent),
      outputFields: [
        { key: 'id', label: 'Video ID' },
        { key: 'status', label: 'Status' },
        { key: 'model', label: 'Model' },
        { key: 'video_url', label: 'Video URL' },
        { key: 'error__code', label: 'Error Code' },
        { key: 'error__message', label: 'Error Message' },
        { key: 'event_id', label: 'Event ID' },
        { key: 'completed_at', label: 'Completed At (Unix seconds)', type: 'integer' },
      ],
    },
  };
};

module.exports = { videoEventTrigger, eventOutput };

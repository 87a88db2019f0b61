import type {
	IDataObject,
	IHookFunctions,
	INodeType,
	INodeTypeDescription,
	IWebhookFunctions,
	IWebhookResponseData,
} from 'n8n-workflow';
import { NodeConnectionTypes } from 'n8n-workflow';

import { videohooksRequest } from '../shared/api';
import { verifiedEvent } from './signature';

// What the node keeps between activation and deliveries: the hook's id (to check and remove
// it) and its secret (returned once, at creation) that verifies every delivery.
interface HookData extends IDataObject {
	hookId?: string;
	hookSecret?: string;
}

const hookData = (context: IHookFunctions | IWebhookFunctions) =>
	context.getWorkflowStaticData('node') as HookData;

async function removeHook(this: IHookFunctions, hookId: string): Promise<void> {
	// Already gone is fine: videohooks removes a hook whose target answered 410.
	await videohooksRequest.call(this, 'DELETE', `/v1/hooks/${encodeURIComponent(hookId)}`, {
		expected: [404],
	});
}

export class VideohooksTrigger implements INodeType {
	description: INodeTypeDescription = {
		displayName: 'Videohooks Trigger',
		name: 'videohooksTrigger',
		icon: {
			light: 'file:../../icons/videohooks.svg',
			dark: 'file:../../icons/videohooks.dark.svg',
		},
		group: ['trigger'],
		version: 1,
		subtitle: '={{$parameter["event"]}}',
		description: 'Starts the workflow when a video generated through videohooks completes or fails',
		defaults: {
			name: 'Videohooks Trigger',
		},
		inputs: [],
		outputs: [NodeConnectionTypes.Main],
		credentials: [
			{
				name: 'videohooksApi',
				required: true,
			},
		],
		webhooks: [
			{
				name: 'default',
				httpMethod: 'POST',
				responseMode: 'onReceived',
				path: 'webhook',
			},
		],
		properties: [
			{
				displayName: 'Event',
				name: 'event',
				type: 'options',
				options: [
					{
						name: 'Any Terminal Event',
						value: '*',
						description: 'A video completed or failed',
					},
					{
						name: 'Video Completed',
						value: 'video.completed',
						description: 'A video finished and its outputs are ready',
					},
					{
						name: 'Video Failed',
						value: 'video.failed',
						description: 'A video failed, with the reason',
					},
				],
				default: 'video.completed',
				required: true,
			},
		],
	};

	webhookMethods = {
		default: {
			// True only while the stored hook is still there, sending this event to this URL: a
			// hook removed meanwhile (its target answered 410, or someone deleted it) is made anew.
			async checkExists(this: IHookFunctions): Promise<boolean> {
				const { hookId, hookSecret } = hookData(this);
				if (hookId === undefined || hookSecret === undefined) {
					return false;
				}
				const { statusCode, body } = await videohooksRequest.call(
					this,
					'GET',
					`/v1/hooks/${encodeURIComponent(hookId)}`,
					{ expected: [404] },
				);
				return (
					statusCode === 200 &&
					body.target_url === this.getNodeWebhookUrl('default') &&
					body.event === this.getNodeParameter('event')
				);
			},

			async create(this: IHookFunctions): Promise<boolean> {
				const data = hookData(this);
				const targetUrl = this.getNodeWebhookUrl('default') as string;
				// A hook already sending to this node's URL is one whose secret this node no longer
				// has (its stored data was lost or replaced): its deliveries could only be refused.
				const existing = await videohooksRequest.call(this, 'GET', '/v1/hooks', {
					qs: { target_url: targetUrl, limit: 100 },
				});
				const stale = new Set((existing.body.data as IDataObject[]).map((hook) => String(hook.id)));
				if (data.hookId !== undefined) {
					stale.add(data.hookId);
				}
				for (const hookId of stale) {
					await removeHook.call(this, hookId);
				}
				const { body: hook } = await videohooksRequest.call(this, 'POST', '/v1/hooks', {
					body: { target_url: targetUrl, event: this.getNodeParameter('event') as string },
				});
				data.hookId = String(hook.id);
				data.hookSecret = String(hook.secret);
				return true;
			},

			async delete(this: IHookFunctions): Promise<boolean> {
				const data = hookData(this);
				if (data.hookId !== undefined) {
					await removeHook.call(this, data.hookId);
				}
				delete data.hookId;
				delete data.hookSecret;
				return true;
			},
		},
	};

	// Only a delivery whose Standard Webhooks signature verifies with this hook's secret (and
	// whose timestamp is recent, against replays) starts the workflow; anything else gets 401,
	// which videohooks retries: a delivery refused by mistake is not lost.
	async webhook(this: IWebhookFunctions): Promise<IWebhookResponseData> {
		const { hookSecret } = hookData(this);
		// The raw body, byte for byte: parsed and re-serialized JSON would not verify.
		const { rawBody } = this.getRequestObject();
		const event =
			hookSecret !== undefined && rawBody !== undefined
				? verifiedEvent(hookSecret, this.getHeaderData(), rawBody)
				: undefined;
		if (event === undefined) {
			this.getResponseObject()
				.status(401)
				.json({ error: { code: 'unauthorized', message: 'the webhook signature did not verify' } });
			return { noWebhookResponse: true };
		}
		return { workflowData: [this.helpers.returnJsonArray(event)] };
	}
}

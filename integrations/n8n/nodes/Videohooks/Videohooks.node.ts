import type {
	IDataObject,
	IExecuteFunctions,
	INodeExecutionData,
	INodeType,
	INodeTypeDescription,
} from 'n8n-workflow';
import { NodeConnectionTypes, NodeOperationError } from 'n8n-workflow';

import { videohooksRequest } from '../shared/api';

// The optional fields of a generation, named as n8n names parameters, and the API's names.
const OPTIONAL_FIELDS: Record<string, string> = {
	negativePrompt: 'negative_prompt',
	duration: 'duration',
	resolution: 'resolution',
	aspectRatio: 'aspect_ratio',
	size: 'size',
	seed: 'seed',
	imageUrl: 'image_url',
	callbackUrl: 'callback_url',
};

function jsonObject(this: IExecuteFunctions, value: unknown, name: string, itemIndex: number) {
	const parsed: unknown = typeof value === 'string' ? JSON.parse(value) : value;
	if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
		throw new NodeOperationError(this.getNode(), `${name} must be a JSON object`, { itemIndex });
	}
	return parsed as IDataObject;
}

async function generate(this: IExecuteFunctions, itemIndex: number): Promise<IDataObject> {
	const body: IDataObject = {
		model: this.getNodeParameter('model', itemIndex) as string,
		prompt: this.getNodeParameter('prompt', itemIndex) as string,
	};
	const options = this.getNodeParameter('additionalFields', itemIndex, {}) as IDataObject;
	for (const [option, field] of Object.entries(OPTIONAL_FIELDS)) {
		if (options[option] !== undefined && options[option] !== '') {
			body[field] = options[option];
		}
	}
	if (typeof options.fallbackModels === 'string' && options.fallbackModels.trim() !== '') {
		body.fallback_models = options.fallbackModels.split(',').map((model) => model.trim());
	}
	if (options.metadata !== undefined) {
		body.metadata = jsonObject.call(this, options.metadata, 'Metadata', itemIndex);
	}
	if (options.input !== undefined) {
		body.input = jsonObject.call(this, options.input, 'Provider Input', itemIndex);
	}
	const headers: IDataObject = {};
	if (typeof options.idempotencyKey === 'string' && options.idempotencyKey !== '') {
		headers['Idempotency-Key'] = options.idempotencyKey;
	}
	return (await videohooksRequest.call(this, 'POST', '/v1/videos', { body, headers })).body;
}

async function get(this: IExecuteFunctions, itemIndex: number): Promise<IDataObject> {
	const videoId = this.getNodeParameter('videoId', itemIndex) as string;
	return (await videohooksRequest.call(this, 'GET', `/v1/videos/${encodeURIComponent(videoId)}`))
		.body;
}

export class Videohooks implements INodeType {
	description: INodeTypeDescription = {
		displayName: 'Videohooks',
		name: 'videohooks',
		icon: {
			light: 'file:../../icons/videohooks.svg',
			dark: 'file:../../icons/videohooks.dark.svg',
		},
		group: ['transform'],
		version: 1,
		subtitle: '={{$parameter["operation"]}}',
		description: 'Generate AI videos through videohooks and look them up',
		defaults: {
			name: 'Videohooks',
		},
		usableAsTool: true,
		inputs: [NodeConnectionTypes.Main],
		outputs: [NodeConnectionTypes.Main],
		credentials: [
			{
				name: 'videohooksApi',
				required: true,
			},
		],
		properties: [
			{
				displayName: 'Operation',
				name: 'operation',
				type: 'options',
				noDataExpression: true,
				options: [
					{
						name: 'Generate',
						value: 'generate',
						description: 'Submit a video generation job',
						action: 'Generate a video',
					},
					{
						name: 'Get',
						value: 'get',
						description: 'Get a video job with its status and outputs',
						action: 'Get a video',
					},
				],
				default: 'generate',
			},
			{
				displayName: 'Model',
				name: 'model',
				type: 'string',
				required: true,
				default: '',
				placeholder: 'nanogpt/veo3',
				description: 'The provider and model as provider/model',
				displayOptions: { show: { operation: ['generate'] } },
			},
			{
				displayName: 'Prompt',
				name: 'prompt',
				type: 'string',
				typeOptions: { rows: 3 },
				default: '',
				description: 'What the video shows',
				displayOptions: { show: { operation: ['generate'] } },
			},
			{
				displayName: 'Additional Fields',
				name: 'additionalFields',
				type: 'collection',
				placeholder: 'Add Field',
				default: {},
				displayOptions: { show: { operation: ['generate'] } },
				options: [
					{
						displayName: 'Aspect Ratio',
						name: 'aspectRatio',
						type: 'string',
						default: '',
						placeholder: '16:9',
					},
					{
						displayName: 'Callback URL',
						name: 'callbackUrl',
						type: 'string',
						default: '',
						description: "An https URL that receives this job's terminal event, signed",
					},
					{
						displayName: 'Duration',
						name: 'duration',
						type: 'number',
						default: 5,
						description: 'Length of the video in seconds',
					},
					{
						displayName: 'Fallback Models',
						name: 'fallbackModels',
						type: 'string',
						default: '',
						description:
							'Comma-separated models (provider/model) tried in order when the first cannot do the job',
					},
					{
						displayName: 'Idempotency Key',
						name: 'idempotencyKey',
						type: 'string',
						default: '',
						description:
							'The same key with the same fields returns the first job instead of starting another',
					},
					{
						displayName: 'Image URL',
						name: 'imageUrl',
						type: 'string',
						default: '',
						description: 'A first frame or reference image',
					},
					{
						displayName: 'Metadata',
						name: 'metadata',
						type: 'json',
						default: '{}',
						description:
							'An object of up to 16 string pairs, returned with the video and its events',
					},
					{
						displayName: 'Negative Prompt',
						name: 'negativePrompt',
						type: 'string',
						default: '',
					},
					{
						displayName: 'Provider Input',
						name: 'input',
						type: 'json',
						default: '{}',
						description: 'A JSON object passed to the provider as is, over the fields above',
					},
					{
						displayName: 'Resolution',
						name: 'resolution',
						type: 'string',
						default: '',
						placeholder: '1080p',
					},
					{
						displayName: 'Seed',
						name: 'seed',
						type: 'number',
						default: 0,
					},
					{
						displayName: 'Size',
						name: 'size',
						type: 'string',
						default: '',
						placeholder: '1280x720',
					},
				],
			},
			{
				displayName: 'Video ID',
				name: 'videoId',
				type: 'string',
				required: true,
				default: '',
				placeholder: 'vid_…',
				displayOptions: { show: { operation: ['get'] } },
			},
		],
	};

	async execute(this: IExecuteFunctions): Promise<INodeExecutionData[][]> {
		const items = this.getInputData();
		const results: INodeExecutionData[] = [];
		for (let itemIndex = 0; itemIndex < items.length; itemIndex++) {
			try {
				const operation = this.getNodeParameter('operation', itemIndex) as string;
				const video =
					operation === 'generate'
						? await generate.call(this, itemIndex)
						: await get.call(this, itemIndex);
				results.push({ json: video, pairedItem: { item: itemIndex } });
			} catch (error) {
				if (!this.continueOnFail()) {
					throw new NodeOperationError(this.getNode(), error as Error, { itemIndex });
				}
				results.push({ json: { error: error.message }, pairedItem: { item: itemIndex } });
			}
		}
		return [results];
	}
}

import type {
	IAuthenticateGeneric,
	Icon,
	ICredentialTestRequest,
	ICredentialType,
	INodeProperties,
} from 'n8n-workflow';

export class VideohooksApi implements ICredentialType {
	name = 'videohooksApi';

	displayName = 'Videohooks API';

	icon: Icon = { light: 'file:../icons/videohooks.svg', dark: 'file:../icons/videohooks.dark.svg' };

	properties: INodeProperties[] = [
		{
			displayName: 'Base URL',
			name: 'baseUrl',
			type: 'string',
			default: '',
			placeholder: 'https://videohooks.example.com',
			description: 'Where your videohooks instance is reached',
			required: true,
		},
		{
			displayName: 'API Key',
			name: 'apiKey',
			type: 'string',
			typeOptions: { password: true },
			default: '',
			description:
				'A key printed by `videohooks api-key create` (or listed in VIDEOHOOKS_API_KEYS)',
			required: true,
		},
	];

	authenticate: IAuthenticateGeneric = {
		type: 'generic',
		properties: {
			headers: {
				Authorization: '=Bearer {{$credentials.apiKey}}',
			},
		},
	};

	// The cheapest authenticated read: a wrong key answers 401, a wrong URL fails to connect.
	test: ICredentialTestRequest = {
		request: {
			baseURL: '={{$credentials.baseUrl}}',
			url: '/v1/hooks',
			qs: { limit: 1 },
			method: 'GET',
		},
	};
}

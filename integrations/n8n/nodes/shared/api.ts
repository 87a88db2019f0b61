// How both nodes call videohooks: the base URL and key from the credentials, and the service's
// error shape turned into the node error n8n shows.
import type {
	IDataObject,
	IExecuteFunctions,
	IHookFunctions,
	IHttpRequestMethods,
	JsonObject,
} from 'n8n-workflow';
import { NodeApiError } from 'n8n-workflow';

export interface ApiRequest {
	body?: IDataObject;
	qs?: IDataObject;
	headers?: IDataObject;
	// Statuses the caller handles itself (404 when "not there" is an answer, not a failure).
	expected?: number[];
}

export interface ApiResponse {
	statusCode: number;
	body: IDataObject;
}

export async function videohooksRequest(
	this: IExecuteFunctions | IHookFunctions,
	method: IHttpRequestMethods,
	path: string,
	request: ApiRequest = {},
): Promise<ApiResponse> {
	const credentials = await this.getCredentials('videohooksApi');
	const response = (await this.helpers.httpRequestWithAuthentication.call(this, 'videohooksApi', {
		method,
		baseURL: String(credentials.baseUrl),
		url: path,
		body: request.body,
		qs: request.qs,
		headers: request.headers,
		json: true,
		returnFullResponse: true,
		ignoreHttpStatusErrors: true,
	})) as ApiResponse;
	const { statusCode, body } = response;
	if (statusCode >= 400 && !(request.expected ?? []).includes(statusCode)) {
		// videohooks answers every error as {"error": {"code", "message", "details"}}.
		const error = ((body ?? {}).error ?? {}) as IDataObject;
		throw new NodeApiError(this.getNode(), (body ?? {}) as JsonObject, {
			httpCode: String(statusCode),
			message: typeof error.message === 'string' ? error.message : `HTTP ${statusCode}`,
			description:
				typeof error.code === 'string' ? `videohooks error code: ${error.code}` : undefined,
		});
	}
	return response;
}

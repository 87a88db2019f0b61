// Standard Webhooks verification (https://www.standardwebhooks.com/): HMAC-SHA256 of
// "{webhook-id}.{webhook-timestamp}.{raw body}" under the hook's secret, compared in constant
// time, within a tolerance against replays. Written with node:crypto because an n8n community
// node may have no runtime dependency; the tests hold it to the standardwebhooks package.
import { createHmac, timingSafeEqual } from 'crypto';
import type { IDataObject } from 'n8n-workflow';

// The tolerance the standardwebhooks libraries use.
export const TOLERANCE_SECONDS = 5 * 60;

type Headers = Record<string, string | string[] | undefined>;

const header = (headers: Headers, name: string): string | undefined => {
	const value = headers[name];
	return Array.isArray(value) ? value[0] : value;
};

const secretKey = (secret: string): Buffer =>
	Buffer.from(secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret, 'base64');

// The delivered event when the delivery is signed with `secret` and recent; undefined otherwise.
export function verifiedEvent(
	secret: string,
	headers: Headers,
	rawBody: Buffer,
	nowSeconds: number = Date.now() / 1000,
): IDataObject | undefined {
	const id = header(headers, 'webhook-id');
	const timestamp = header(headers, 'webhook-timestamp');
	const signatures = header(headers, 'webhook-signature');
	if (!id || !timestamp || !signatures || !/^\d+$/.test(timestamp)) {
		return undefined;
	}
	if (Math.abs(nowSeconds - Number(timestamp)) > TOLERANCE_SECONDS) {
		return undefined;
	}
	const expected = createHmac('sha256', secretKey(secret))
		.update(`${id}.${timestamp}.`)
		.update(rawBody)
		.digest();
	// Several space-separated signatures while the sender's secret is rotating; one must match.
	const signed = signatures.split(' ').some((signature) => {
		const [version, value] = signature.split(',', 2);
		const given = Buffer.from(value ?? '', 'base64');
		return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
	});
	if (!signed) {
		return undefined;
	}
	try {
		const event: unknown = JSON.parse(rawBody.toString('utf8'));
		return event !== null && typeof event === 'object' && !Array.isArray(event)
			? (event as IDataObject)
			: undefined;
	} catch {
		return undefined;
	}
}

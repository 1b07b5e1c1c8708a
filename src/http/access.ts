import { AppError } from '../errors.js';

/**
 * Who may call a route is a property of the route, decided where the route is declared: every
 * route is protected unless its config says `access: 'public'`. The check reads the route the
 * router matched, never the raw URL, so no encoding of a path can make the two disagree.
 */
export type RouteAccess = 'public' | 'protected';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Omitted means protected: a route is public only when declared so. */
    access?: 'public';
  }
}

export function accessOf(config: { access?: 'public' } | undefined): RouteAccess {
  return config?.access === 'public' ? 'public' : 'protected';
}

/** Host header values that can only come from a client that reached memsync over loopback by name or address. */
const LOOPBACK_HOST = /^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d{1,5})?$/i;

export function isLoopbackHost(host: string | undefined): boolean {
  return host !== undefined && LOOPBACK_HOST.test(host);
}

/**
 * A browser names the page that sent a request in `Origin`. A page of any other origin
 * (including the opaque `null`) must not drive the API: that is cross-site request forgery.
 */
export function isForeignOrigin(origin: string | undefined, host: string | undefined): boolean {
  if (origin === undefined) return false;
  let parsed: URL;
  try {
    parsed = new URL(origin);
  } catch {
    return true;
  }
  return host === undefined || parsed.host.toLowerCase() !== host.toLowerCase() || (parsed.protocol !== 'http:' && parsed.protocol !== 'https:');
}

/** `application/json`, with or without parameters: a type no HTML form or simple cross-site request can send. */
export function isJsonContentType(contentType: string | undefined): boolean {
  const mediaType = contentType?.split(';')[0]?.trim().toLowerCase();
  return mediaType === 'application/json';
}

export interface RequestFacts {
  method: string;
  host: string | undefined;
  origin: string | undefined;
  contentType: string | undefined;
}

/**
 * Checks that protect a protected route whatever the token setting. Without a token the API
 * listens on loopback only (config refuses anything else), which a page in a browser on the same
 * host can still reach: by rebinding its own name to 127.0.0.1 (refused by the Host check) or by
 * posting across origins (refused by the Origin and content-type checks).
 */
export function checkRequestOrigin(request: RequestFacts, tokenConfigured: boolean): void {
  if (isForeignOrigin(request.origin, request.host)) {
    throw new AppError('forbidden', `requests from a web page of another origin (${JSON.stringify(request.origin)}) are refused`, {
      hint: 'call the API from a script or the memsync CLI, not from a browser page',
    });
  }
  if (tokenConfigured) return;
  if (!isLoopbackHost(request.host)) {
    throw new AppError('forbidden', `Host ${JSON.stringify(request.host ?? '')} is not a loopback name; without CLOUD_SYNC_API_TOKEN only localhost, 127.0.0.1 and [::1] are answered`, {
      hint: 'address memsync as localhost or 127.0.0.1, or set CLOUD_SYNC_API_TOKEN',
    });
  }
  if (request.method === 'POST' && !isJsonContentType(request.contentType)) {
    throw new AppError('unsupported_media_type', 'POST requests must say Content-Type: application/json when no API token is set', {
      hint: "add -H 'Content-Type: application/json' (the body may be empty)",
    });
  }
}

/**
 * The browser-mode server's gatekeeping, as pure functions of a request: which Host and Origin are
 * ours (DNS-rebinding and cross-site defence), the per-run token (URL once, then an HttpOnly
 * SameSite=Strict cookie, or Authorization: Bearer), and the CSP header. Does no I/O.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

export const COOKIE = 'stasis_token';

export function newToken(): string {
  return randomBytes(32).toString('base64url');
}

export function allowedHosts(port: number): Set<string> {
  return new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
}

/** The Host header must name our loopback address and port: a rebinding DNS name is refused. */
export function hostOk(req: IncomingMessage, port: number): boolean {
  const host = req.headers.host;
  return typeof host === 'string' && allowedHosts(port).has(host.toLowerCase());
}

/** No Origin (non-browser client, or a same-origin GET) is fine; a present Origin must be ours. */
export function originOk(req: IncomingMessage, port: number): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  return [...allowedHosts(port)].some((h) => origin === `http://${h}`);
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function cookieToken(req: IncomingMessage): string | null {
  const header = req.headers.cookie;
  if (!header) return null;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === COOKIE) return part.slice(eq + 1).trim();
  }
  return null;
}

function bearerToken(req: IncomingMessage): string | null {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  return m ? m[1] : null;
}

/** 'header': cookie or bearer matched; 'query': only ?token= matched (caller sets the cookie); null: refused. */
export function authenticate(req: IncomingMessage, url: URL, token: string): 'header' | 'query' | null {
  const fromHeader = cookieToken(req) ?? bearerToken(req);
  if (fromHeader !== null && sameToken(fromHeader, token)) return 'header';
  const q = url.searchParams.get('token');
  if (q !== null && sameToken(q, token)) return 'query';
  return null;
}

export function sessionCookie(token: string): string {
  return `${COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/`;
}

export function contentSecurityPolicy(port: number): string {
  const ws = [...allowedHosts(port)].map((h) => `ws://${h}`).join(' ');
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    `connect-src 'self' ${ws}`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/**
 * Browser mode: the same API as the Electron window, over HTTP + WebSocket, on 127.0.0.1 only.
 *   POST /api/call/<name>  body: JSON input  ->  JSON Reply (status 200 when ok)
 *   GET  /api/events       WebSocket: {"event", "payload"} messages
 *   POST /api/export       {id, kind}: the engine writes the export into a private slot of the store;
 *                          replies {downloadId, filename, bytes} (a Reply, like calls)
 *   GET  /api/download/<downloadId>  that file once, as an attachment; the slot is then deleted
 *   POST /api/import       body: a stream file (application/octet-stream, at most maxUploadBytes),
 *                          written to a private temp file in the store, imported, deleted
 *   GET  /...              the built renderer (dist/renderer), with a strict CSP
 * A call, export or import may carry an X-Stasis-Call header: the page's id for it, echoed in the
 * call's 'op.progress' events so the page can tell its own progress from another tab's.
 * Every request: Host and Origin checked (403), token checked (401); payloads validated with the
 * contract's zod schemas (400), unknown calls 404. Handlers run in the engine worker behind
 * EngineCaller. Never binds anything but loopback.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { readFile, stat } from 'node:fs/promises';
import { z } from 'zod';
import { extname, join, normalize, sep } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Reply } from '../../shared/contract';
import { StasisError, toErrorData, type ErrorCode, type StasisErrorData } from '../../shared/errors';
import { parseInput } from '../api/invoke';
import type { EngineCaller } from '../engine/host/engine-host';
import { exportFilename, Transfers, UploadTooLarge } from './transfers';
import { authenticate, contentSecurityPolicy, hostOk, newToken, originOk, sessionCookie } from './security';

export interface ServerOptions {
  engine: EngineCaller;
  /** Directory of the built renderer (index.html + assets). */
  rendererDir: string;
  /** 0 (default): any free port. */
  port?: number;
  /** Tests may fix it; otherwise a random per-run token. */
  token?: string;
  /** The engine's store directory: export downloads and imports by upload use <store>/transfer. Without it they answer 501. */
  storeDir?: string;
  /** Largest stream file accepted by POST /api/import (default 4 GiB). */
  maxUploadBytes?: number;
}

export interface RunningServer {
  port: number;
  token: string;
  origin: string;
  /** The URL to open: carries the token once; the page then lives on the cookie. */
  url: string;
  close(): Promise<void>;
}

const MAX_BODY = 1 << 20;
const DEFAULT_MAX_UPLOAD = 4 * 1024 ** 3;

const exportRequest = z.object({
  id: z.number().int().positive(),
  kind: z.enum(['core', 'one', 'flattened', 'chain']),
}).strict();

const mime: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
};

/** HTTP status for a failed Reply; the body always carries the precise code. */
const statusFor: Partial<Record<ErrorCode, number>> = {
  INVALID_INPUT: 400,
  NOT_FOUND: 404,
  PERMISSION_DENIED: 403,
  CONFLICT: 409,
  BUSY: 409,
  ALREADY_TRACED: 409,
  PROCESS_GONE: 410,
  UNSUPPORTED: 501,
  PREFLIGHT_FAILED: 422,
  CORRUPT: 500,
  INTERNAL: 500,
  CANCELLED: 499,
};

class HttpError extends Error {
  constructor(readonly status: number, readonly data: StasisErrorData) { super(data.message); }
}

/** The page's id for this call (X-Stasis-Call); the engine host ignores one that is not a short plain token. */
function callIdOf(req: IncomingMessage): string | undefined {
  const v = req.headers['x-stasis-call'];
  return typeof v === 'string' ? v : undefined;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, code: ErrorCode, message: string): void {
  const reply: Reply<never> = { ok: false, error: { code, message } };
  sendJson(res, status, reply);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpError(413, { code: 'INVALID_INPUT', message: `The request body is larger than ${MAX_BODY} bytes.` });
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export async function startServer(opts: ServerOptions): Promise<RunningServer> {
  const token = opts.token ?? newToken();
  const engine = opts.engine;
  let port = 0;
  const wss = new WebSocketServer({ noServer: true, maxPayload: 64 * 1024 });
  const sockets = new Set<WebSocket>();

  const unsubscribe = engine.onEvent((event, payload) => {
    const text = JSON.stringify({ event, payload });
    for (const ws of sockets) if (ws.readyState === ws.OPEN) ws.send(text);
  });

  async function handleCall(req: IncomingMessage, res: ServerResponse, name: string): Promise<void> {
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST');
      return sendError(res, 405, 'INVALID_INPUT', 'API calls are POST requests with a JSON body.');
    }
    const ctype = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (ctype !== 'application/json') return sendError(res, 400, 'INVALID_INPUT', 'The request body must be JSON (Content-Type: application/json).');
    const text = await readBody(req);
    let raw: unknown;
    try {
      raw = text.trim() === '' ? {} : JSON.parse(text);
    } catch {
      return sendError(res, 400, 'INVALID_INPUT', 'The request body is not valid JSON.');
    }
    let input: unknown;
    try {
      input = parseInput(name, raw);
    } catch (err) {
      const data = toErrorData(err);
      return sendError(res, data.code === 'NOT_FOUND' ? 404 : 400, data.code, data.message);
    }
    // A client that goes away (closed tab, aborted fetch) cancels its call.
    const reply = await engine.call(name, input, abortOnClose(res), callIdOf(req));
    if (res.destroyed) return;
    sendJson(res, reply.ok ? 200 : statusFor[reply.error.code] ?? 500, reply);
  }

  const transfers = opts.storeDir ? new Transfers(opts.storeDir) : null;
  const maxUpload = opts.maxUploadBytes ?? DEFAULT_MAX_UPLOAD;
  transfers?.sweep();

  /** Aborted when the client goes away before the response is complete. */
  function abortOnClose(res: ServerResponse): AbortSignal {
    const abort = new AbortController();
    res.on('close', () => { if (!res.writableFinished) abort.abort(); });
    return abort.signal;
  }

  async function handleExport(req: IncomingMessage, res: ServerResponse, t: Transfers): Promise<void> {
    if (req.method !== 'POST') { res.setHeader('Allow', 'POST'); return sendError(res, 405, 'INVALID_INPUT', 'Exports are POST requests with a JSON body.'); }
    const ctype = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (ctype !== 'application/json') return sendError(res, 400, 'INVALID_INPUT', 'The request body must be JSON (Content-Type: application/json).');
    let parsed;
    try { parsed = exportRequest.safeParse(JSON.parse(await readBody(req))); } catch (err) {
      if (err instanceof HttpError) throw err;
      return sendError(res, 400, 'INVALID_INPUT', 'The request body is not valid JSON.');
    }
    if (!parsed.success) return sendError(res, 400, 'INVALID_INPUT', 'An export needs {"id": checkpoint id, "kind": "core" | "one" | "flattened" | "chain"}.');
    const { id, kind } = parsed.data;
    const filename = exportFilename(id, kind);
    const slot = t.newSlot(filename);
    const signal = abortOnClose(res);
    const reply = kind === 'core'
      ? await engine.call('restore.core', { id, output: slot.path }, signal, callIdOf(req))
      : await engine.call('checkpoints.export', { id, file: slot.path, how: kind }, signal, callIdOf(req));
    if (!reply.ok || res.destroyed) {
      t.drop(slot.id);
      if (res.destroyed) return;
      if (!reply.ok) return sendJson(res, statusFor[reply.error.code] ?? 500, reply);
    }
    const bytes = (reply as { value: { bytes: number } }).value.bytes;
    sendJson(res, 200, { ok: true, value: { downloadId: slot.id, filename, bytes, url: `/api/download/${slot.id}` } });
  }

  function handleDownload(req: IncomingMessage, res: ServerResponse, t: Transfers, id: string): void {
    if (req.method !== 'GET') { res.setHeader('Allow', 'GET'); return sendError(res, 405, 'INVALID_INPUT', 'Downloads are GET requests.'); }
    const file = t.take(id);
    if (!file) return sendError(res, 404, 'NOT_FOUND', 'No such download: it was already fetched, it expired, or the id is wrong; export again.');
    res.on('close', () => file.done());
    res.writeHead(200, {
      'Content-Type': 'application/octet-stream',
      'Content-Length': file.size,
      'Content-Disposition': `attachment; filename="${file.filename}"`,
      'Cache-Control': 'no-store',
    });
    const stream = t.read(file);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  }

  async function handleImport(req: IncomingMessage, res: ServerResponse, t: Transfers): Promise<void> {
    if (req.method !== 'POST') { res.setHeader('Allow', 'POST'); return sendError(res, 405, 'INVALID_INPUT', 'Imports are POST requests with the stream file as the body.'); }
    const ctype = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (ctype !== 'application/octet-stream') return sendError(res, 400, 'INVALID_INPUT', 'Upload the stream file as the body (Content-Type: application/octet-stream).');
    const tooLarge = (): void => {
      res.setHeader('Connection', 'close');
      sendError(res, 413, 'INVALID_INPUT', `The file is larger than the ${maxUpload} bytes browser mode accepts; import it with "stasis import FILE" instead.`);
    };
    const declared = Number(req.headers['content-length'] ?? NaN);
    if (Number.isFinite(declared) && declared > maxUpload) { tooLarge(); return void req.destroy(); }
    const signal = abortOnClose(res);
    let file: string;
    try {
      file = await t.receive(req, maxUpload, signal);
    } catch (err) {
      if (err instanceof UploadTooLarge) { tooLarge(); return void req.resume(); }
      if (res.destroyed || signal.aborted) return;
      throw err;
    }
    try {
      const reply = await engine.call('checkpoints.import', { file }, signal, callIdOf(req));
      if (!res.destroyed) sendJson(res, reply.ok ? 200 : statusFor[reply.error.code] ?? 500, reply);
    } finally {
      t.remove(file);
    }
  }

  async function handleStatic(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return sendError(res, 405, 'INVALID_INPUT', 'Only GET and HEAD are allowed here.');
    }
    let rel: string;
    try { rel = decodeURIComponent(url.pathname); } catch { return sendError(res, 400, 'INVALID_INPUT', 'The path is not valid URL encoding.'); }
    if (rel.endsWith('/')) rel += 'index.html';
    const root = normalize(opts.rendererDir + sep);
    const file = normalize(join(root, rel));
    if (!file.startsWith(root)) return sendError(res, 404, 'NOT_FOUND', 'No such file.');
    let body: Buffer;
    try {
      if (!(await stat(file)).isFile()) throw new Error('not a file');
      body = await readFile(file);
    } catch {
      if (rel === '/index.html') return sendError(res, 503, 'UNSUPPORTED', `The user interface is not built (no ${file}); run "npm run build" first.`);
      return sendError(res, 404, 'NOT_FOUND', `No such file: ${rel}`);
    }
    res.writeHead(200, {
      'Content-Type': mime[extname(file)] ?? 'application/octet-stream',
      'Content-Length': body.length,
      'Cache-Control': 'no-cache',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.setHeader('Content-Security-Policy', contentSecurityPolicy(port));
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    if (!hostOk(req, port)) return sendError(res, 403, 'PERMISSION_DENIED', 'Refused: the Host header is not this local server.');
    if (!originOk(req, port)) return sendError(res, 403, 'PERMISSION_DENIED', 'Refused: the request comes from another origin.');
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    let auth = authenticate(req, url, token);
    // The URL token is for opening the page; API calls must present the cookie or a bearer header.
    if (auth === 'query' && (req.method !== 'GET' || url.pathname.startsWith('/api/'))) auth = null;
    if (!auth) return sendError(res, 401, 'PERMISSION_DENIED', 'Missing or wrong token: open the URL Stasis printed when it started.');
    if (auth === 'query') {
      // Trade the URL token for a cookie, and drop it from the address bar (and from history).
      url.searchParams.delete('token');
      res.writeHead(303, { 'Set-Cookie': sessionCookie(token), Location: url.pathname + url.search, 'Cache-Control': 'no-store' });
      return void res.end();
    }
    if (url.pathname.startsWith('/api/call/')) return handleCall(req, res, decodeURIComponent(url.pathname.slice('/api/call/'.length)));
    if (url.pathname === '/api/export' || url.pathname === '/api/import' || url.pathname.startsWith('/api/download/')) {
      if (!transfers) return sendError(res, 501, 'UNSUPPORTED', 'This server was started without a store directory, so it cannot transfer files.');
      if (url.pathname === '/api/export') return handleExport(req, res, transfers);
      if (url.pathname === '/api/import') return handleImport(req, res, transfers);
      return handleDownload(req, res, transfers, url.pathname.slice('/api/download/'.length));
    }
    if (url.pathname === '/api/events') return sendError(res, 426, 'INVALID_INPUT', 'Events are served over WebSocket only.');
    if (url.pathname.startsWith('/api/')) return sendError(res, 404, 'NOT_FOUND', `Unknown API path ${url.pathname}.`);
    return handleStatic(req, res, url);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (res.headersSent) return void res.destroy();
      if (err instanceof HttpError) return sendError(res, err.status, err.data.code, err.data.message);
      const data = toErrorData(err instanceof StasisError ? err : new StasisError('INTERNAL', `The server failed: ${err instanceof Error ? err.message : String(err)}`));
      sendError(res, 500, data.code, data.message);
    });
  });

  const refuseUpgrade = (socket: Duplex, status: string): void => {
    socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  };

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', `http://127.0.0.1:${port}`);
    if (!hostOk(req, port) || !originOk(req, port)) return refuseUpgrade(socket, '403 Forbidden');
    if (authenticate(req, url, token) === null) return refuseUpgrade(socket, '401 Unauthorized');
    if (url.pathname !== '/api/events') return refuseUpgrade(socket, '404 Not Found');
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      ws.on('close', () => sockets.delete(ws));
      ws.on('message', () => ws.close(1008, 'This socket only sends events; calls go over HTTP.'));
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  const origin = `http://127.0.0.1:${port}`;

  return {
    port,
    token,
    origin,
    url: `${origin}/?token=${token}`,
    async close() {
      unsubscribe();
      for (const ws of sockets) ws.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

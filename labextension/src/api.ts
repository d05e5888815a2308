/**
 * The sidebar's only door to the control plane: REST calls under /pai-lab/api/v1 that go
 * through Jupyter's ServerConnection, so the browser's cookie and XSRF token are sent.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type { components, operations } from './api.generated';

export const API_PATH = 'pai-lab/api/v1';

/** Why a call failed, in words a user can act on. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
    readonly field: string | null = null
  ) {
    super(message);
  }

  /** The route does not exist on this server (an area not installed, or an older server). */
  get unavailable(): boolean {
    return this.code === 'unavailable';
  }
}

// The response types come from the server's OpenAPI document (src/api.generated.ts, made by
// `jlpm api:generate`), so a field renamed on the server fails the build here instead of in a browser.
type Schemas = components['schemas'];

/** The JSON body a successful `operationId` call answers with, for routes whose body is not a named schema. */
type Answer<Op extends keyof operations> = operations[Op]['responses'] extends {
  200: { content: { 'application/json': infer Body } };
}
  ? Body
  : never;

export type Workspace = Schemas['Workspace'];
export type Member = Schemas['Member'];
export type Me = Answer<'me'>;
export type Dataset = Schemas['Dataset'];
export type DatasetVersion = Schemas['DatasetVersion'];
export type LabelingTask = Schemas['Task'];
export type Job = Schemas['Job'];
/**
 * A job's log line. Written out by hand: pipelines have a `LogLine` schema too, and the OpenAPI document
 * keeps one schema per name, so the generated `LogLine` may be the pipeline node's.
 */
export interface LogLine {
  id: number;
  pod: string;
  seq: number;
  time: string;
  line: string;
}
export type ClusterWorker = Schemas['ClusterWorker'];
export type Cluster = Answer<'cluster.get'>;
export type Service = Schemas['Service'];
export type PipelineRun = Schemas['PipelineRunInfo'];
export type PipelineRunDetail = Answer<'pipeline.get'>;
export type PipelineNode = Schemas['PipelineNode'];
export type NodeLogLine = Schemas['NodeLogLine'];
export type RolesDocument = Answer<'roles'>;

/**
 * Call the API; resolves to the parsed JSON body (undefined for 204), rejects with an ApiError.
 *
 * A 404 without pai_lab's JSON error body means the route itself is missing, which the
 * sections show as "not available in this version" rather than as a failure.
 */
export async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, API_PATH, path);
  // 'no-store' (the default) makes ServerConnection append a bare timestamp to the query, which
  // routes with declared query parameters refuse; 'no-cache' still revalidates every answer.
  init = { cache: 'no-cache', ...init };
  if (init.body !== undefined) {
    init = { ...init, headers: { 'Content-Type': 'application/json', ...(init.headers || {}) } };
  }
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, init, settings);
  } catch (error) {
    throw new ApiError(`cannot reach the Jupyter server: ${String(error)}`, 0, 'network');
  }
  const text = await response.text();
  let body: any = undefined;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
  }
  if (response.ok) {
    return body as T;
  }
  const error = body && typeof body === 'object' ? body.error : undefined;
  if (error && typeof error === 'object' && error.message) {
    throw new ApiError(String(error.message), response.status, String(error.code || 'error'), error.field ?? null);
  }
  if (response.status === 404) {
    throw new ApiError('not available in this version of pai_lab', 404, 'unavailable');
  }
  const reason = (body && (body.message || body.reason)) || response.statusText || 'request failed';
  throw new ApiError(`${response.status} ${reason}`, response.status, 'http');
}

export function get<T>(path: string): Promise<T> {
  return request<T>(path, { method: 'GET' });
}

export function post<T>(path: string, body: unknown = {}): Promise<T> {
  return request<T>(path, { method: 'POST', body: JSON.stringify(body) });
}

export function patch<T>(path: string, body: unknown): Promise<T> {
  return request<T>(path, { method: 'PATCH', body: JSON.stringify(body) });
}

// Pipelines: the routes the sidebar's Pipelines section calls (paths built here, so the section holds none).
function runsPath(workspace: string, ...parts: string[]): string {
  return ['workspaces', workspace, 'pipelines', 'runs', ...parts].map(encodeURIComponent).join('/');
}

export function pipelineRunsPath(workspace: string, limit = 50): string {
  return `${runsPath(workspace)}?limit=${limit}`;
}

export function pipelineRunPath(workspace: string, runId: string): string {
  return runsPath(workspace, runId);
}

/** The last `lines` lines of one step's log. */
export function pipelineLogTailPath(workspace: string, runId: string, node: string, lines: number): string {
  return `${runsPath(workspace, runId, 'logs')}?node=${encodeURIComponent(node)}&tail=${lines}`;
}

/** Terminate, suspend, resume or retry a run; answers the run as it is after the request. */
export function pipelineRunAction(
  workspace: string,
  runId: string,
  verb: 'terminate' | 'suspend' | 'resume' | 'retry'
): Promise<PipelineRunDetail> {
  return post<PipelineRunDetail>(runsPath(workspace, runId, verb));
}

/**
 * The sidebar's only door to the control plane: REST calls under /pai-lab/api/v1 that go
 * through Jupyter's ServerConnection, so the browser's cookie and XSRF token are sent.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

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

export interface Workspace {
  id: string;
  name: string;
  description: string;
  status: string;
  created_by: string;
  created_at: string;
  my_roles: string[];
  member_count: number;
}

export interface Member {
  username: string;
  roles: string[];
  added_by: string;
  added_at: string;
}

export interface Me {
  username: string;
  server_owner: boolean;
  version: string;
  default_workspace: string;
}

export interface Dataset {
  id: string;
  name: string;
  data_type: string;
  item_count: number;
  total_bytes: number;
  latest_version: number | null;
  source_uri: string;
  visibility: string;
  created_by: string;
  created_at: string;
}

export interface DatasetVersion {
  version: number;
  item_count: number;
  created_at: string;
}

export interface LabelingTask {
  id: string;
  name: string;
  template: string;
  state: string;
  total: number;
  labeled: number;
  checked: number;
  accepted: number;
  my_roles: string[];
}

export interface Job {
  id: string;
  name: string;
  state: string;
  workers: number;
  ps: number;
  chief: number;
  created_by: string;
  created_at: string;
  reason: string | null;
}

export interface LogLine {
  id: number;
  pod: string;
  seq: number;
  time: string;
  line: string;
}

export interface ClusterWorker {
  name: string;
  cores: number;
  memory: number;
  gpus: number;
}

export interface Cluster {
  scheduler_address: string | null;
  dashboard_link: string | null;
  workers: ClusterWorker[];
}

export interface Service {
  name: string;
  state: string;
  instances_ready: number;
  instances_total: number;
  endpoint: string;
  traffic: { [service: string]: number } | null;
  created_at: string;
}

/** Path of a workspace-scoped route: ws('default', 'datasets') -> workspaces/default/datasets. */
export function ws(workspace: string, ...parts: string[]): string {
  return ['workspaces', workspace, ...parts].map(encodeURIComponent).join('/');
}

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

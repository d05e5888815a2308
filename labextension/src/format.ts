/** Small pure formatters the sections share (no JupyterLab or React here, so unit tests load them alone). */

export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) {
    return '';
  }
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** "3 min", "2 h", "5 d": how long ago an ISO time was (a time without a zone is UTC, as the API sends it). */
export function age(iso: string, now: number = Date.now()): string {
  const then = Date.parse(iso.endsWith('Z') || /[+-]\d\d:?\d\d$/.test(iso) ? iso : iso + 'Z');
  if (isNaN(then)) {
    return '';
  }
  const seconds = Math.max(0, Math.round((now - then) / 1000));
  if (seconds < 60) {
    return `${seconds} s`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min`;
  }
  if (seconds < 86400) {
    return `${Math.floor(seconds / 3600)} h`;
  }
  return `${Math.floor(seconds / 86400)} d`;
}

/** A Python string literal for code inserted into notebooks. */
export function pyString(value: string): string {
  return JSON.stringify(value);
}

/** Path of a workspace-scoped route: ws('default', 'datasets') -> workspaces/default/datasets. */
export function ws(workspace: string, ...parts: string[]): string {
  return ['workspaces', workspace, ...parts].map(encodeURIComponent).join('/');
}

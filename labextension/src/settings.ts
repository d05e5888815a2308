/**
 * The sidebar's user settings (schema/sidebar.json): the chosen workspace and how often lists refresh.
 * Pure functions over the raw values, so a hand-edited setting can never make the sidebar poll in a loop.
 */

/** Refresh intervals in milliseconds; 0 means "only on ⟳ or a workspace switch". */
export interface PollIntervals {
  jobs: number;
  jobLog: number;
  services: number;
  labeling: number;
  cluster: number;
  pipelines: number;
}

export interface SidebarSettings {
  workspace: string;
  poll: PollIntervals;
}

/** The schema's defaults, in seconds (kept equal to schema/sidebar.json; a unit test checks). */
export const DEFAULT_REFRESH_SECONDS: { [K in keyof PollIntervals]: number } = {
  jobs: 10,
  jobLog: 3,
  services: 10,
  labeling: 30,
  cluster: 30,
  pipelines: 5
};

/** The shortest interval honoured: anything faster would load the server for nothing. */
export const MIN_REFRESH_SECONDS = 1;

function intervalMs(value: unknown, fallback: number): number {
  const seconds = typeof value === 'number' && isFinite(value) ? value : fallback;
  if (seconds <= 0) {
    return 0;
  }
  return Math.round(Math.max(seconds, MIN_REFRESH_SECONDS) * 1000);
}

/** Settings from the registry's composite value; missing or malformed entries take their defaults. */
export function readSettings(composite: unknown): SidebarSettings {
  const raw = composite && typeof composite === 'object' ? (composite as { [key: string]: unknown }) : {};
  const workspace = typeof raw.workspace === 'string' ? raw.workspace.trim() : '';
  const refresh =
    raw.refreshSeconds && typeof raw.refreshSeconds === 'object'
      ? (raw.refreshSeconds as { [key: string]: unknown })
      : {};
  const poll = {} as PollIntervals;
  for (const key of Object.keys(DEFAULT_REFRESH_SECONDS) as (keyof PollIntervals)[]) {
    poll[key] = intervalMs(refresh[key], DEFAULT_REFRESH_SECONDS[key]);
  }
  return { workspace, poll };
}

/**
 * Which workspace to show: the wanted one if the user is a member of it, else the server's default
 * workspace, else the first listed, else none.
 */
export function chooseWorkspace(
  names: string[],
  wanted: string | null | undefined,
  serverDefault: string | null | undefined
): string | null {
  for (const candidate of [wanted, serverDefault]) {
    if (candidate && names.includes(candidate)) {
      return candidate;
    }
  }
  return names.length > 0 ? names[0] : null;
}

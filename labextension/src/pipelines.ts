/**
 * The pure parts of the Pipelines section (no JupyterLab or React here, so unit tests load them alone):
 * what colour a PAI state is, how far a run is, how long it took, where its steps sit in a small DAG,
 * and which of Terminate / Suspend / Resume / Retry the member's roles allow.
 */

/** How a state is coloured: done well, failed, stopped by someone, still moving, or not run. */
export type Tone = 'ok' | 'bad' | 'warn' | 'busy' | 'idle';

const TONES: { [state: string]: Tone } = {
  Succeeded: 'ok',
  Failed: 'bad',
  Terminated: 'warn',
  Suspended: 'warn',
  Initialized: 'busy',
  ReadyToSchedule: 'busy',
  WorkflowServiceStarting: 'busy',
  Starting: 'busy',
  Running: 'busy',
  Skipped: 'idle',
  Unknown: 'idle'
};

export function stateTone(state: string): Tone {
  return TONES[state] || 'idle';
}

/** PAI's states a run still moves in (the server's ACTIVE), and those a run can be retried from. */
export const ACTIVE_STATES = ['Initialized', 'ReadyToSchedule', 'WorkflowServiceStarting', 'Starting', 'Running'];
export const RETRYABLE_STATES = ['Failed', 'Terminated', 'Unknown'];

export function isActive(state: string): boolean {
  return ACTIVE_STATES.includes(state) || state === 'Suspended';
}

function parseTime(iso: string | null | undefined): number {
  if (!iso) {
    return NaN;
  }
  return Date.parse(iso.endsWith('Z') || /[+-]\d\d:?\d\d$/.test(iso) ? iso : iso + 'Z');
}

/** "45 s", "3 min 5 s", "2 h 10 min": from start to end (or to now while it runs); "" before it starts. */
export function duration(
  start: string | null | undefined,
  end: string | null | undefined,
  now: number = Date.now()
): string {
  const from = parseTime(start);
  if (isNaN(from)) {
    return '';
  }
  const to = end ? parseTime(end) : now;
  const seconds = Math.max(0, Math.round(((isNaN(to) ? now : to) - from) / 1000));
  if (seconds < 60) {
    return `${seconds} s`;
  }
  if (seconds < 3600) {
    return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  }
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

/** "3/7 steps" */
export function stepsText(done: number, total: number): string {
  return `${done}/${total} step${total === 1 ? '' : 's'}`;
}

export interface DagInput {
  name: string;
  depends: string[];
  status: string;
  cached?: boolean;
}

export interface DagBox {
  name: string;
  status: string;
  cached: boolean;
  tone: Tone;
  layer: number;
  x: number;
  y: number;
}

export interface DagEdge {
  from: string;
  to: string;
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

export interface DagLayout {
  width: number;
  height: number;
  boxWidth: number;
  boxHeight: number;
  boxes: DagBox[];
  edges: DagEdge[];
}

/**
 * Steps top to bottom: a step's layer is one more than its deepest dependency's, steps of one layer side
 * by side in the order the run lists them. A dependency that is not a step of the run is left out.
 */
export function layoutDag(nodes: DagInput[], boxWidth = 110, boxHeight = 22, gapX = 10, gapY = 18): DagLayout {
  const byName = new Map(nodes.map(n => [n.name, n]));
  const layer = new Map<string, number>();
  const depth = (name: string, seen: Set<string>): number => {
    const known = layer.get(name);
    if (known !== undefined) {
      return known;
    }
    if (seen.has(name)) {
      return 0; // a cycle (the server refuses them): stop here rather than loop
    }
    seen.add(name);
    const deps = (byName.get(name)?.depends || []).filter(d => byName.has(d));
    const value = deps.length ? 1 + Math.max(...deps.map(d => depth(d, seen))) : 0;
    layer.set(name, value);
    return value;
  };
  nodes.forEach(n => depth(n.name, new Set()));
  const rows: string[][] = [];
  for (const n of nodes) {
    const l = layer.get(n.name) || 0;
    (rows[l] = rows[l] || []).push(n.name);
  }
  const widest = Math.max(1, ...rows.map(r => (r ? r.length : 0)));
  const width = widest * boxWidth + (widest + 1) * gapX;
  const height = rows.length * boxHeight + (rows.length + 1) * gapY;
  const place = new Map<string, { x: number; y: number }>();
  rows.forEach((row, l) => {
    const rowWidth = row.length * boxWidth + (row.length - 1) * gapX;
    const left = (width - rowWidth) / 2;
    row.forEach((name, i) => place.set(name, { x: left + i * (boxWidth + gapX), y: gapY + l * (boxHeight + gapY) }));
  });
  const boxes = nodes.map(n => ({
    name: n.name,
    status: n.status,
    cached: !!n.cached,
    tone: stateTone(n.status),
    layer: layer.get(n.name) || 0,
    ...place.get(n.name)!
  }));
  const edges: DagEdge[] = [];
  for (const n of nodes) {
    const to = place.get(n.name)!;
    for (const d of n.depends) {
      const from = place.get(d);
      if (from) {
        edges.push({
          from: d,
          to: n.name,
          x1: from.x + boxWidth / 2,
          y1: from.y + boxHeight,
          x2: to.x + boxWidth / 2,
          y2: to.y
        });
      }
    }
  }
  return { width, height, boxWidth, boxHeight, boxes, edges };
}

/** The permission matrix as GET /roles serves it: action -> role -> grant ("all", "own", ...). */
export type Matrix = { [action: string]: { [role: string]: string } };

export interface Permission {
  ok: boolean;
  /** Why not, in the words of the server's refusal; "" when allowed. */
  why: string;
}

/** Whether a member with `roles` may do `action` on a run `owner` started (the server's rule, read from its matrix). */
export function may(matrix: Matrix, roles: string[], action: string, username: string, owner: string): Permission {
  const row = matrix[action] || {};
  const grants = roles.map(r => row[r]).filter(Boolean);
  if (grants.includes('all') || (grants.includes('own') && owner === username)) {
    return { ok: true, why: '' };
  }
  const needed = Object.keys(row).filter(r => row[r] === 'all');
  const own = grants.includes('own') ? ' (your roles allow it only on runs you started)' : '';
  const who = roles.length ? roles.join(', ') : 'no role';
  return { ok: false, why: `${who} may not ${action}${own}; it needs one of: ${needed.join(', ')}` };
}

export interface RunAction {
  label: 'Terminate' | 'Suspend' | 'Resume' | 'Retry';
  /** The route's last part: runs/<id>/<verb> */
  verb: 'terminate' | 'suspend' | 'resume' | 'retry';
  enabled: boolean;
  title: string;
}

/** The buttons a run in `status` has, each enabled or disabled (with the reason) by the member's roles. */
export function runActions(
  status: string,
  owner: string,
  matrix: Matrix | undefined,
  roles: string[],
  username: string
): RunAction[] {
  const wanted: [RunAction['label'], RunAction['verb'], string[], string][] = [];
  if (ACTIVE_STATES.includes(status)) {
    wanted.push(['Suspend', 'suspend', ['pipeline.manage'], 'Start no new steps; the running ones finish']);
  }
  if (status === 'Suspended') {
    wanted.push(['Resume', 'resume', ['pipeline.manage'], 'Go on with the steps not yet run']);
  }
  if (isActive(status)) {
    wanted.push(['Terminate', 'terminate', ['pipeline.manage'], 'End the running steps; start no others']);
  }
  if (RETRYABLE_STATES.includes(status)) {
    wanted.push([
      'Retry',
      'retry',
      ['pipeline.manage', 'pipeline.run'],
      'Run the failed, terminated and not-run steps again'
    ]);
  }
  return wanted.map(([label, verb, actions, help]) => {
    if (!matrix) {
      return { label, verb, enabled: false, title: 'Loading your permissions…' };
    }
    const refused = actions.map(a => may(matrix, roles, a, username, owner)).find(p => !p.ok);
    return { label, verb, enabled: !refused, title: refused ? refused.why : help };
  });
}

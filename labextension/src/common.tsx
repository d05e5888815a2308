/** Pieces every section shares: loading an endpoint, a collapsible section, small formatters. */
import * as React from 'react';

import { ApiError, get } from './api';
import { PollIntervals } from './settings';

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | undefined;
  loading: boolean;
  reload: () => void;
}

/**
 * GET `path` whenever it or `refreshKey` changes, and every `intervalMs` if given.
 * A null path loads nothing (no workspace chosen yet).
 */
export function useEndpoint<T>(path: string | null, refreshKey: number, intervalMs = 0): Loaded<T> {
  const [data, setData] = React.useState<T | undefined>(undefined);
  const [error, setError] = React.useState<ApiError | undefined>(undefined);
  const [loading, setLoading] = React.useState(false);
  const [tick, setTick] = React.useState(0);

  React.useEffect(() => {
    setData(undefined);
    setError(undefined);
  }, [path]);

  React.useEffect(() => {
    if (path === null) {
      return;
    }
    let current = true;
    setLoading(true);
    get<T>(path)
      .then(result => {
        if (current) {
          setData(result);
          setError(undefined);
        }
      })
      .catch(reason => {
        if (current) {
          setError(reason instanceof ApiError ? reason : new ApiError(String(reason), 0, 'error'));
        }
      })
      .finally(() => {
        if (current) {
          setLoading(false);
        }
      });
    return () => {
      current = false;
    };
  }, [path, refreshKey, tick]);

  React.useEffect(() => {
    // A missing route stays missing: do not poll it.
    if (!intervalMs || path === null || error?.unavailable) {
      return;
    }
    const timer = window.setInterval(() => {
      if (document.visibilityState === 'visible') {
        setTick(t => t + 1);
      }
    }, intervalMs);
    return () => window.clearInterval(timer);
  }, [path, intervalMs, error?.unavailable]);

  const reload = React.useCallback(() => setTick(t => t + 1), []);
  return { data, error, loading, reload };
}

/** A section header that folds its body; remembers nothing, starts open. */
export function Section(props: {
  title: string;
  id: string;
  count?: number;
  actions?: React.ReactNode;
  children: React.ReactNode;
}): JSX.Element {
  const [open, setOpen] = React.useState(true);
  return (
    <section className="pai-section" data-section={props.id}>
      <header className="pai-section-header">
        <button
          className="pai-section-toggle"
          aria-expanded={open}
          onClick={() => setOpen(!open)}
          title={open ? 'Collapse' : 'Expand'}
        >
          <span className={open ? 'pai-caret pai-caret-open' : 'pai-caret'} />
          {props.title}
          {props.count !== undefined && <span className="pai-count">{props.count}</span>}
        </button>
        <span className="pai-section-actions">{props.actions}</span>
      </header>
      {open && <div className="pai-section-body">{props.children}</div>}
    </section>
  );
}

/** What to show instead of a list when it did not load. */
export function LoadState(props: { loaded: Loaded<unknown>; empty?: string; isEmpty?: boolean }): JSX.Element | null {
  const { error, loading, data } = props.loaded;
  if (error) {
    if (error.unavailable) {
      return <div className="pai-muted pai-unavailable">Not available in this version.</div>;
    }
    return <ErrorLine message={error.message} />;
  }
  if (data === undefined) {
    return loading ? <div className="pai-muted">Loading…</div> : null;
  }
  if (props.isEmpty) {
    return <div className="pai-muted">{props.empty || 'Nothing here yet.'}</div>;
  }
  return null;
}

export function ErrorLine(props: { message: string }): JSX.Element {
  return (
    <div className="pai-error" role="alert">
      {props.message}
    </div>
  );
}

/** Run an action (stop, start...) with its error shown next to the row, then refresh. */
export function useAction(after: () => void): {
  busy: string | null;
  error: string | null;
  run: (key: string, action: () => Promise<unknown>) => void;
} {
  const [busy, setBusy] = React.useState<string | null>(null);
  const [error, setError] = React.useState<string | null>(null);
  const run = (key: string, action: () => Promise<unknown>) => {
    setBusy(key);
    setError(null);
    action()
      .then(() => after())
      .catch(reason => setError(reason instanceof Error ? reason.message : String(reason)))
      .finally(() => setBusy(null));
  };
  return { busy, error, run };
}

/** State names as small coloured badges (Running, Failed, ...). */
export function StateBadge(props: { state: string }): JSX.Element {
  const state = props.state || 'unknown';
  return <span className={`pai-state pai-state-${state.toLowerCase()}`}>{state}</span>;
}

/** The context every section gets from the panel. */
export interface SectionProps {
  workspace: string;
  refreshKey: number;
  insertCode: (code: string) => Promise<string | null>;
  /** Refresh intervals from the user's settings. */
  poll: PollIntervals;
}

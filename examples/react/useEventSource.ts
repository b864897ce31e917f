// useEventSource: a React hook around the browser's native EventSource, for a herald hub (or any
// SSE server). Typed events, a status from readyState and the open/error events, close/restart,
// and lossless resume: the browser's own reconnects send Last-Event-ID; a restart (a NEW
// EventSource, which cannot send that header) passes the last id seen as `lastEventId`.
import { useCallback, useEffect, useRef, useState } from 'react';

export type Status = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** Map of event type -> the type of its parsed data, e.g. `{ chat: { name: string; text: string } }`. */
export type EventMap = Record<string, unknown>;

/** One received event, typed by its event type. */
export type Received<M extends EventMap> = {
  [K in keyof M & string]: { type: K; data: M[K]; id: string };
}[keyof M & string];

export interface Options<M extends EventMap> {
  /** The event types to listen to (an EventSource only reports the types you name). */
  types: (keyof M & string)[];
  /** Turns `e.data` into the typed value (default: JSON.parse, falling back to the raw text). */
  parse?: (type: keyof M & string, raw: string) => M[keyof M & string];
  /** Keep at most this many events in `events` (default 200). */
  max?: number;
  /** Resume after this id on the first connect (e.g. saved in sessionStorage). */
  lastEventId?: string;
  withCredentials?: boolean;
}

const defaultParse = (_: string, raw: string): any => {
  try { return JSON.parse(raw); } catch { return raw; }
};

export function useEventSource<M extends EventMap>(url: string, options: Options<M>) {
  const { types, parse = defaultParse, max = 200, withCredentials = false } = options;
  const [status, setStatus] = useState<Status>('connecting');
  const [events, setEvents] = useState<Received<M>[]>([]);
  const [last, setLast] = useState<Received<M> | null>(null);
  const lastId = useRef(options.lastEventId ?? '');
  const source = useRef<EventSource | null>(null);
  const [generation, setGeneration] = useState(0); // bumped by restart()
  const typesKey = types.join(' ');

  useEffect(() => {
    const u = new URL(url, location.href);
    if (lastId.current) u.searchParams.set('lastEventId', lastId.current);
    const es = new EventSource(u, { withCredentials });
    source.current = es;
    setStatus('connecting');
    const onOpen = () => setStatus('open');
    // Never close() on error: the browser reconnects by itself with Last-Event-ID.
    const onError = () => setStatus(es.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting');
    es.addEventListener('open', onOpen);
    es.addEventListener('error', onError);
    const handlers = typesKey.split(' ').map((type) => {
      const handler = (e: MessageEvent<string>) => {
        if (e.lastEventId) lastId.current = e.lastEventId;
        const ev = { type, data: parse(type, e.data), id: e.lastEventId } as Received<M>;
        setLast(ev);
        setEvents((prev) => [...prev.slice(-(max - 1)), ev]);
      };
      es.addEventListener(type, handler as EventListener);
      return [type, handler] as const;
    });
    return () => {
      for (const [type, handler] of handlers) es.removeEventListener(type, handler as EventListener);
      es.close();
      if (source.current === es) source.current = null;
    };
    // `parse` is read at event time on purpose: an inline function must not reconnect each render.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [url, typesKey, max, withCredentials, generation]);

  /** Stops the stream (no automatic reconnect until restart()). */
  const close = useCallback(() => {
    source.current?.close();
    source.current = null;
    setStatus('closed');
  }, []);

  /** Opens a new stream that resumes after the last id seen: nothing sent meanwhile is lost. */
  const restart = useCallback(() => setGeneration((g) => g + 1), []);

  return { status, events, last, lastEventId: lastId, close, restart };
}

// useEventSource: a Vue 3 composable around the browser's native EventSource, for a herald hub (or
// any SSE server). Typed events, a status from readyState and the open/error events, close/restart,
// and lossless resume: the browser's own reconnects send Last-Event-ID; restart() (a NEW
// EventSource, which cannot send that header) passes the last id seen as `lastEventId`.
import { onScopeDispose, ref, shallowRef, type Ref } from 'vue';

export type Status = 'connecting' | 'open' | 'reconnecting' | 'closed';
export type EventMap = Record<string, unknown>;
export type Received<M extends EventMap> = {
  [K in keyof M & string]: { type: K; data: M[K]; id: string };
}[keyof M & string];

export interface Options<M extends EventMap> {
  /** The event types to listen to (an EventSource only reports the types you name). */
  types: (keyof M & string)[];
  /** Turns `e.data` into the typed value (default: JSON.parse, falling back to the raw text). */
  parse?: (type: keyof M & string, raw: string) => M[keyof M & string];
  /** Keep at most this many events (default 200). */
  max?: number;
  /** Resume after this id on the first connect. */
  lastEventId?: string;
  withCredentials?: boolean;
}

export function useEventSource<M extends EventMap>(url: string, options: Options<M>) {
  const parse = options.parse ?? ((_: string, raw: string): any => {
    try { return JSON.parse(raw); } catch { return raw; }
  });
  const max = options.max ?? 200;
  const status: Ref<Status> = ref('connecting');
  const events = shallowRef<Received<M>[]>([]);
  const data = shallowRef<Received<M> | null>(null);
  const lastEventId = ref(options.lastEventId ?? '');
  let source: EventSource | null = null;

  function open() {
    const u = new URL(url, location.href);
    if (lastEventId.value) u.searchParams.set('lastEventId', lastEventId.value);
    const es = new EventSource(u, { withCredentials: options.withCredentials ?? false });
    source = es;
    status.value = 'connecting';
    es.addEventListener('open', () => { if (source === es) status.value = 'open'; });
    // Never close() on error: the browser reconnects by itself with Last-Event-ID.
    es.addEventListener('error', () => {
      if (source === es) status.value = es.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting';
    });
    for (const type of options.types) {
      es.addEventListener(type, ((e: MessageEvent<string>) => {
        if (source !== es) return;
        if (e.lastEventId) lastEventId.value = e.lastEventId;
        const ev = { type, data: parse(type, e.data), id: e.lastEventId } as Received<M>;
        data.value = ev;
        events.value = [...events.value.slice(-(max - 1)), ev];
      }) as EventListener);
    }
  }

  /** Stops the stream (no automatic reconnect until restart()). */
  function close() {
    source?.close();
    source = null;
    status.value = 'closed';
  }

  /** Opens a new stream that resumes after the last id seen: nothing sent meanwhile is lost. */
  function restart() {
    source?.close();
    open();
  }

  open();
  onScopeDispose(close);
  return { status, data, events, lastEventId, close, restart };
}

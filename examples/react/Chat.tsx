// Usage of useEventSource against `herald serve --demo` (served from the hub's origin).
import { useEventSource } from './useEventSource';

type HeraldEvents = {
  chat: { name: string; text: string };
  time: string;
  'herald.reset': { reason: 'retention' | 'future'; after: string; requested?: string };
};

export function Chat() {
  const { status, events, close, restart } = useEventSource<HeraldEvents>(
    '/events?topic=chat/demo&topic=demo/time',
    { types: ['chat', 'time', 'herald.reset'] },
  );
  return (
    <div>
      <p>
        {status}{' '}
        {status === 'closed' ? <button onClick={restart}>Connect</button> : <button onClick={close}>Disconnect</button>}
      </p>
      <ul>
        {events.map((e) =>
          e.type === 'chat' ? <li key={e.id}>{e.data.name}: {e.data.text}</li>
          : e.type === 'herald.reset' ? <li key={`reset-${e.data.after}`}>Some events were missed.</li>
          : null,
        )}
      </ul>
    </div>
  );
}

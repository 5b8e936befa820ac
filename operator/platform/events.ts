// core/v1 Events on the operator's own objects (jobs, servers), what `kubectl describe` shows: one
// shape for both, best effort — losing an event must never fail a reconcile.
import { ApiException, type CoreV1Api } from '@kubernetes/client-node';
import { FIELD_MANAGER } from '../../core/api/v1alpha1/names.ts';
import type { Logger } from '../../core/log.ts';

/** The API server refuses longer Event messages; the rest of a long message is in the status. */
const MAX_MESSAGE_CHARS = 1024;

/** The object an event is about. */
export interface EventSubject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  /** Absent: not known (the event still names the object). */
  readonly uid?: string | undefined;
}

export interface EventToRecord {
  readonly type: 'Normal' | 'Warning';
  readonly reason: string;
  readonly message: string;
}

export interface RecordEventOptions {
  readonly core: CoreV1Api;
  readonly log: Logger;
  /** Fields of the warning logged when the event is lost, e.g. `{ namespace, job }`. */
  readonly logContext: Readonly<Record<string, unknown>>;
  readonly now: Date;
  /**
   * A fixed name instead of `<name>.<random>`: the same event recorded twice (another operator
   * process, a restart) is refused as a duplicate (409), which counts as recorded.
   */
  readonly eventName?: string | undefined;
}

/** Records `e` on `subject`; false (and a warning logged) when the API server did not take it. */
export async function recordEvent(
  subject: EventSubject,
  e: EventToRecord,
  options: RecordEventOptions,
): Promise<boolean> {
  const { core, now, eventName } = options;
  const { namespace, name } = subject;
  try {
    await core.createNamespacedEvent({
      namespace,
      body: {
        metadata: { ...(eventName ? { name: eventName } : { generateName: `${name}.` }), namespace },
        involvedObject: {
          apiVersion: subject.apiVersion,
          kind: subject.kind,
          name,
          namespace,
          ...(subject.uid ? { uid: subject.uid } : {}),
        },
        reason: e.reason,
        message: e.message.slice(0, MAX_MESSAGE_CHARS),
        type: e.type,
        source: { component: FIELD_MANAGER },
        reportingComponent: FIELD_MANAGER,
        reportingInstance: process.env['POD_NAME'] ?? 'runahead-operator',
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      },
    });
    return true;
  } catch (err) {
    if (eventName && err instanceof ApiException && err.code === 409) return true;
    options.log.warn(
      { ...options.logContext, reason: e.reason, err: (err as Error).message },
      'could not record event',
    );
    return false;
  }
}

/**
 * Readiness (GET /readyz): may a load balancer or an orchestrator send this
 * coordinator traffic? Only the leader serves the API, and only while its
 * store answers. Liveness (GET /healthz) is in coordinator.ts: a standby is
 * alive, it is just not ready.
 */
import type { LeaderState } from '../store/leadership.js';
import type { Store } from '../store/store.js';

/** How long the store gets to answer the readiness read. */
export const READY_STORE_TIMEOUT_MS = 2000;

export type NotReadyReason = 'not_running' | 'standby' | 'store_unavailable';

export type Readiness =
  | { ready: true; role: 'leader'; epoch: number | null; leader: string | null }
  | {
      ready: false;
      reason: NotReadyReason;
      message: string;
      role: LeaderState['role'];
      epoch: number | null;
      leader: string | null;
    };

export interface ReadinessView {
  /** The coordinator's lifecycle: only 'running' can be ready. */
  state: string;
  role: LeaderState;
  /** Whether a term is in office (a leader between terms is not ready yet). */
  leading: boolean;
  store: Store;
}

export async function readiness(
  v: ReadinessView,
  timeoutMs = READY_STORE_TIMEOUT_MS,
): Promise<Readiness> {
  const where = { role: v.role.role, epoch: v.role.epoch, leader: v.role.leaderUrl };
  if (v.state !== 'running') {
    return {
      ready: false,
      reason: 'not_running',
      message: `the coordinator is ${v.state}`,
      ...where,
    };
  }
  if (v.role.role !== 'leader' || !v.leading) {
    const at = v.role.leaderUrl ? `the leader is at ${v.role.leaderUrl}` : 'no leader is known yet';
    return {
      ready: false,
      reason: 'standby',
      message: `this coordinator is a standby: ${at}`,
      ...where,
    };
  }
  const problem = await storeProblem(v.store, timeoutMs);
  if (problem !== null) {
    return { ready: false, reason: 'store_unavailable', message: problem, ...where };
  }
  return { ready: true, role: 'leader', epoch: v.role.epoch, leader: v.role.leaderUrl };
}

/** null when the store answers a read within the timeout; else what went wrong. */
async function storeProblem(store: Store, timeoutMs: number): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(
      () => resolve(`the store did not answer a read within ${timeoutMs} ms`),
      timeoutMs,
    );
  });
  // The cheapest read there is: one primary-key lookup of a group that does not exist.
  const read = store.getGroup('readyz-probe').then(
    () => null,
    (e: unknown) => `the store cannot be read: ${(e as Error).message}`,
  );
  try {
    return await Promise.race([read, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

import { RegroupError } from './errors.js';
import { DEFAULT_TASK_OPTIONS, type TaskOptions } from './types.js';

/** What the user passes -> frozen defaults -> a resolved object with every field set. */
export function resolveTaskOptions(given: Partial<TaskOptions> | undefined): TaskOptions {
  const o: TaskOptions = { ...DEFAULT_TASK_OPTIONS, requires: [...DEFAULT_TASK_OPTIONS.requires] };
  if (given) {
    for (const [k, v] of Object.entries(given)) {
      // Own keys of the defaults only: `toString` or `__proto__` are not options.
      if (v !== undefined && Object.hasOwn(o, k)) (o as unknown as Record<string, unknown>)[k] = v;
    }
  }
  if (o.backoffMaxMs < o.backoffMs) {
    throw new RegroupError(
      'validation_failed',
      `options.backoffMaxMs (${o.backoffMaxMs}) must be at least options.backoffMs (${o.backoffMs})`,
    );
  }
  o.requires = [...new Set(o.requires)].sort();
  if (o.concurrencyKeyLimit > 0 && o.concurrencyKey === '')
    throw new RegroupError(
      'validation_failed',
      `options.concurrencyKeyLimit (${o.concurrencyKeyLimit}) limits a concurrencyKey: give options.concurrencyKey too`,
    );
  return o;
}

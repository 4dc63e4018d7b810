// The systems the benchmark knows and the scenarios each takes part in.
// Modules are imported only when their system is selected, so the regroup-only
// runs need nothing of bench/node_modules.
export const SYSTEMS = {
  regroup: {
    label: 'regroup (SQLite)',
    module: './regroup.mjs',
    scenarios: 'abcdefghi',
    options: { store: 'sqlite' },
  },
  'regroup-pg': {
    label: 'regroup (PostgreSQL)',
    module: './regroup.mjs',
    scenarios: 'abd',
    options: { store: 'postgres' },
  },
  bullmq: { label: 'BullMQ', module: './bullmq.mjs', scenarios: 'abcd', options: {} },
  pgboss: { label: 'pg-boss', module: './pgboss.mjs', scenarios: 'abcd', options: {} },
  graphile: { label: 'graphile-worker', module: './graphile.mjs', scenarios: 'abcd', options: {} },
};

export const DEFAULT_SYSTEMS = Object.keys(SYSTEMS);

/** Loads a system; `{ error }` when its module (or its package) cannot be loaded. */
export async function loadSystem(name) {
  const def = SYSTEMS[name];
  if (!def) throw new Error(`unknown system ${name}: one of ${Object.keys(SYSTEMS).join(', ')}`);
  try {
    const mod = await import(new URL(def.module, import.meta.url).href);
    return {
      name,
      label: def.label,
      scenarios: def.scenarios,
      module: mod,
      create: (ctx, opts) => mod.create(ctx, { ...def.options, ...opts }),
      throughputOptions: mod.throughputOptions,
      latencyOptions: mod.latencyOptions,
      treeOptions: mod.treeOptions,
      failoverVariants:
        mod.failoverVariants ??
        ((s) => [{ name: 'defaults', kills: s.kills, settings: 'defaults', options: {} }]),
      version: () => mod.version?.() ?? null,
      sweep: mod.sweep,
      error: null,
    };
  } catch (e) {
    const missing = e?.code === 'ERR_MODULE_NOT_FOUND';
    return {
      name,
      label: def.label,
      scenarios: def.scenarios,
      error: missing
        ? `not installed (${e.message.split('\n')[0]}): run \`npm ci\` in bench/`
        : `cannot load: ${e?.message ?? e}`,
    };
  }
}

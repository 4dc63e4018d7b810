/**
 * Network namespaces for partition tests. Each host gets its own namespace
 * joined to the root namespace by a veth pair on a private /30; nothing else
 * is routed, so a host can reach only its gateway (the root side of its veth,
 * where the coordinator listens) and itself. Partitions are iptables DROP
 * rules inside the host's namespace, so the root namespace's rules are never
 * touched.
 *
 * Needs root (CAP_NET_ADMIN), iproute2 and iptables. Every name carries the
 * run's prefix, so leftovers of a crashed run with the same prefix are found
 * and removed by `create` and `destroy`.
 */
import {
  execFile,
  execFileSync,
  spawn,
  type ChildProcess,
  type SpawnOptions,
} from 'node:child_process';
import { onCleanup } from './cleanup.js';

/** Addresses come from 10.211.0.0/16, one /30 per host. */
const NET_BASE = (10 << 24) | (211 << 16);
const BLOCKS = 1 << 14;
const CHAIN_IN = 'RG-IN';
const CHAIN_OUT = 'RG-OUT';

interface Host {
  name: string;
  ns: string;
  /** veth end in the root namespace. */
  rootIf: string;
  /** veth end inside the namespace. */
  nsIf: string;
  ip: string;
  gatewayIp: string;
}

/** Runs a tool, turning a missing binary or a permission problem into a clear error. */
function run(cmd: string, args: string[], timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (!err) return resolve(stdout);
      const code = (err as NodeJS.ErrnoException).code;
      const what = `${cmd} ${args.join(' ')}`;
      if (code === 'ENOENT') {
        const pkg = cmd === 'ip' ? 'iproute2' : cmd;
        return reject(new Error(`${cmd} not found (install ${pkg}): ${what}`, { cause: err }));
      }
      const detail = stderr.trim() || err.message;
      const hint = /not permitted|permission denied|must be root/i.test(detail)
        ? ' (needs root / CAP_NET_ADMIN)'
        : '';
      reject(new Error(`${what} failed${hint}: ${detail}`, { cause: err }));
    });
  });
}

/** Like `run`, but a failure is ignored (for cleanup of things that may be gone). */
async function tryRun(cmd: string, args: string[]): Promise<void> {
  await run(cmd, args).catch(() => {});
}

const ipv4 = (n: number): string =>
  [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

/** A stable starting block per prefix, so parallel runs rarely probe the same blocks. */
function startBlock(prefix: string): number {
  let h = 2166136261;
  for (const ch of prefix) h = Math.imul(h ^ ch.charCodeAt(0), 16777619);
  return ((h >>> 0) % 256) * 64;
}

export async function netnsAvailable(): Promise<{ ok: boolean; why?: string }> {
  if (process.platform !== 'linux') return { ok: false, why: 'network namespaces need Linux' };
  if (process.getuid?.() !== 0) return { ok: false, why: 'needs root (CAP_NET_ADMIN)' };
  const probe = `rgprobe-${process.pid}`;
  try {
    await run('ip', ['-V']);
    await run('iptables', ['-V']);
    await run('ip', ['netns', 'add', probe]);
    try {
      await run('ip', ['netns', 'exec', probe, 'iptables', '-w', '5', '-L', '-n']);
    } finally {
      await tryRun('ip', ['netns', 'del', probe]);
    }
    return { ok: true };
  } catch (e) {
    return { ok: false, why: (e as Error).message };
  }
}

export class TestNet {
  private readonly hosts = new Map<string, Host>();
  private readonly children = new Set<ChildProcess>();
  private readonly ready: Promise<void>;
  private next = 0;
  /** Unregisters removeNow from the interrupted process's sweep (cleanup.ts). */
  private readonly unregister: () => void;

  private constructor(readonly prefix: string) {
    this.unregister = onCleanup(() => this.removeNow());
    this.ready = this.cleanLeftovers();
    // Awaited by every operation; this only keeps an early failure from being unhandled.
    this.ready.catch(() => {});
  }

  /** `prefix`: unique per run, 1-6 lowercase letters or digits; it names namespaces and veths. */
  static create(prefix: string): TestNet {
    if (!/^[a-z0-9]{1,6}$/.test(prefix)) {
      throw new Error(`TestNet prefix must be 1-6 of [a-z0-9], got ${JSON.stringify(prefix)}`);
    }
    return new TestNet(prefix);
  }

  private nsName(host: string): string {
    return `rg-${this.prefix}-${host}`;
  }

  async addHost(name: string): Promise<{ ns: string; ip: string; gatewayIp: string }> {
    if (!/^[a-z0-9]{1,16}$/.test(name))
      throw new Error(`host name must be [a-z0-9]{1,16}: ${name}`);
    if (this.hosts.has(name)) throw new Error(`host ${name} already exists`);
    await this.ready;
    const n = this.next++;
    const host: Host = {
      name,
      ns: this.nsName(name),
      rootIf: `rg${this.prefix}-${n}r`,
      nsIf: `rg${this.prefix}-${n}n`,
      ...(await this.freeBlock()),
    };
    this.hosts.set(name, host);
    const { ns, rootIf, nsIf } = host;
    await run('ip', ['netns', 'add', ns]);
    await run('ip', ['link', 'add', rootIf, 'type', 'veth', 'peer', 'name', nsIf]);
    await run('ip', ['link', 'set', nsIf, 'netns', ns]);
    await run('ip', ['addr', 'add', `${host.gatewayIp}/30`, 'dev', rootIf]);
    await run('ip', ['link', 'set', rootIf, 'up']);
    await run('ip', ['-n', ns, 'addr', 'add', `${host.ip}/30`, 'dev', nsIf]);
    await run('ip', ['-n', ns, 'link', 'set', nsIf, 'up']);
    await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    for (const [chain, hook, flag, dev] of [
      [CHAIN_IN, 'INPUT', '-i', nsIf],
      [CHAIN_OUT, 'OUTPUT', '-o', nsIf],
    ] as const) {
      await this.iptables(ns, ['-N', chain]);
      await this.iptables(ns, ['-A', hook, flag, dev, '-j', chain]);
    }
    return { ns, ip: host.ip, gatewayIp: host.gatewayIp };
  }

  /** The first /30 from this prefix's starting point with no address in use in the root namespace. */
  private async freeBlock(): Promise<{ ip: string; gatewayIp: string }> {
    const used = await run('ip', ['-4', '-o', 'addr', 'show']);
    const taken = new Set(used.match(/\binet (\d+\.\d+\.\d+\.\d+)/g)?.map((s) => s.slice(5)));
    for (const h of this.hosts.values()) taken.add(h.gatewayIp);
    const start = startBlock(this.prefix);
    for (let i = 0; i < BLOCKS; i++) {
      const base = NET_BASE + ((start + i) % BLOCKS) * 4;
      if (!taken.has(ipv4(base + 1)) && !taken.has(ipv4(base + 2))) {
        return { gatewayIp: ipv4(base + 1), ip: ipv4(base + 2) };
      }
    }
    throw new Error('no free /30 left in 10.211.0.0/16');
  }

  private host(name: string): Host {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`unknown host ${name}`);
    return h;
  }

  private iptables(ns: string, args: string[]): Promise<string> {
    return run('ip', ['netns', 'exec', ns, 'iptables', '-w', '5', ...args]);
  }

  /** Spawns `cmd args` inside the host's namespace (`ip netns exec` execs, so the pid is the command's). */
  spawnIn(host: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.host(host).ns, cmd, ...args], opts);
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Drops (silently, no REJECT) traffic on the host's link: into it, out of it, or both. */
  async partition(host: string, dir: 'both' | 'in' | 'out'): Promise<void> {
    const h = this.host(host);
    await this.heal(host);
    if (dir === 'in' || dir === 'both') await this.iptables(h.ns, ['-A', CHAIN_IN, '-j', 'DROP']);
    if (dir === 'out' || dir === 'both') await this.iptables(h.ns, ['-A', CHAIN_OUT, '-j', 'DROP']);
  }

  async heal(host: string): Promise<void> {
    const h = this.host(host);
    await this.iptables(h.ns, ['-F', CHAIN_IN]);
    await this.iptables(h.ns, ['-F', CHAIN_OUT]);
  }

  /**
   * Kills what runs in our namespaces, deletes the veths (which also removes
   * their peers) and the namespaces (taking their iptables rules with them),
   * plus any leftovers with this prefix. Idempotent.
   */
  async destroy(): Promise<void> {
    await this.ready.catch(() => {});
    for (const c of this.children)
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    this.children.clear();
    this.hosts.clear();
    await this.cleanLeftovers();
    this.unregister();
  }

  /**
   * destroy's synchronous twin, for a process that is being interrupted:
   * kills what runs in this prefix's namespaces, deletes its veths and
   * namespaces. Best effort.
   */
  removeNow(): void {
    const sh = (cmd: string, args: string[]): string => {
      try {
        return execFileSync(cmd, args, { encoding: 'utf8', timeout: 5000, stdio: 'pipe' });
      } catch {
        return '';
      }
    };
    const mine = sh('ip', ['netns', 'list'])
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter((ns) => ns.startsWith(`rg-${this.prefix}-`));
    for (const ns of mine) {
      for (const pid of sh('ip', ['netns', 'pids', ns]).split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    const re = new RegExp(`^\\d+: (rg${this.prefix}-\\d+r)[@:]`, 'gm');
    for (const m of sh('ip', ['-o', 'link', 'show', 'type', 'veth']).matchAll(re))
      sh('ip', ['link', 'del', m[1]!]);
    for (const ns of mine) sh('ip', ['netns', 'del', ns]);
  }

  /** Removes every namespace and veth named with this prefix. */
  private async cleanLeftovers(): Promise<void> {
    const nsList = await run('ip', ['netns', 'list']);
    const mine = nsList
      .split('\n')
      .map((l) => l.split(' ')[0] ?? '')
      .filter((ns) => ns.startsWith(`rg-${this.prefix}-`));
    for (const ns of mine) {
      const pids = await run('ip', ['netns', 'pids', ns]).catch(() => '');
      for (const pid of pids.split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    const links = await run('ip', ['-o', 'link', 'show', 'type', 'veth']);
    const re = new RegExp(`^\\d+: (rg${this.prefix}-\\d+r)[@:]`, 'gm');
    for (const m of links.matchAll(re)) await tryRun('ip', ['link', 'del', m[1]!]);
    for (const ns of mine) await run('ip', ['netns', 'del', ns]);
  }
}

import cliProgress from 'cli-progress';

/** Progress of a group on stderr: a bar on a terminal, otherwise a plain line at most every `everyMs`. */
export interface Progress {
  update(finished: number, failed: number): void;
  stop(): void;
}

export function createProgress(
  total: number,
  stream: NodeJS.WriteStream = process.stderr,
  everyMs = 1000,
): Progress {
  return stream.isTTY ? barProgress(total, stream) : lineProgress(total, stream, everyMs);
}

function barProgress(total: number, stream: NodeJS.WriteStream): Progress {
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: 'tasks {bar} {value}/{total} | failed {failed} | {duration_formatted}',
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { failed: 0 });
  return {
    update: (finished, failed) => bar.update(finished, { failed }),
    stop: () => bar.stop(),
  };
}

function lineProgress(total: number, stream: NodeJS.WritableStream, everyMs: number): Progress {
  let last = 0;
  let shown = '';
  let current = '';
  const show = (): void => {
    if (current === shown) return;
    stream.write(`${current}\n`);
    shown = current;
  };
  return {
    update(finished, failed) {
      current = `progress: ${finished}/${total} finished, ${failed} failed`;
      const now = Date.now();
      if (now - last < everyMs) return;
      last = now;
      show();
    },
    stop: show,
  };
}

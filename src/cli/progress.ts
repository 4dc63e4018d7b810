import cliProgress from 'cli-progress';

/** Why the group waits, as the progress shows it: the lines to print once, and the reason for the bar. */
export interface WaitingNote {
  /** Printed once when the group starts waiting (or its reason changes). */
  lines: readonly string[];
  /** Shown in the bar while it lasts (`waiting: <message>`). */
  reason: string;
}

/**
 * Progress of a group on stderr: a bar on a terminal, otherwise a plain line
 * at most every `everyMs`. `waiting` prints why the group waits (at once,
 * not throttled); a terminal's bar also shows it until `waiting(null)`.
 */
export interface Progress {
  update(finished: number, failed: number): void;
  /** The group started waiting (or waits for another reason); null: it no longer waits. */
  waiting(note: WaitingNote | null): void;
  stop(): void;
}

export function createProgress(
  total: number,
  stream: NodeJS.WriteStream = process.stderr,
  everyMs = 1000,
): Progress {
  return stream.isTTY ? barProgress(total, stream) : lineProgress(total, stream, everyMs);
}

/** Erases the line the cursor is on (the bar), so a line printed there does not mix with it. */
const ERASE_LINE = '\r\x1b[2K';

function barProgress(total: number, stream: NodeJS.WriteStream): Progress {
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: 'tasks {bar} {value}/{total} | failed {failed} | {duration_formatted}{waiting}',
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { failed: 0, waiting: '' });
  return {
    update: (finished, failed) => bar.update(finished, { failed }),
    waiting(note) {
      // The bar is redrawn below the lines on its next render (within 100 ms): its text changed.
      if (note) stream.write(`${ERASE_LINE}${note.lines.join('\n')}\n`);
      bar.update({ waiting: note ? ` | ${note.reason}` : '' });
    },
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
    // Said once; a log of lines cannot take it back, so the end of a wait is not told.
    waiting(note) {
      if (note) stream.write(`${note.lines.join('\n')}\n`);
    },
    stop: show,
  };
}

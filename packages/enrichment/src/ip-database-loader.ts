import { Worker } from 'node:worker_threads';
import { IpDatabase, type IpDatabaseFiles } from './ip-database.js';
import type { IpDatabaseWorkerData, IpDatabaseWorkerResult } from './ip-database-worker.js';

/**
 * The worker's compiled script. Tests run this file from `src/` (as TypeScript), where Node 20 cannot
 * start a worker from a `.ts` file, so they use the build in `dist/` (`npm test` builds first).
 */
const workerScript = new URL(
  import.meta.url.endsWith('.ts') ? '../dist/ip-database-worker.js' : './ip-database-worker.js',
  import.meta.url,
);

/** Options of {@link loadIpDatabaseInWorker}. */
export interface LoadIpDatabaseOptions {
  /** Aborting terminates the worker and rejects the load with the signal's reason. */
  readonly signal?: AbortSignal;
}

/**
 * Loads the IP database like {@link IpDatabase.load}, but parses the files in a `worker_threads` worker,
 * so the calling thread's event loop stays free (the parse takes 1–3 s, docs/adr/0004-enrichment-data.md).
 * The tables come back as transferred buffers (no copy) and are rebuilt here without parsing (a few
 * milliseconds). Rejects when a file is missing or malformed, when the worker dies, or on abort.
 */
export function loadIpDatabaseInWorker(
  files: IpDatabaseFiles = {},
  options: LoadIpDatabaseOptions = {},
): Promise<IpDatabase> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<IpDatabase>((resolve, reject) => {
    const workerData: IpDatabaseWorkerData = { files: { ...files } };
    const worker = new Worker(workerScript, { workerData });
    let settled = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      outcome();
    };
    let aborted = false;
    const onAbort = () => {
      aborted = true;
      // Rejects on the worker's `exit`, once the thread has stopped: a caller awaiting it knows it is gone.
      void worker.terminate();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.once('message', (message: IpDatabaseWorkerResult) => {
      settle(() => {
        try {
          resolve(IpDatabase.fromTransferable(message.database));
        } catch (error) {
          reject(error);
        }
      });
      // The worker has nothing left to do; it exits on its own, this only makes it prompt.
      void worker.terminate();
    });
    worker.once('error', (error) => settle(() => reject(error)));
    worker.once('exit', (code) =>
      settle(() =>
        reject(
          aborted
            ? signal?.reason
            : new Error(`IP database worker exited with code ${code} before answering`),
        ),
      ),
    );
  });
}

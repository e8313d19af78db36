/**
 * Worker-thread entry of {@link loadIpDatabaseInWorker}: parses the IP data files off the main thread
 * and posts the tables back, their buffers in the transfer list (moved, not copied). A failure throws,
 * which the parent receives as the worker's `error` event.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { IpDatabase, type IpDatabaseFiles, transferList } from './ip-database.js';

/** What the parent passes as `workerData`. */
export interface IpDatabaseWorkerData {
  readonly files: IpDatabaseFiles;
}

/** The one message the worker posts. */
export interface IpDatabaseWorkerResult {
  readonly database: ReturnType<IpDatabase['toTransferable']>;
  /** Time spent parsing in the worker, in milliseconds. */
  readonly parseMs: number;
}

if (parentPort === null) throw new Error('ip-database-worker must run in a worker thread');
const startedAt = performance.now();
const { files } = workerData as IpDatabaseWorkerData;
const database = IpDatabase.load(files).toTransferable();
const result: IpDatabaseWorkerResult = { database, parseMs: performance.now() - startedAt };
parentPort.postMessage(result, transferList(database));

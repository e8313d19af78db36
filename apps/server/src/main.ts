import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { loadConfig } from './config.js';
import { createNode } from './node.js';

/** The one composition root: configuration, the node, the listener, and signals. */
async function main(): Promise<void> {
  const startedAt = performance.now();
  const config = loadConfig(process.env, process.argv.slice(2));
  const logger = pino({ level: config.VIGIL_LOG_LEVEL });
  const node = await createNode(config, logger);
  if (node.generatedAdminToken !== undefined) {
    // Printed once, on the start that created it; afterwards it is only in the file.
    process.stdout.write(
      `\nGenerated admin token (also in ${config.VIGIL_DATA_DIR}/admin-token, mode 0600):\n  ${node.generatedAdminToken}\n\n`,
    );
  }
  const address = await node.app.listen({ port: config.PORT, host: config.HOST });
  logger.info({ address, ready_ms: Math.round(performance.now() - startedAt) }, 'vigil node ready');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'draining');
    node.state.draining = true;
    if (config.VIGIL_SHUTDOWN_DELAY_MS > 0) await sleep(config.VIGIL_SHUTDOWN_DELAY_MS);
    try {
      await node.close();
      logger.info('drained; exiting');
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, 'drain failed');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(`vigil: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});

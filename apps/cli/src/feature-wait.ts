import { errorOf, type ManageClient } from './api-client.js';

interface FeatureView {
  name: string;
  status: 'ready' | 'backfilling' | 'failed';
  backfill?: { progress: number; events_replayed: number };
}

/** One line of a feature's state: `name: status`, with a bar and counts while it backfills. */
export function featureLine(feature: FeatureView, width = 30): string {
  if (feature.status !== 'backfilling' || feature.backfill === undefined)
    return `${feature.name}: ${feature.status}`;
  const share = Math.max(0, Math.min(1, feature.backfill.progress));
  const filled = Math.round(share * width);
  const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
  return `${feature.name}: backfilling [${bar}] ${(share * 100).toFixed(1)}% (${feature.backfill.events_replayed} events)`;
}

/**
 * Prints a feature's state; with `wait`, polls until its backfill ends, redrawing the progress line
 * on a terminal (a line per change elsewhere). Resolves to the final status.
 */
export async function showFeature(
  client: ManageClient,
  name: string,
  options: {
    wait: boolean;
    intervalMs?: number;
    out: NodeJS.WriteStream | { isTTY?: boolean; write(text: string): unknown };
  },
): Promise<FeatureView['status']> {
  const { out } = options;
  let previous = '';
  for (;;) {
    const response = await client.request('GET', `/features/${encodeURIComponent(name)}`);
    if (response.status !== 200) {
      const error = errorOf(response.json);
      throw new Error(`${error.code}: ${error.message}`);
    }
    const feature = response.json as unknown as FeatureView;
    const line = featureLine(feature);
    if (out.isTTY === true) out.write(`\r\u001b[2K${line}`);
    else if (line !== previous) out.write(`${line}\n`);
    previous = line;
    if (!options.wait || feature.status !== 'backfilling') {
      if (out.isTTY === true) out.write('\n');
      return feature.status;
    }
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 250));
  }
}

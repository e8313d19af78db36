import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { IpRangeTable, type TransferableRangeTable } from './ip-range-table.js';
import { parseRangeCsv } from './range-csv.js';

/**
 * Paths of the four numeric CSV files (`start,end,value`, ip-location-db's `*-num.csv` layout). Each
 * defaults to the file shipped in the npm package; an operator can point at fresher files of the same
 * layout without a release.
 */
export interface IpDatabaseFiles {
  readonly countryIpv4?: string;
  readonly countryIpv6?: string;
  readonly asnIpv4?: string;
  readonly asnIpv6?: string;
}

/** An address as big-endian 32-bit words: one for IPv4, four for IPv6. */
export type AddressWords = Uint32Array;

/**
 * An {@link IpDatabase} as structured-clonable data (labels and typed arrays), to send it from the worker
 * thread that parsed it (`loadIpDatabaseInWorker`). Internal to this package.
 */
export interface TransferableIpDatabase {
  readonly countryLabels: readonly string[];
  readonly countryIpv4: TransferableRangeTable;
  readonly countryIpv6: TransferableRangeTable;
  readonly asnIpv4: TransferableRangeTable;
  readonly asnIpv6: TransferableRangeTable;
}

/** The distinct buffers under a transferable database's typed arrays: the `postMessage` transfer list. */
export function transferList(database: TransferableIpDatabase): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const table of [database.countryIpv4, database.countryIpv6, database.asnIpv4, database.asnIpv6]) {
    for (const column of [table.starts, table.ends, table.values, table.parents]) {
      buffers.add(column.buffer as ArrayBuffer);
    }
  }
  return [...buffers];
}

const COUNTRY_CODE = /^[A-Z]{2}$/;

function packagedFile(specifier: string): string {
  return createRequire(import.meta.url).resolve(specifier);
}

/**
 * Country and ASN tables for IPv4 and IPv6, held in memory. Loading parses ~1.07 million rows
 * synchronously (see docs/adr/0004-enrichment-data.md for the measured time and memory), so build one
 * per process at startup, never per request or at import.
 */
export class IpDatabase {
  private constructor(
    private readonly countryLabels: readonly string[],
    private readonly countryIpv4: IpRangeTable,
    private readonly countryIpv6: IpRangeTable,
    private readonly asnIpv4: IpRangeTable,
    private readonly asnIpv6: IpRangeTable,
  ) {}

  /** Reads and indexes the data files; throws when a file is missing or malformed. */
  static load(files: IpDatabaseFiles = {}): IpDatabase {
    return IpDatabase.fromCsv({
      countryIpv4: readFileSync(
        files.countryIpv4 ??
          packagedFile('@ip-location-db/geo-whois-asn-country/geo-whois-asn-country-ipv4-num.csv'),
        'utf8',
      ),
      countryIpv6: readFileSync(
        files.countryIpv6 ??
          packagedFile('@ip-location-db/geo-whois-asn-country/geo-whois-asn-country-ipv6-num.csv'),
        'utf8',
      ),
      asnIpv4: readFileSync(files.asnIpv4 ?? packagedFile('@ip-location-db/asn/asn-ipv4-num.csv'), 'utf8'),
      asnIpv6: readFileSync(files.asnIpv6 ?? packagedFile('@ip-location-db/asn/asn-ipv6-num.csv'), 'utf8'),
    });
  }

  /** Builds a database from CSV texts in the `*-num.csv` layout (used by tests with small fixtures). */
  static fromCsv(texts: {
    countryIpv4: string;
    countryIpv6: string;
    asnIpv4: string;
    asnIpv6: string;
  }): IpDatabase {
    const labels: string[] = [];
    const labelIndex = new Map<string, number>();
    const country = (field: string): number | undefined => {
      if (!COUNTRY_CODE.test(field)) return undefined;
      let index = labelIndex.get(field);
      if (index === undefined) {
        index = labels.length;
        labels.push(field);
        labelIndex.set(field, index);
      }
      return index;
    };
    const asn = (field: string): number | undefined => {
      const value = Number(field);
      return /^\d{1,10}$/.test(field) && value <= 0xffff_ffff ? value : undefined;
    };
    return new IpDatabase(
      labels,
      parseRangeCsv(texts.countryIpv4, 4, country),
      parseRangeCsv(texts.countryIpv6, 6, country),
      parseRangeCsv(texts.asnIpv4, 4, asn),
      parseRangeCsv(texts.asnIpv6, 6, asn),
    );
  }

  /**
   * Rebuilds a database from {@link toTransferable}'s data (received from a worker thread) without
   * parsing anything: the tables take over the typed arrays as they are. Internal to this package.
   */
  static fromTransferable(data: TransferableIpDatabase): IpDatabase {
    if (
      !Array.isArray(data.countryLabels) ||
      !data.countryLabels.every((label) => COUNTRY_CODE.test(label))
    ) {
      throw new Error('IP database: malformed country labels');
    }
    return new IpDatabase(
      [...data.countryLabels],
      IpRangeTable.fromTransferable(data.countryIpv4),
      IpRangeTable.fromTransferable(data.countryIpv6),
      IpRangeTable.fromTransferable(data.asnIpv4),
      IpRangeTable.fromTransferable(data.asnIpv6),
    );
  }

  /**
   * The database as labels and typed arrays, to post with {@link transferList} as the transfer list (no
   * copy). The database must not be used after its buffers were transferred. Internal to this package.
   */
  toTransferable(): TransferableIpDatabase {
    return {
      countryLabels: this.countryLabels,
      countryIpv4: this.countryIpv4.toTransferable(),
      countryIpv6: this.countryIpv6.toTransferable(),
      asnIpv4: this.asnIpv4.toTransferable(),
      asnIpv6: this.asnIpv6.toTransferable(),
    };
  }

  /** Number of ranges held, for logging at startup. */
  get rangeCount(): number {
    return this.countryIpv4.size + this.countryIpv6.size + this.asnIpv4.size + this.asnIpv6.size;
  }

  /** ISO 3166-1 alpha-2 country of a public address, or undefined. */
  country(address: AddressWords): string | undefined {
    const index = (address.length === 1 ? this.countryIpv4 : this.countryIpv6).lookup(address);
    return index === undefined ? undefined : this.countryLabels[index];
  }

  /** Autonomous system number announcing a public address, or undefined (0, "not routed", too). */
  asn(address: AddressWords): number | undefined {
    const value = (address.length === 1 ? this.asnIpv4 : this.asnIpv6).lookup(address);
    return value === 0 ? undefined : value;
  }
}

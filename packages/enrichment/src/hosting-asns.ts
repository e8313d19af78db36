/**
 * Autonomous systems of well-known cloud, hosting and CDN providers, used for `ip_info(ip).datacenter`.
 *
 * This is an approximation, not a hosting-range database: no permissively licensed npm package ships one,
 * so the flag is derived from the ASN. It misses smaller hosts and VPN/proxy providers, and it flags every
 * address of these ASNs, including a provider's own offices and, for Google 15169 and Microsoft 8075,
 * consumer-facing services. Rules should weigh it as one signal. Organization names were checked against
 * the ASN data shipped in `@ip-location-db/asn`.
 */
export const HOSTING_ASNS: ReadonlyMap<number, string> = new Map([
  [16509, 'Amazon (AWS)'],
  [14618, 'Amazon (AWS)'],
  [8987, 'Amazon Data Services Ireland (AWS)'],
  [15169, 'Google'],
  [396982, 'Google Cloud'],
  [19527, 'Google'],
  [8075, 'Microsoft (Azure)'],
  [31898, 'Oracle Cloud'],
  [36351, 'IBM Cloud'],
  [45102, 'Alibaba Cloud'],
  [37963, 'Alibaba Cloud (China)'],
  [132203, 'Tencent Cloud'],
  [45090, 'Tencent Cloud'],
  [136907, 'Huawei Cloud'],
  [55990, 'Huawei Cloud'],
  [13335, 'Cloudflare'],
  [209242, 'Cloudflare (WARP egress)'],
  [54113, 'Fastly'],
  [14061, 'DigitalOcean'],
  [63949, 'Akamai Connected Cloud (Linode)'],
  [20473, 'Vultr (The Constant Company)'],
  [16276, 'OVHcloud'],
  [24940, 'Hetzner'],
  [213230, 'Hetzner Cloud'],
  [12876, 'Scaleway'],
  [51167, 'Contabo'],
  [60781, 'Leaseweb'],
  [16265, 'Leaseweb'],
  [28753, 'Leaseweb'],
  [8560, 'IONOS'],
  [47583, 'Hostinger'],
  [19994, 'Rackspace'],
  [27357, 'Rackspace'],
  [197540, 'netcup'],
  [9009, 'M247'],
  [212238, 'Datacamp'],
  [40676, 'Psychz Networks'],
  [8100, 'QuadraNet'],
  [21859, 'Zenlayer'],
  [199524, 'G-Core Labs'],
]);

/** Whether an ASN belongs to a well-known hosting provider (see {@link HOSTING_ASNS} for the caveats). */
export function isHostingAsn(asn: number): boolean {
  return HOSTING_ASNS.has(asn);
}

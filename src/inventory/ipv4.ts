// IPv4 addresses of hosts and the VIP: parsing, what kind of address it is, and subnets.

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Strict dotted-quad IPv4: four decimal octets 0-255, no leading zeros, nothing else. */
export function isIPv4(value: string): boolean {
  return IPV4.test(value);
}

/** The address as an unsigned 32-bit number; the input must be isIPv4. */
export function ipv4ToInt(value: string): number {
  return value.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

export function intToIPv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

/**
 * Why an address cannot be a host's or the VIP's, or undefined when it can: loopback and "this network" addresses
 * exist on every machine, so no other host reaches them; multicast, reserved and broadcast addresses are not
 * assigned to an interface.
 */
export function unusableReason(value: string): string | undefined {
  const first = Number(value.split('.')[0]);
  if (value === '0.0.0.0') return 'the unspecified address (0.0.0.0): it names no host';
  if (first === 0) return 'in 0.0.0.0/8 ("this network"): it names no host';
  if (first === 127)
    return 'a loopback address (127.0.0.0/8): every machine has it, so no other host reaches it';
  if (first >= 224 && first <= 239) return 'a multicast address (224.0.0.0/4), not a host address';
  if (value === '255.255.255.255') return 'the broadcast address, not a host address';
  if (first >= 240) return 'a reserved address (240.0.0.0/4), not a host address';
  return undefined;
}

/** A unicast address a host or VIP can have: an IPv4 address with no unusableReason. */
export function isUsableIPv4(value: string): boolean {
  return isIPv4(value) && unusableReason(value) === undefined;
}

/** `10.0.0.0/24` for 10.0.0.17 and 24. */
export function subnetOf(address: string, prefixLength: number): string {
  return `${intToIPv4(networkInt(ipv4ToInt(address), prefixLength))}/${prefixLength}`;
}

export function sameSubnet(a: string, b: string, prefixLength: number): boolean {
  return networkInt(ipv4ToInt(a), prefixLength) === networkInt(ipv4ToInt(b), prefixLength);
}

/** Why the address is not a host address of its subnet (its network or broadcast address), or undefined. */
export function subnetEdgeReason(address: string, prefixLength: number): string | undefined {
  if (prefixLength >= 31) return undefined;
  const n = ipv4ToInt(address);
  const size = 2 ** (32 - prefixLength);
  const network = networkInt(n, prefixLength);
  if (n === network) return `the network address of ${subnetOf(address, prefixLength)}`;
  if (n === network + size - 1) return `the broadcast address of ${subnetOf(address, prefixLength)}`;
  return undefined;
}

function networkInt(n: number, prefixLength: number): number {
  const size = 2 ** (32 - prefixLength);
  return Math.floor(n / size) * size;
}

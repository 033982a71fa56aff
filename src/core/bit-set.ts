/**
 * A set of small non-negative integers (e.g. the ordinals of a manifest's entries) in one bit each:
 * a million entries take 125 KiB. It grows as bits are set; a bit never set reads false.
 */
export class BitSet {
  private bits = new Uint8Array(1024);

  add(i: number): void {
    const byte = i >>> 3;
    if (byte >= this.bits.length) {
      const grown = new Uint8Array(Math.max(byte + 1, this.bits.length * 2));
      grown.set(this.bits);
      this.bits = grown;
    }
    this.bits[byte] = (this.bits[byte] ?? 0) | (1 << (i & 7));
  }

  has(i: number): boolean {
    return (((this.bits[i >>> 3] ?? 0) >> (i & 7)) & 1) === 1;
  }
}

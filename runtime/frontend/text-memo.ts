/**
 * A bounded memo of text derived from a short string: a model's output, as JSON in an answer or a
 * query-log record. Cache hits repeat few outputs, so the derivation runs once per output instead of
 * once per query. Bounded whatever the outputs: long ones are not kept, and a full memo starts over.
 */
export class TextMemo {
  private readonly entries = new Map<string, string>();

  constructor(
    private readonly derive: (text: string) => string,
    private readonly maxEntries = 256,
    private readonly maxKeyChars = 1024,
  ) {}

  get(text: string): string {
    let derived = this.entries.get(text);
    if (derived === undefined) {
      derived = this.derive(text);
      if (text.length <= this.maxKeyChars) {
        if (this.entries.size >= this.maxEntries) this.entries.clear();
        this.entries.set(text, derived);
      }
    }
    return derived;
  }
}

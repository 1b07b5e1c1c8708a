/**
 * memsync's own reader of one ListObjectsV2 answer body. The SDK's XML parser builds every tag
 * name and text one character at a time (about 22 KB allocated per listed key); this reader
 * scans the one body string with indexOf and allocates only what it returns. It understands the
 * plain form S3-compatible servers send (elements, character and entity references) and throws
 * ListPageFormatError at anything else (comments, CDATA, a DOCTYPE, attributes on fields, a
 * field twice, an unreadable size or date), so the caller can have the SDK read that body
 * instead. Pure: a string in, a page out.
 */

/** One listed object, with its full key (the bucket prefix included). */
export interface ListedObject {
  key: string;
  size: number;
  /** As the server wrote it, quotes included, like the SDK gives it. */
  etag: string;
  lastModifiedMs: number;
}

export interface ListedPage {
  objects: ListedObject[];
  /** The entries the answer says it holds (KeyCount); undefined when it does not say. */
  keyCount: number | undefined;
  /** <Contents> and <CommonPrefixes> carried (the latter none without a delimiter): what KeyCount counts. */
  entryCount: number;
  isTruncated: boolean;
  nextContinuationToken: string | undefined;
}

/** The body is not a ListObjectsV2 answer this reader understands. */
export class ListPageFormatError extends Error {
  override readonly name = 'ListPageFormatError';
}

const ROOT = 'ListBucketResult';
const MAX_SAFE_DIGITS = 16;
/** ISO 8601 as S3 servers write LastModified; more than milliseconds would be rounded by the SDK, not cut. */
const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:\d{2})$/;
/** Attributes of the root (xmlns), quoted as XML requires; their values are not needed. */
const ATTRIBUTES = /^(?:\s+[A-Za-z_:][\w:.-]*\s*=\s*(?:"[^"<&]*"|'[^'<&]*'))*\s*$/;
const NAMED_ENTITIES: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** Reads a ListObjectsV2 answer body; throws ListPageFormatError for anything it does not understand. */
export function parseListPage(body: string): ListedPage {
  const scanner = new Scanner(body);
  scanner.skipProlog();
  scanner.openRoot();
  const page: ListedPage = { objects: [], keyCount: undefined, entryCount: 0, isTruncated: false, nextContinuationToken: undefined };
  const seen = new Set<string>();
  for (let name = scanner.nextChild(ROOT); name !== undefined; name = scanner.nextChild(ROOT)) {
    if (name === 'Contents') {
      page.objects.push(readContents(scanner));
      page.entryCount += 1;
      continue;
    }
    if (name === 'CommonPrefixes') {
      scanner.skipElement(name);
      page.entryCount += 1;
      continue;
    }
    if (seen.has(name)) throw new ListPageFormatError(`<${name}> appears twice`);
    // The listing never asks for encoding-type=url (see s3-listing.ts): a page in it is not the answer to memsync's request.
    if (name === 'EncodingType') throw new ListPageFormatError('the page is URL-encoded');
    seen.add(name);
    const text = scanner.leafText(name);
    if (name === 'KeyCount') page.keyCount = wholeNumber(text, name);
    else if (name === 'MaxKeys') wholeNumber(text, name);
    else if (name === 'IsTruncated') page.isTruncated = truth(text);
    else if (name === 'NextContinuationToken') page.nextContinuationToken = text;
  }
  scanner.expectEnd();
  return page;
}

function readContents(scanner: Scanner): ListedObject {
  let key: string | undefined;
  let size: string | undefined;
  let etag: string | undefined;
  let lastModified: string | undefined;
  for (let name = scanner.nextChild('Contents'); name !== undefined; name = scanner.nextChild('Contents')) {
    if (name === 'Key') key = onlyText(scanner, key, name);
    else if (name === 'Size') size = onlyText(scanner, size, name);
    else if (name === 'ETag') etag = onlyText(scanner, etag, name);
    else if (name === 'LastModified') lastModified = onlyText(scanner, lastModified, name);
    // StorageClass, Owner, ChecksumAlgorithm, RestoreStatus...: nothing memsync uses.
    else scanner.skipElement(name);
  }
  if (key === undefined || size === undefined) throw new ListPageFormatError('<Contents> without <Key> or <Size>');
  return { key, size: wholeNumber(size, 'Size'), etag: etag ?? '', lastModifiedMs: lastModified === undefined ? 0 : timestampMs(lastModified) };
}

/** The text of a field of <Contents> not read before. */
function onlyText(scanner: Scanner, before: string | undefined, name: string): string {
  if (before !== undefined) throw new ListPageFormatError(`<Contents> holds <${name}> twice`);
  return scanner.leafText(name);
}

function wholeNumber(text: string, field: string): number {
  const value = text.length > 0 && text.length <= MAX_SAFE_DIGITS && /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value)) throw new ListPageFormatError(`<${field}> ${JSON.stringify(text.slice(0, 40))} is not a whole number`);
  return value;
}

function truth(text: string): boolean {
  if (text === 'true') return true;
  if (text === 'false') return false;
  throw new ListPageFormatError(`<IsTruncated> ${JSON.stringify(text.slice(0, 40))} is neither true nor false`);
}

function timestampMs(text: string): number {
  const ms = TIMESTAMP.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(ms)) throw new ListPageFormatError(`<LastModified> ${JSON.stringify(text.slice(0, 40))} is not a timestamp`);
  return ms;
}

/** A position in the body and the few moves a listing needs; every refusal is a ListPageFormatError. */
class Scanner {
  private at = 0;

  constructor(private readonly body: string) {}

  skipProlog(): void {
    if (this.body.charCodeAt(0) === 0xfeff) this.at = 1;
    this.skipSpace();
    if (this.body.startsWith('<?xml', this.at)) {
      const end = this.body.indexOf('?>', this.at);
      if (end === -1) throw new ListPageFormatError('unterminated XML declaration');
      this.at = end + 2;
      this.skipSpace();
    }
  }

  /** The root element, whose attributes (xmlns) are allowed and ignored. */
  openRoot(): void {
    const open = `<${ROOT}`;
    if (!this.body.startsWith(open, this.at)) throw new ListPageFormatError(`no <${ROOT}> at the top`);
    const end = this.body.indexOf('>', this.at);
    const next = this.body.charCodeAt(this.at + open.length);
    const attributes = end === -1 ? '' : this.body.slice(this.at + open.length, end);
    if (end === -1 || !(next === 0x3e || isSpace(next)) || !ATTRIBUTES.test(attributes)) throw new ListPageFormatError(`unreadable <${ROOT}> tag`);
    this.at = end + 1;
  }

  /** The name of the next child element of `parent`, its opening tag consumed; undefined at `</parent>`, consumed too. */
  nextChild(parent: string): string | undefined {
    this.skipSpace();
    if (this.body.charCodeAt(this.at) !== 0x3c) throw new ListPageFormatError(`text or end of body inside <${parent}>`);
    if (this.body.startsWith('</', this.at)) {
      this.expect(`</${parent}>`);
      return undefined;
    }
    const end = this.body.indexOf('>', this.at);
    const name = end === -1 ? '' : this.body.slice(this.at + 1, end);
    // A name and nothing else: no attributes, no self-closing form, no comment, CDATA or DOCTYPE.
    if (!/^[A-Za-z][A-Za-z0-9_.-]*$/.test(name)) throw new ListPageFormatError(`unexpected markup inside <${parent}>`);
    this.at = end + 1;
    return name;
  }

  /** The decoded text of an element with no children, its closing tag consumed. */
  leafText(name: string): string {
    const end = this.body.indexOf('<', this.at);
    if (end === -1) throw new ListPageFormatError(`<${name}> is not closed`);
    const raw = this.body.slice(this.at, end);
    this.at = end;
    this.expect(`</${name}>`);
    return decodeText(raw, name);
  }

  /** Skips an element memsync does not read, whatever it holds, as long as it does not nest itself. */
  skipElement(name: string): void {
    const close = `</${name}>`;
    const end = this.body.indexOf(close, this.at);
    if (end === -1 || this.body.lastIndexOf(`<${name}>`, end) >= this.at) throw new ListPageFormatError(`<${name}> is not closed`);
    this.at = end + close.length;
  }

  expectEnd(): void {
    this.skipSpace();
    if (this.at !== this.body.length) throw new ListPageFormatError(`content after </${ROOT}>`);
  }

  private expect(text: string): void {
    if (!this.body.startsWith(text, this.at)) throw new ListPageFormatError(`expected ${text}`);
    this.at += text.length;
  }

  private skipSpace(): void {
    while (this.at < this.body.length && isSpace(this.body.charCodeAt(this.at))) this.at += 1;
  }
}

function isSpace(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
}

/**
 * Text content with its references resolved. A raw carriage return or line feed is refused: XML
 * normalises line ends, and the SDK then drops texts made of white space, so the two readers
 * could disagree on such a key; servers write them as references anyway.
 */
function decodeText(raw: string, name: string): string {
  if (raw.includes('\r') || raw.includes('\n')) throw new ListPageFormatError(`raw line break in <${name}>`);
  if (raw.includes(']]>')) throw new ListPageFormatError(`raw ']]>' in <${name}>`);
  let amp = raw.indexOf('&');
  if (amp === -1) return raw;
  let decoded = '';
  let from = 0;
  while (amp !== -1) {
    const semicolon = raw.indexOf(';', amp);
    if (semicolon === -1) throw new ListPageFormatError(`unterminated reference in <${name}>`);
    decoded += raw.slice(from, amp) + resolveReference(raw.slice(amp + 1, semicolon), name);
    from = semicolon + 1;
    amp = raw.indexOf('&', from);
  }
  return decoded + raw.slice(from);
}

function resolveReference(reference: string, name: string): string {
  const named = NAMED_ENTITIES[reference];
  if (named !== undefined && Object.hasOwn(NAMED_ENTITIES, reference)) return named;
  const digits = /^#(?:x([0-9A-Fa-f]{1,6})|([0-9]{1,7}))$/.exec(reference);
  const codePoint = digits === null ? Number.NaN : digits[1] !== undefined ? parseInt(digits[1], 16) : Number(digits[2]);
  if (!isReferableChar(codePoint)) throw new ListPageFormatError(`unknown or invalid reference &${reference.slice(0, 12)}; in <${name}>`);
  return String.fromCodePoint(codePoint);
}

/**
 * The characters a reference may name: XML 1.0's, and the control characters XML 1.1 allows as
 * references, which is how Ceph RGW writes them in keys (&#x01;). NUL never.
 */
function isReferableChar(codePoint: number): boolean {
  return (codePoint >= 0x1 && codePoint <= 0xd7ff) || (codePoint >= 0xe000 && codePoint <= 0xfffd) || (codePoint >= 0x10000 && codePoint <= 0x10ffff);
}

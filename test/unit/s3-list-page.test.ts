import { describe, expect, it } from 'vitest';
import { ListPageFormatError, parseListPage } from '../../src/remote/s3-list-page.js';

const ETAG = '&quot;0123456789abcdef0123456789abcdef&quot;';

function contents(key: string, fields: { size?: string; etag?: string; lastModified?: string; extra?: string } = {}): string {
  const size = fields.size ?? '10';
  return (
    `<Contents><Key>${key}</Key><LastModified>${fields.lastModified ?? '2025-01-02T03:04:05.678Z'}</LastModified><ETag>${fields.etag ?? ETAG}</ETag>` +
    `<Size>${size}</Size>${fields.extra ?? '<StorageClass>STANDARD</StorageClass>'}</Contents>`
  );
}

function page(entries: string[], head = `<KeyCount>${entries.length}</KeyCount><IsTruncated>false</IsTruncated>`): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>p/</Prefix><MaxKeys>1000</MaxKeys>${head}${entries.join('')}</ListBucketResult>`;
}

const keysOf = (body: string): string[] => parseListPage(body).objects.map((o) => o.key);

describe('parseListPage', () => {
  it('reads a page as AWS S3 writes it, owner and checksum fields included', () => {
    const owner = '<Owner><ID>abc</ID><DisplayName>me</DisplayName></Owner><ChecksumAlgorithm>CRC32</ChecksumAlgorithm><StorageClass>STANDARD</StorageClass>';
    const body = page([contents('p/auto_20250101_000000/memory.json', { size: '1234', extra: owner })]).replace('\n<ListBucketResult', '\n\n  <ListBucketResult').replace(/<Contents>/g, '\n  <Contents>\n    ');
    expect(parseListPage(body)).toEqual({
      objects: [{ key: 'p/auto_20250101_000000/memory.json', size: 1234, etag: '"0123456789abcdef0123456789abcdef"', lastModifiedMs: Date.UTC(2025, 0, 2, 3, 4, 5, 678) }],
      keyCount: 1,
      entryCount: 1,
      isTruncated: false,
      nextContinuationToken: undefined,
    });
  });

  it('reads an empty page, with or without KeyCount', () => {
    expect(parseListPage(page([]))).toMatchObject({ objects: [], keyCount: 0, entryCount: 0, isTruncated: false });
    expect(parseListPage('<ListBucketResult></ListBucketResult>')).toMatchObject({ objects: [], keyCount: undefined, entryCount: 0 });
  });

  it('gives the continuation token of a truncated page, its references resolved', () => {
    const body = page([contents('a')], '<KeyCount>1</KeyCount><IsTruncated>true</IsTruncated><NextContinuationToken>1/x+y&amp;z==</NextContinuationToken>');
    expect(parseListPage(body)).toMatchObject({ isTruncated: true, nextContinuationToken: '1/x+y&z==' });
  });

  it('resolves the five named references and character references in keys', () => {
    expect(keysOf(page([contents('a&amp;b &lt;c&gt; &quot;d&quot; &apos;e&apos;'), contents('f&#38;g&#x26;h &#x1F600;&#128512; &#233;')]))).toEqual([
      'a&b <c> "d" \'e\'',
      'f&g&h \u{1F600}\u{1F600} é',
    ]);
  });

  it('resolves references to control characters, as Ceph RGW writes them', () => {
    expect(keysOf(page([contents('x&#x01;y&#9;z')]))).toEqual(['x\u0001y\tz']);
  });

  it('keeps a key that ends a CDATA section when written with references, and raw unicode as it is', () => {
    expect(keysOf(page([contents('x]]&gt;y'), contents('Übersicht/日本語 😀.json'), contents('a>b')]))).toEqual(['x]]>y', 'Übersicht/日本語 😀.json', 'a>b']);
  });

  it('takes percent signs and plus signs in a key literally: the listing asks for no URL encoding', () => {
    expect(keysOf(page([contents('a%20b+c%2B.json')]))).toEqual(['a%20b+c%2B.json']);
  });

  it('leaves a missing ETag empty and a missing LastModified at 0, as the SDK path does', () => {
    const body = page(['<Contents><Key>k</Key><Size>0</Size></Contents>']);
    expect(parseListPage(body).objects).toEqual([{ key: 'k', size: 0, etag: '', lastModifiedMs: 0 }]);
  });

  it('counts common prefixes as entries without listing them as objects', () => {
    const body = page([contents('a/x'), '<CommonPrefixes><Prefix>b/</Prefix></CommonPrefixes>']);
    expect(parseListPage(body)).toMatchObject({ entryCount: 2, objects: [{ key: 'a/x' }] });
  });

  const refused: Record<string, string> = {
    'an empty body': '',
    'an error document': '<?xml version="1.0"?><Error><Code>InternalError</Code><Message></Message></Error>',
    'a body cut short': page([contents('a')]).slice(0, -30),
    'text after the root': `${page([])}<x/>`,
    'a mismatched closing tag': page([]).replace('</Prefix>', '</Prefx>'),
    'a contents entry without a key': page(['<Contents><Size>1</Size></Contents>']),
    'a contents entry without a size': page(['<Contents><Key>k</Key></Contents>']),
    'a key given twice': page(['<Contents><Key>a</Key><Key>b</Key><Size>1</Size></Contents>']),
    'a field given twice': page([], '<IsTruncated>false</IsTruncated><IsTruncated>true</IsTruncated>'),
    'a negative size': page([contents('a', { size: '-5' })]),
    'a fractional size': page([contents('a', { size: '1.5' })]),
    'a size in exponent form': page([contents('a', { size: '1e3' })]),
    'a size beyond exact integers': page([contents('a', { size: '9007199254740993' })]),
    'an empty size': page([contents('a', { size: '' })]),
    'a date that is none': page([contents('a', { lastModified: '9999-99-99T99:99:99Z' })]),
    'a date finer than milliseconds': page([contents('a', { lastModified: '2025-01-01T00:00:00.1234Z' })]),
    'IsTruncated in capitals': page([], '<IsTruncated>TRUE</IsTruncated>'),
    'a KeyCount that is no number': page([], '<KeyCount>many</KeyCount>'),
    'a MaxKeys that is no number': page([]).replace('<MaxKeys>1000<', '<MaxKeys>100M<'),
    'an unquoted attribute on the root': page([]).replace('xmlns="http://s3.amazonaws.com/doc/2006-03-01/"', 'xmlns=http://s3.amazonaws.com/doc/2006-03-01/"'),
    'a self-closing root': '<ListBucketResult xmlns="x"/>',
    'an unknown entity': page([contents('a&lol;')]),
    'an entity declared in a DOCTYPE': `<!DOCTYPE x [<!ENTITY lol "lol">]>${page([contents('a&lol;')])}`,
    'a NUL character reference': page([contents('a&#0;')]),
    'a lone surrogate reference': page([contents('a&#xD800;')]),
    'a reference beyond Unicode': page([contents('a&#x110000;')]),
    'an unterminated reference': page([contents('a&amp')]),
    'a bare ampersand before a later semicolon': page([contents('a & b;')]),
    'a CDATA section': page([contents('<![CDATA[a]]>')]),
    'a raw CDATA end': page([contents('a]]>b')]),
    'a comment': page([`<!-- x -->${contents('a')}`]),
    'a self-closing field': page([], '<NextContinuationToken/>'),
    'an attribute on a field': page(['<Contents><Key type="x">a</Key><Size>1</Size></Contents>']),
    'a raw line break in a key': page([contents('a\nb')]),
    'a page in URL encoding, which memsync does not ask for': page([contents('a%20b')], '<EncodingType>url</EncodingType>'),
    'contents nested in contents': page(['<Contents><Contents><Key>a</Key><Size>1</Size></Contents></Contents>']),
    'a prototype name as a field': page(['<Contents><__proto__>1</__proto__><Key>a</Key><Size>1</Size></Contents>']),
  };
  it.each(Object.entries(refused))('refuses %s with a ListPageFormatError', (_, body) => {
    expect(() => parseListPage(body)).toThrow(ListPageFormatError);
  });

  it('refuses a root nested too deep without running out of stack', () => {
    const body = page([]).replace('<Name>', `${'<a>'.repeat(200_000)}${'</a>'.repeat(200_000)}<Name>`);
    expect(() => parseListPage(body)).toThrow(ListPageFormatError);
  });
});

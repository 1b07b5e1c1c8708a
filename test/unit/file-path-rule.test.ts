import { describe, expect, it } from 'vitest';
import { filePathProblem, isAllowedFilePath, MAX_FILE_PATH_BYTES, refusedFilePaths } from '../../src/snapshot/file-path-rule.js';

describe('the file path rule', () => {
  it.each([
    ['a plain name', 'metadata.json'],
    ['nested directories', 'sub/dir/index.faiss'],
    ['dots inside a name', '..a'],
    ['dots at the end of a name', 'a..'],
    ['a dot name deeper down', 'sub/.hidden'],
    ['a space', 'my notes.txt'],
    ['accented letters', 'résumé/café.json'],
    ['CJK', '記憶/索引.bin'],
    ['an emoji', 'memories/🧠.json'],
    ['a C1 character, which file systems store as they are', 'a\u0085b'],
    ['a segment of exactly the byte limit', `${'é'.repeat(127)}x`],
    ['a path of exactly the byte limit', `${'a'.repeat(200)}/`.repeat(5) + 'b'.repeat(MAX_FILE_PATH_BYTES - 1005)],
    ['a memsync name below the top', 'sub/.memsync-claim'],
  ])('allows %s', (_label, path) => {
    expect(filePathProblem(path)).toBeUndefined();
    expect(isAllowedFilePath(path)).toBe(true);
  });

  it.each([
    ['the empty path', '', /empty/],
    ['a newline', 'a\nb', /control character/],
    ['a tab', 'a\tb', /control character/],
    ['a carriage return', 'a\rb', /control character/],
    ['NUL', 'a\u0000b', /control character/],
    ['the escape character', 'a\u001bb', /control character/],
    ['DEL', 'a\u007fb', /control character/],
    ['a backslash', 'a\\b', /backslash/],
    ['a backslash traversal', '..\\x', /backslash/],
    ['a leading slash', '/etc/passwd', /starts with "\/"/],
    ['a trailing slash', 'a/', /empty segment/],
    ['a double slash', 'a//b', /empty segment/],
    ['a "." segment', './a', /"\." or "\.\." segment/],
    ['a ".." segment', 'a/../../x', /"\." or "\.\." segment/],
    ['".." alone', '..', /"\." or "\.\." segment/],
    ['a trailing ".."', 'a/..', /"\." or "\.\." segment/],
    ['a path over the byte limit', 'x'.repeat(MAX_FILE_PATH_BYTES + 1), /longer than 1024 bytes/],
    ['multi-byte characters over the byte limit', Array.from({ length: 3 }, () => 'é'.repeat(200)).join('/'), /longer than 1024 bytes/],
    ['a segment over the byte limit', 'é'.repeat(128), /segment longer than 255 bytes/],
    ['a lone surrogate', 'a\ud800b', /well-formed Unicode/],
    ['the plain manifest name at the top', '.memsync-manifest.json', /reserved/],
    ['the encrypted manifest name at the top', '.memsync-manifest.enc', /reserved/],
    ['the claim name at the top', '.memsync-claim', /reserved/],
  ])('refuses %s', (_label, path, problem) => {
    expect(filePathProblem(path)).toMatch(problem);
    expect(isAllowedFilePath(path)).toBe(false);
  });
});

describe('refusedFilePaths', () => {
  it('is empty for a set of allowed, distinct, non-overlapping paths', () => {
    expect(refusedFilePaths(['a', 'ab', 'a.b', 'b/a', 'b/c/d', 'A', 'c/a'])).toEqual([]);
  });

  it('names each refused path with its problem', () => {
    expect(refusedFilePaths(['ok', 'a\nb', 'x\\y'])).toEqual([
      { path: 'a\nb', problem: expect.stringMatching(/control character/) as unknown },
      { path: 'x\\y', problem: expect.stringMatching(/backslash/) as unknown },
    ]);
  });

  it('refuses a path listed twice, compared exactly', () => {
    expect(refusedFilePaths(['a/b', 'c', 'a/b'])).toEqual([{ path: 'a/b', problem: 'is listed twice' }]);
    // Case matters: these are two files on a case-sensitive file system.
    expect(refusedFilePaths(['a', 'A'])).toEqual([]);
  });

  it.each([
    ['a file and a file inside it', ['a', 'a/b'], 'a', 'a/b'],
    ['a file and a file deeper inside it', ['x/y/z/w', 'x/y'], 'x/y', 'x/y/z/w'],
    ['in any order', ['q/r/s', 'q'], 'q', 'q/r/s'],
  ])('refuses %s, naming the file that would have to be a directory', (_label, paths, file, inside) => {
    expect(refusedFilePaths(paths)).toEqual([{ path: file, problem: `is a file and also the directory of ${JSON.stringify(inside)}` }]);
  });

  it('does not take a shared name prefix for a directory', () => {
    expect(refusedFilePaths(['a', 'ab/c', 'a.json', 'a-b/c'])).toEqual([]);
  });
});

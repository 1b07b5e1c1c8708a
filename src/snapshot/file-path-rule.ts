import { RESERVED_FILE_NAMES } from './reserved-names.js';

/**
 * What a file path inside a snapshot may be: one rule, applied to a local snapshot before any
 * of its objects is written and to a remote one (manifest and keys) before anything is
 * restored. A snapshot memsync marks complete is therefore always one it can write back, and a
 * hostile bucket cannot name a file outside the snapshot or two files that cannot both exist.
 *
 * A path is relative, '/'-separated, and:
 * - at most 1024 bytes of UTF-8: S3's limit for a whole key, so no longer path can be stored;
 * - each segment 1-255 bytes (NAME_MAX of common file systems), and never "." or "..": an empty
 *   segment, a leading '/' or a dot segment would name another place on disk than in the bucket,
 *   where "a//b" and "a/b" are two different keys;
 * - without control characters (U+0000-U+001F, U+007F): XML 1.0, in which S3 lists keys, cannot
 *   carry most of them, and they break every line-based listing or log that shows the name;
 * - without a backslash: a separator on Windows and to some S3 tools, so the key could be
 *   written back as a different path;
 * - well-formed Unicode: a lone surrogate has no UTF-8 form, the key would not be the name;
 * - at the top, none of memsync's own object names (reserved-names.ts).
 * Everything else, any script, spaces, emoji, is allowed.
 *
 * A set of paths (one snapshot) also may not list a path twice (compared exactly, so "a" and
 * "A" are two files) nor a path that another one needs as a directory ("a" and "a/b").
 */

export const MAX_FILE_PATH_BYTES = 1024;
export const MAX_FILE_PATH_SEGMENT_BYTES = 255;

/** What is allowed, in words, for hints next to a refusal. */
export const FILE_PATH_RULE =
  `file paths are relative and "/"-separated, at most ${MAX_FILE_PATH_BYTES} bytes of UTF-8 with segments of 1-${MAX_FILE_PATH_SEGMENT_BYTES} bytes, ` +
  'no "." or ".." segment, no control characters (U+0000-U+001F, U+007F), no backslash, ' +
  "and not one of memsync's own .memsync-* object names at the top; any other Unicode is fine";

const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;
const LONE_SURROGATE = /\p{Surrogate}/u;

/** Why `path` is not an allowed file path inside a snapshot, or undefined when it is. */
export function filePathProblem(path: string): string | undefined {
  if (path.length === 0) return 'is empty';
  if (Buffer.byteLength(path, 'utf8') > MAX_FILE_PATH_BYTES) return `is longer than ${MAX_FILE_PATH_BYTES} bytes`;
  if (LONE_SURROGATE.test(path)) return 'is not well-formed Unicode';
  if (CONTROL_CHARACTER.test(path)) return 'contains a control character';
  if (path.includes('\\')) return 'contains a backslash';
  if (path.startsWith('/')) return 'starts with "/"';
  const segments = path.split('/');
  for (const segment of segments) {
    if (segment.length === 0) return 'has an empty segment';
    if (segment === '.' || segment === '..') return 'has a "." or ".." segment';
    if (Buffer.byteLength(segment, 'utf8') > MAX_FILE_PATH_SEGMENT_BYTES) return `has a segment longer than ${MAX_FILE_PATH_SEGMENT_BYTES} bytes`;
  }
  if (segments.length === 1 && RESERVED_FILE_NAMES.has(path)) return "is reserved for memsync's own objects";
  return undefined;
}

export function isAllowedFilePath(path: string): boolean {
  return filePathProblem(path) === undefined;
}

export interface RefusedFilePath {
  path: string;
  problem: string;
}

/**
 * Every path of one snapshot that breaks the rule, alone or together with the others; empty
 * when all of them can be written side by side. Collisions are only looked for among paths
 * that are allowed one by one.
 */
export function refusedFilePaths(paths: readonly string[]): RefusedFilePath[] {
  const refused: RefusedFilePath[] = [];
  const seen = new Set<string>();
  for (const path of paths) {
    const problem = filePathProblem(path);
    if (problem !== undefined) refused.push({ path, problem });
    else if (seen.has(path)) refused.push({ path, problem: 'is listed twice' });
    seen.add(path);
  }
  if (refused.length > 0) return refused;
  for (const path of seen) {
    const directory = firstListedDirectory(path, seen);
    if (directory !== undefined) refused.push({ path: directory, problem: `is a file and also the directory of ${JSON.stringify(path)}` });
  }
  return refused;
}

/** The shortest directory of `path` that is itself listed as a file. */
function firstListedDirectory(path: string, files: ReadonlySet<string>): string | undefined {
  for (let slash = path.indexOf('/'); slash !== -1; slash = path.indexOf('/', slash + 1)) {
    const directory = path.slice(0, slash);
    if (files.has(directory)) return directory;
  }
  return undefined;
}

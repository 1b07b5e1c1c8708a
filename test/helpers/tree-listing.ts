// A recursive picture of a directory tree (type, size, link target and mtime of every entry),
// taken before and after something that must not write there, and the difference of two.
import { lstat, readdir, readlink } from 'node:fs/promises';
import path from 'node:path';

/** Relative path ('/' separated) to a description such as `file 12 @1700000000000`. */
export type TreeListing = Map<string, string>;

/** Lists `root` recursively without following links; paths under `exclude` (absolute) are left out. */
export async function listTree(root: string, exclude: readonly string[] = []): Promise<TreeListing> {
  const listing: TreeListing = new Map();
  const skip = new Set(exclude.map((dir) => path.resolve(dir)));
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const absolute = path.join(dir, entry.name);
      if (skip.has(absolute)) continue;
      const relative = path.relative(root, absolute).split(path.sep).join('/');
      const stat = await lstat(absolute);
      if (stat.isSymbolicLink()) listing.set(relative, `link -> ${await readlink(absolute)}`);
      else if (stat.isDirectory()) {
        listing.set(relative, 'dir');
        await walk(absolute);
      } else listing.set(relative, `${stat.isFile() ? 'file' : 'other'} ${stat.size} @${stat.mtimeMs}`);
    }
  };
  await walk(root);
  return listing;
}

/** What differs between two listings, one line per entry: `+ added`, `- removed`, `~ changed`. */
export function treeDifferences(before: TreeListing, after: TreeListing): string[] {
  const differences: string[] = [];
  for (const [entry, description] of after) {
    const old = before.get(entry);
    if (old === undefined) differences.push(`+ ${entry} (${description})`);
    else if (old !== description) differences.push(`~ ${entry} (${old} -> ${description})`);
  }
  for (const entry of before.keys()) if (!after.has(entry)) differences.push(`- ${entry}`);
  return differences.sort();
}

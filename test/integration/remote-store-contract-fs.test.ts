// The RemoteStore contract run against the directory store (CLOUD_SYNC_PROVIDER=fs) on a
// temporary directory: what memsync relies on of S3 holds of a plain folder too.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FsRemoteStore } from '../../src/remote/fs-store.js';
import { pathOf, splitKey, temporaryName } from '../../src/remote/fs-layout.js';
import { remoteStoreContract } from './remote-store-contract.js';

const PREFIX = 'contract/';

remoteStoreContract('FsRemoteStore', { conditionalWrites: true, multipartHousekeeping: true, contentMd5Check: true, partCopy: true }, async () => {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'memsync-fs-contract-'));
  const root = path.join(directory, PREFIX);
  return {
    store: new FsRemoteStore({ directory, prefix: PREFIX }),
    // What a write cut short by a crash leaves: a temporary file beside where the object would be.
    startMultipartUpload: async (key) => {
      const { dirKey, base } = splitKey(key);
      const name = temporaryName(base);
      await mkdir(pathOf(root, dirKey), { recursive: true });
      await writeFile(path.join(pathOf(root, dirKey), name), 'half an object');
      return name;
    },
    // Any program reads the objects as plain files.
    readIndependently: (key) => readFile(pathOf(root, key)),
    cleanup: () => rm(directory, { recursive: true, force: true }),
  };
});

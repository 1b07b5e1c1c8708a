import type { HeadObjectCommand, HeadObjectCommandInput, HeadObjectCommandOutput } from '@aws-sdk/client-s3';
import type { FinalizeRequestMiddleware } from '@aws-sdk/types';

/**
 * Makes `command` note the Date header of its answer: the server's clock, which the SDK does not
 * return. The returned function gives it once the command has been sent (undefined when absent).
 */
export function keepServerDate(command: HeadObjectCommand): () => number | undefined {
  let dateMs: number | undefined;
  const noteDate: FinalizeRequestMiddleware<HeadObjectCommandInput, HeadObjectCommandOutput> = (next) => async (args) => {
    const result = await next(args);
    const header = (result.response as { headers?: Record<string, string | undefined> }).headers?.date;
    const parsed = header === undefined ? Number.NaN : Date.parse(header);
    dateMs = Number.isFinite(parsed) ? parsed : undefined;
    return result;
  };
  command.middlewareStack.add(noteDate, { step: 'finalizeRequest', name: 'memsyncServerDate' });
  return () => dateMs;
}

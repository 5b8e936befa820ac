// The metadata every runahead kind is read with, and the rule on its name: a name that also names
// the object's Services and pods, so a DNS-1035 label short enough for their suffixes. One place for
// RunaheadJob and RunaheadServer, for zod (the operator) and CEL (the API server) alike.
import { z } from 'zod';

const NAME_RE = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/** The CRD root's CEL rule on metadata.name; `names` says what the name names (for the message). */
export function nameRule(maxLength: number, names: string) {
  return {
    rule: `self.metadata.name.matches('${NAME_RE.source}') && size(self.metadata.name) <= ${maxLength}`,
    message: `metadata.name must be a DNS-1035 label of at most ${maxLength} characters (a-z, 0-9, -; starts with a letter): it names ${names}`,
  };
}

/** The metadata the operator reads, with the same rule on the name as nameRule. */
export function objectMetaSchema(maxLength: number) {
  return z.looseObject({
    name: z
      .string()
      .max(maxLength, `must be at most ${maxLength} characters`)
      .regex(NAME_RE, 'must be a DNS-1035 label (a-z, 0-9, -; starts with a letter)'),
    namespace: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    uid: z.string().optional(),
    generation: z.number().optional(),
    resourceVersion: z.string().optional(),
  });
}
